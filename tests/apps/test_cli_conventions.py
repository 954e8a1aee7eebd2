"""CLI conventions of the ``rtengine`` command (issue 13, finding 4, and #15's ``serve --max-calls``):
``--version``, ``-v`` after the subcommand, verbosity that raises rtengine's loggers only (third-party ones at
``-vvv``, with the key scrubbed), ``call`` with ``--api-key`` or without any key, and failures another attempt cannot
fix reported once, not retried."""

import functools
import re
import signal

import httpx
import trio
from cli_helpers import LOG_LINE, cli_env, one_line_error, run_cli
from helpers import start_serve

from rtengine import SessionConfig, __version__
from rtengine.protocol import multipart_body


def _loggers(stderr: bytes) -> set[str]:
    return {m.group(2) for line in stderr.decode().splitlines() if (m := LOG_LINE.match(line))}


async def test_version() -> None:
    with trio.fail_after(30):
        done = await run_cli("--version")
    assert (done.returncode, done.stdout.decode()) == (0, f"rtengine {__version__}\n")


async def test_verbose_after_the_subcommand_shows_rtengines_phases_and_no_third_party_lines() -> None:
    with trio.fail_after(60):
        done = await run_cli("demo", "-v", "--seconds", "0.5", "--wav-out", "/dev/null")
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    loggers = _loggers(done.stderr)
    assert "rtengine" in loggers
    assert all(name == "rtengine" or name.startswith("rtengine.") for name in loggers), loggers
    assert "realtime phase dtls_connected" in done.stderr.decode()


async def test_call_without_a_key_against_a_server_that_needs_none_and_with_api_key() -> None:
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            open_serve, open_url = await start_serve(nursery, env=cli_env())
            keyed_serve, keyed_url = await start_serve(nursery, "--api-key", "sk-cli-flag-key", env=cli_env())
            keyless = await run_cli(
                "call", "--base-url", open_url, "--transport", "websocket", "--wav-out", "/dev/null"
            )
            flag = await run_cli(
                "call", "--base-url", keyed_url, "--transport", "websocket", "--api-key", "sk-cli-flag-key",
                "--wav-out", "/dev/null",
            )  # fmt: skip
            for serve in (open_serve, keyed_serve):
                serve.send_signal(signal.SIGINT)
                assert await serve.wait() == 0
    assert keyless.returncode == 0, keyless.stderr.decode()
    assert "You said: Hello from rtengine!" in keyless.stdout.decode()
    assert flag.returncode == 0, flag.stderr.decode()
    assert b"sk-cli-flag-key" not in flag.stdout + flag.stderr


async def test_a_host_that_does_not_resolve_is_reported_once_and_not_retried() -> None:
    with trio.fail_after(60):
        done = await run_cli("-v", "call", "--base-url", "http://rtengine-no-such-host.invalid/v1", "--seconds", "0.5")
    assert done.returncode == 1
    assert "retrying" not in done.stderr.decode()
    error = one_line_error(done.stderr, "call")
    assert error.startswith("rtengine call: realtime call creation failed")
    assert error.count("not known") == 1  # the resolver's reason, said once


async def test_an_invalid_port_is_a_usage_error() -> None:
    with trio.fail_after(60):
        done = await run_cli("call", "--base-url", "http://127.0.0.1:99999/v1")
    assert done.returncode == 2
    assert "Port out of range" in one_line_error(done.stderr, "call")
    assert done.stdout == b""


async def _echo_authorization(stream: trio.SocketStream) -> None:
    """Answer each request 401 with its ``Authorization`` header echoed in a response header and the body."""
    head = b""
    async with stream:
        while b"\r\n\r\n" not in head:
            chunk = await stream.receive_some()
            if not chunk:
                return
            head += chunk
        match = re.search(rb"(?im)^authorization: *(.+?)\r$", head)
        echoed = match.group(1) if match else b"-"
        body = b'{"error": {"message": "bad key ' + echoed + b'"}}'
        await stream.send_all(
            b"HTTP/1.1 401 Unauthorized\r\nx-echo-authorization: " + echoed + b"\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )


async def test_vvv_shows_third_party_loggers_and_never_the_key_a_server_echoes() -> None:
    key = "plainkeyvalue0123456789"  # no credential shape: only the configured key can be scrubbed
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            (listener,) = await nursery.start(
                functools.partial(trio.serve_tcp, _echo_authorization, 0, host="127.0.0.1")
            )
            base_url = f"http://127.0.0.1:{listener.socket.getsockname()[1]}/v1"
            loud = await run_cli("-vvv", "call", "--base-url", base_url, "--api-key", key, "--seconds", "0.5")
            quiet = await run_cli("-vv", "call", "--base-url", base_url, "--api-key", key, "--seconds", "0.5")
            nursery.cancel_scope.cancel()
    assert loud.returncode == quiet.returncode == 1
    assert "httpcore.http11" in _loggers(loud.stderr)  # third-party DEBUG lines are shown at -vvv ...
    assert b"x-echo-authorization" in loud.stderr  # ... including the response headers that carry the echo
    assert not any(name.startswith(("httpcore", "httpx", "aiortc", "aioice")) for name in _loggers(quiet.stderr))
    for done in (loud, quiet):
        assert key.encode() not in done.stdout + done.stderr


async def test_serve_max_calls_answers_503_beyond_it(offer_sdp: str) -> None:
    body = multipart_body(offer_sdp, SessionConfig().call_session_json())
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            serve, base_url = await start_serve(nursery, "--max-calls", "1", "--loopback", env=cli_env())
            async with httpx.AsyncClient() as http:
                headers = {"content-type": body.content_type}
                first = await http.post(base_url + "/realtime/calls", content=body.content, headers=headers)
                second = await http.post(base_url + "/realtime/calls", content=body.content, headers=headers)
            serve.send_signal(signal.SIGINT)
            assert await serve.wait() == 0
    assert first.status_code == 201
    assert (second.status_code, second.headers["retry-after"]) == (503, "1")
    assert second.json()["error"]["code"] == "server_busy"
