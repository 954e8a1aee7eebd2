"""End to end in a real browser: Debian's Chromium, driven by Playwright, holds the call; the app steers it.

Chromium gets a fake microphone (a beep) and a fake permission prompt; it is the WebRTC media peer against the local
server's aiortc answerer, while ``rtengine web`` creates the call and keeps the sideband. The test needs
``/usr/bin/chromium`` (``.ci/run`` installs it) and the ``playwright`` package (no downloaded browser). Without them
it is skipped — unless ``RTENGINE_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where their absence fails the run.
A screenshot is saved to ``artifacts/browser-call.png``.
"""

import importlib.util
import json
import os
import pathlib
import signal
import sys
from collections.abc import AsyncIterator
from functools import partial
from subprocess import PIPE
from typing import Any

import pytest
import trio
from engine_helpers import API_KEY, client_for, engine_tasks
from web_helpers import no_app_errors

import rtengine
from rtengine.apps._web import WebApp, open_web_app
from rtengine.server import ServerOptions, open_local_server

CHROMIUM = pathlib.Path("/usr/bin/chromium")
ARTIFACTS = pathlib.Path(__file__).resolve().parents[2] / "artifacts"

missing = [
    what
    for what, ok in (
        ("chromium", CHROMIUM.exists()),
        ("playwright", importlib.util.find_spec("playwright") is not None),
    )
    if not ok
]
if missing and os.environ.get("RTENGINE_REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"the browser test needs {', '.join(missing)} (RTENGINE_REQUIRE_BROWSER=1)")
pytestmark = pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")


@pytest.fixture
async def web(caplog: pytest.LogCaptureFixture) -> AsyncIterator[WebApp]:
    options = ServerOptions(api_key=API_KEY, delta_interval=0.02, audio_ms=1500, greeting_ms=1500)
    async with (
        open_local_server(options) as server,
        client_for(server) as client,
        # server VAD off: Chromium's fake microphone beeps, and each beep would be a user turn with an automatic
        # response racing the one this test asks for (tests/engine/test_call_vad.py covers VAD on a call)
        open_web_app(client, rtengine.SessionConfig(turn_detection="disabled")) as app,
    ):
        yield app
    assert no_app_errors(caplog) == []


async def test_a_browser_call_with_server_side_controls(web: WebApp) -> None:
    screenshot = ARTIFACTS / "browser-call.png"
    with trio.fail_after(90):
        driver = pathlib.Path(__file__).parents[1] / "browser_driver.py"
        command = [sys.executable, str(driver), web.url, "hello from chromium", str(screenshot)]
        shown = await _drive(command)
        await web.wait_no_pages()
    assert shown["packets"] > 0  # remote audio arrived over RTP
    assert "You said: hello from chromium" in shown["transcript"]
    assert "answer" in shown["timeline"]
    assert "sideband_joined" in shown["timeline"]
    # the call's data channel (Chromium's SCTP to aiortc's) carried the conversation's events to the page
    assert "session.created ×1" in shown["datachannel"]
    assert "response.done" in shown["datachannel"]
    for phase in ("answer received", "ice connected", "connected", "data channel open", "first audio received"):
        assert f"browser: {phase}" in shown["timeline"], phase
    assert web.ended == {"requested": 1}  # the page's hang-up ended the call, and the app forgot it
    assert shown["worker"] == f"worker {os.getpid()}"
    assert shown["failed"] == []  # the page, its icon and its session all loaded
    assert engine_tasks() == []
    assert screenshot.stat().st_size > 10_000


async def _drive(command: list[str]) -> dict[str, Any]:
    """Run the driver; what the pages showed (its last JSON line). A page that got stuck fails the test with what
    it showed."""
    result = await trio.run_process(command, capture_stdout=True, check=False)
    shown: dict[str, Any] = json.loads((result.stdout.decode().strip().splitlines() or ["{}"])[-1])
    assert "stuck" not in shown, json.dumps(shown["stuck"], indent=1, ensure_ascii=False)
    assert result.returncode == 0
    return shown


async def test_a_page_that_calls_again_at_once_is_not_upset_by_its_last_sessions_late_close(web: WebApp) -> None:
    """Hang up and call again at once: the first session's last words (its ``closed``, its websocket's close) reach
    the page only after the second call started, as they do when the app or the machine is slow. The second call
    still connects, stays connected and hears audio (the page ignores what its old session says)."""
    with trio.fail_after(90):
        driver = pathlib.Path(__file__).parents[1] / "browser_driver.py"
        shown = await _drive([sys.executable, str(driver), "--again", web.url])
        await web.wait_no_pages()
    assert any(late.startswith("close") for late in shown["late"])  # the old session closed during the second call
    assert shown["status"] == "connected"
    assert shown["packets"] > 0
    assert "[error]" not in shown["transcript"]
    assert shown["workers"] == [f"worker {os.getpid()}"] * 2
    # Both calls ended by the page's hang-up, and forgotten. The page sends "hangup" on its (here routed, so slower)
    # websocket and then closes its peer connection: the local server may see the media close first and end the call
    # itself (the conversation then closes as "call_ended") — either way the hang-up ended it.
    assert sum(web.ended.values()) == 2
    assert set(web.ended) <= {"requested", "call_ended"}
    assert shown["failed"] == []


async def _line(stream: trio.abc.ReceiveStream) -> str:
    line = b""
    while not line.endswith(b"\n"):
        chunk = await stream.receive_some(1)
        if not chunk:
            raise AssertionError(f"the stream ended after {line!r}")
        line += chunk
    return line.decode()


def _driven(line: str, app_stderr: bytearray) -> dict[str, Any]:
    """The driver's JSON line; a page that got stuck fails the test with what it showed and the app's stderr."""
    shown: dict[str, Any] = json.loads(line)
    if "stuck" in shown:
        stuck = json.dumps(shown["stuck"], indent=1, ensure_ascii=False)
        raise AssertionError(
            f"a page got stuck: {stuck}\n--- the app's stderr ---\n{app_stderr.decode(errors='replace')}"
        )
    return shown


async def test_two_workers_hold_a_call_each_and_pages_see_the_app_exit() -> None:
    """``rtengine web --workers 2``: two Chromium pages hold a call each on different worker processes at the same
    time; Ctrl-C ends the app cleanly (status 0, no traceback) and both pages show "disconnected"."""
    errors = bytearray()
    with trio.fail_after(240):
        async with trio.open_nursery() as nursery:
            command = [sys.executable, "-m", "rtengine", "web", "--workers", "2", "--port", "0"]
            env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
            app_run = partial(trio.run_process, command, stdout=PIPE, stderr=PIPE, check=False, env=env)
            app: trio.Process = await nursery.start(app_run)
            assert app.stdout is not None
            assert app.stderr is not None

            async def collect(stream: trio.abc.ReceiveStream) -> None:
                async for chunk in stream:
                    errors.extend(chunk)

            nursery.start_soon(collect, app.stderr)
            url = (await _line(app.stdout)).split(" on ", 1)[1].split(" ", 1)[0]
            driver = pathlib.Path(__file__).parents[1] / "browser_driver.py"
            two = [sys.executable, str(driver), "--two", url]
            driver_run = partial(trio.run_process, two, stdout=PIPE, check=False)
            pages: trio.Process = await nursery.start(driver_run)
            assert pages.stdout is not None
            held = _driven(await _line(pages.stdout), errors)
            app.send_signal(signal.SIGINT)
            after = _driven(await _line(pages.stdout), errors)
            assert await app.wait() == 0
            assert await pages.wait() == 0
    workers = {int(shown.removeprefix("worker ")) for shown in held["workers"]}
    assert held["statuses"] == ["connected", "connected"]
    assert all(packets > 0 for packets in held["packets"])
    assert len(workers) == 2  # two worker processes, neither of them the supervisor
    assert app.pid not in workers
    assert after == {"after": ["disconnected", "disconnected"], "failed": []}
    assert b"Traceback" not in errors
