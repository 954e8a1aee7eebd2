"""``rtengine serve --session-max-seconds`` / ``--call-connect-seconds`` as a user runs them (real subprocesses)."""

import os
import signal

import trio
from helpers import RTENGINE, start_serve

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
        ):
            result = await trio.run_process(
                [*RTENGINE, "serve", "--port", "0", flag, value], capture_stderr=True, check=False, env=_env()
            )
            assert result.returncode == 2
            assert flag.encode() in result.stderr
