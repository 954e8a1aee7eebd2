"""The documentation's Python examples are valid Python, and every page is reachable from the index (the build
itself, with warnings as errors, runs in ``.ci/docs``)."""

from __future__ import annotations

import ast
import pathlib
import re

import rtengine

DOCS = pathlib.Path(rtengine.__file__).parent.parent / "docs"

#: ``.. code-block:: python`` and the body indented under it.
BLOCK = re.compile(r"^\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", re.MULTILINE)


def _pages() -> list[pathlib.Path]:
    return sorted(p for p in DOCS.rglob("*.rst") if "_build" not in p.parts)


def test_every_python_example_parses() -> None:
    broken = []
    blocks = 0
    for page in _pages():
        for match in BLOCK.finditer(page.read_text()):
            blocks += 1
            code = "\n".join(line[3:] for line in match.group(1).splitlines())
            if "async with" in code and not code.lstrip().startswith(("import", "from", "async def", "def")):
                code = "async def _example():\n" + "\n".join("    " + line for line in code.splitlines())
            try:
                ast.parse(code)
            except SyntaxError as exc:
                broken.append(f"{page.relative_to(DOCS)}: {exc}")
    assert blocks >= 8
    assert broken == []


def test_every_page_is_in_a_toctree() -> None:
    index = (DOCS / "index.rst").read_text()
    listed = set(re.findall(r"^   (\S+)$", index, re.MULTILINE))
    pages = {str(p.relative_to(DOCS).with_suffix("")) for p in _pages()} - {"index"}
    assert pages == listed
