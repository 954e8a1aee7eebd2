"""``rtengine serve --session-max-seconds`` / ``--call-connect-seconds`` / ``--header-timeout`` / ``--body-timeout`` /
``--max-connections`` as a user runs them (real subprocesses)."""

import os
import signal

import trio
from helpers import RTENGINE, start_serve
from rawnet import error_json, exchange, headers_of, request, status_of

from rtengine.adapters._ws import open_socket
from rtengine.protocol import SocketEnd


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}


async def test_serve_closes_a_session_at_its_cap_with_1001_and_the_apis_message() -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            process, base_url = await start_serve(nursery, "--session-max-seconds", "1.5", env=_env())
            url = base_url.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
            async with open_socket(url, {}) as sock:
                start = trio.current_time()
                frame = await sock.receive()
                while not isinstance(frame, SocketEnd):
                    frame = await sock.receive()
                elapsed = trio.current_time() - start
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0
    assert (frame.clean, frame.code) == (True, 1001)
    assert frame.reason == "Your session hit the maximum duration of 0.03 minutes."
    assert 1.0 <= elapsed < 10.0


async def test_serve_refuses_caps_that_are_not_positive_seconds() -> None:
    with trio.fail_after(60):
        for flag, value in (
            ("--session-max-seconds", "0"),
            ("--call-connect-seconds", "-1"),
            ("--session-max-seconds", "soon"),
            ("--header-timeout", "0"),
            ("--body-timeout", "-2"),
            ("--max-connections", "0"),
            ("--max-connections", "many"),
            ("--unused-call-seconds", "0"),
            ("--slow-client-seconds", "0"),
            ("--record-limit", "0"),
        ):
            result = await trio.run_process(
                [*RTENGINE, "serve", "--port", "0", flag, value], capture_stderr=True, check=False, env=_env()
            )
            assert result.returncode == 2
            assert flag.encode() in result.stderr


def _port(base_url: str) -> int:
    return int(base_url.rsplit(":", 1)[1].split("/")[0])


async def test_serve_applies_its_header_and_body_timeouts() -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            args = ("--header-timeout", "0.4", "--body-timeout", "0.6")
            process, base_url = await start_serve(nursery, *args, env=_env())
            start = trio.current_time()
            head = await exchange(_port(base_url), b"POST /v1/realtime/calls HTTP/1.1\r\n", eof=False)
            head_elapsed = trio.current_time() - start
            start = trio.current_time()
            partial = request(
                "POST", "/v1/realtime/calls", {"content-length": "100", "content-type": "application/sdp"}
            )
            body = await exchange(_port(base_url), partial, eof=False)
            body_elapsed = trio.current_time() - start
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0
    assert (status_of(head), error_json(head)["message"]) == (408, "Request head not received in time.")
    assert (status_of(body), error_json(body)["message"]) == (408, "Request body not received in time.")
    assert 0.4 <= head_elapsed < 5.0  # the default (10 s) would have outlived these bounds
    assert 0.6 <= body_elapsed < 5.0


async def test_serve_answers_503_beyond_max_connections() -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            process, base_url = await start_serve(nursery, "--max-connections", "1", env=_env())
            async with await trio.open_tcp_stream("127.0.0.1", _port(base_url)):
                await trio.sleep(0.5)  # the first connection is being served (it is idle, well within 10 s)
                refused = await exchange(_port(base_url), request("GET", "/v1/nothing"))
            served = refused
            with trio.move_on_after(10):
                while status_of(served) == 503:  # the slot frees once the server sees the first one go
                    served = await exchange(_port(base_url), request("GET", "/v1/nothing"))
                    await trio.sleep(0.05)
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0
    assert (status_of(refused), headers_of(refused)["retry-after"]) == (503, "1")
    assert status_of(served) == 404


def test_serve_bounds_unused_calls_and_its_record() -> None:
    from rtengine.apps._cli_args import parser
    from rtengine.apps._cli_serve_args import server_options

    flags = ["serve", "--unused-call-seconds", "7.5", "--record-limit", "12", "--slow-client-seconds", "2.5"]
    options = server_options(parser().parse_args(flags))
    assert (options.unused_call_seconds, options.record_limit, options.slow_client_seconds) == (7.5, 12, 2.5)
    defaults = server_options(parser().parse_args(["serve"]))
    assert (defaults.unused_call_seconds, defaults.record_limit, defaults.slow_client_seconds) == (120.0, 100, 10.0)
