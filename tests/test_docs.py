"""The documentation's Python examples are valid Python, and every page is reachable from the index (the build
itself, with warnings as errors, runs in ``.ci/docs``)."""

from __future__ import annotations

import ast
import pathlib
import re
import types

import pytest
import trio

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.server import ServerOptions, ToolScript, open_local_server

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


def _example(page: str, defines: str) -> dict[str, object]:
    """Run the first Python example of ``page`` that defines ``defines``; its namespace."""
    for match in BLOCK.finditer((DOCS / page).read_text()):
        code = "\n".join(line[3:] for line in match.group(1).splitlines())
        if f"def {defines}(" in code:
            namespace: dict[str, object] = {}
            exec(compile(code, f"docs/{page}", "exec"), namespace)
            return namespace
    raise AssertionError(f"no example defining {defines} in {page}")


async def test_the_tutorial_conversation_runs_to_its_end(
    peers: PeerService, capsys: pytest.CaptureFixture[str]
) -> None:
    """The embedding tutorial's example, as printed, against the local server: the tool call is answered, the
    transcript printed, and the conversation ends (the loop leaves after ``Closed``)."""
    example = _example("tutorial/embed.rst", "talk")
    played: list[bytes] = []
    example["play"] = played.append
    talk = example["talk"]
    assert callable(talk)
    options = ServerOptions(delta_interval=0.0, audio_ms=100, tool_call=ToolScript("lookup"))
    async with (
        open_local_server(options, peers=peers) as server,
        rtengine.RealtimeClient(server.base_url, api_key="sk-test") as client,
    ):
        with trio.fail_after(15):
            await talk(client)
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == "closed: requested"
    assert '"meaning": "three"' in printed[0]  # the server's answer quotes the tool output it got
    assert played  # the model's audio went to play()


async def test_the_testing_pages_example_without_the_plugin_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """The testing tutorial's "Without the plugin" block, as a user pastes it into trio code (top-level ``await``):
    its imports suffice, the conversation answers and the record shows it."""
    page = DOCS / "tutorial" / "testing.rst"
    [code] = [
        "\n".join(line[3:] for line in match.group(1).splitlines())
        for match in BLOCK.finditer(page.read_text(encoding="utf-8"))
        if "open_local_server(" in match.group(1)
    ]
    compiled = compile(code, str(page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    with trio.fail_after(20):
        result = eval(compiled, {"__name__": "example"})  # the page's block, as a user pastes it
        assert isinstance(result, types.CoroutineType)
        await result
    assert capsys.readouterr().out.splitlines() == ["You said: Hello", "['client_close']"]
