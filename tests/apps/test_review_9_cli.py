"""Adversarial review of session 9 (rev9), CLI side: an argument the wire cannot carry — a byte that is not UTF-8
in argv, which Python holds as a lone surrogate (``surrogateescape``) — is a usage error found before any network
work (exit status 2, one line naming the flag, never the text), as the demo's other bad inputs are (finding 9)."""

import pytest
import trio
from cli_helpers import one_line_error, run_cli

BAD = "bad \udcff text"  # argv bytes b"bad \xff text"
CALL = ("call", "--transport", "websocket", "--base-url")


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("demo", "--transport", "websocket", "--text", BAD), "--text"),
        ((*CALL, "http://127.0.0.1:9/v1", "--model", BAD), "--model"),
        ((*CALL, f"http://127.0.0.1:9/v1{BAD}"), "--base-url"),
        ((*CALL, "http://127.0.0.1:9/v1", "--api-key", BAD), "--api-key (or $OPENAI_API_KEY)"),
    ],
)
async def test_an_argument_that_is_not_utf8_is_a_usage_error(args: tuple[str, ...], flag: str) -> None:
    with trio.fail_after(60):
        done = await run_cli(*args)
    assert done.returncode == 2
    error = one_line_error(done.stderr, args[0])
    assert error.startswith(f"rtengine {args[0]}: {flag} holds a lone surrogate")
    assert "bad" not in error
    assert done.stdout == b""
