"""Review of #13's docs: an example a newcomer copies from the testing page runs as written (tests/test_docs.py only
parses that page's examples)."""

import ast
import pathlib
import re
import types

import pytest
import trio

TESTING_PAGE = pathlib.Path(__file__).resolve().parents[2] / "docs" / "tutorial" / "testing.rst"
BLOCK = re.compile(r"^\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", re.MULTILINE)


def _block_using(needle: str) -> str:
    for match in BLOCK.finditer(TESTING_PAGE.read_text(encoding="utf-8")):
        code = "\n".join(line[3:] for line in match.group(1).splitlines())
        if needle in code:
            return code
    raise AssertionError(f"no example using {needle} on {TESTING_PAGE.name}")


@pytest.mark.xfail(
    strict=True,
    reason="review: docs/tutorial/testing.rst 'Without the plugin' uses rtengine.RealtimeClient without importing "
    "rtengine: NameError when run as written",
)
async def test_the_testing_pages_example_without_the_plugin_runs_as_written() -> None:
    code = compile(_block_using("open_local_server("), str(TESTING_PAGE), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    with trio.fail_after(20):
        result = eval(code, {"__name__": "example"})  # the page's block, as a user pastes it
        assert isinstance(result, types.CoroutineType)
        await result
