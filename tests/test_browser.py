"""End to end in a real browser: Debian's Chromium, driven by Playwright, holds the call; the app steers it.

Chromium gets a fake microphone (a beep) and a fake permission prompt; it is the WebRTC media peer against the local
server's aiortc answerer, while ``rtengine web`` creates the call and keeps the sideband. The test needs
``/usr/bin/chromium`` (``.ci/run`` installs it) and the ``playwright`` package (no downloaded browser). Without them
it is skipped — unless ``RTENGINE_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where their absence fails the run.
A screenshot is saved to ``artifacts/browser-call.png``.
"""

import os
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from engine_helpers import API_KEY, client_for, engine_tasks

import rtengine
from rtengine._web import WebApp, open_web_app
from rtengine.events import Closed
from rtengine.server import ServerOptions, open_local_server

CHROMIUM = pathlib.Path("/usr/bin/chromium")
ARTIFACTS = pathlib.Path(__file__).resolve().parent.parent / "artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    # host candidates as IP addresses (not mDNS names), so the local answerer can reach them
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]

try:
    import playwright.sync_api as pw
except ImportError:  # pragma: no cover - the dev extras install it
    pw = None  # type: ignore[assignment]

missing = [what for what, ok in (("chromium", CHROMIUM.exists()), ("playwright", pw is not None)) if not ok]
if missing and os.environ.get("RTENGINE_REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"the browser test needs {', '.join(missing)} (RTENGINE_REQUIRE_BROWSER=1)")
pytestmark = pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")


@pytest.fixture
async def web() -> AsyncIterator[WebApp]:
    options = ServerOptions(api_key=API_KEY, delta_interval=0.02, audio_ms=1500, greeting_ms=1500)
    async with (
        open_local_server(options) as server,
        client_for(server) as client,
        open_web_app(client, rtengine.SessionConfig()) as app,
    ):
        yield app


def drive(url: str, text: str, screenshot: pathlib.Path) -> dict[str, Any]:
    """Click through a call in Chromium; returns what the page showed."""
    assert pw is not None
    with pw.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.click("#start")
            page.wait_for_function("document.getElementById('status').textContent === 'connected'", timeout=30000)
            packets = page.evaluate("window.inboundPackets()")
            page.fill("#text", text)
            page.click("#send")
            page.wait_for_function(
                f"document.getElementById('transcript').textContent.includes('You said: {text}')", timeout=15000
            )
            page.wait_for_function("document.getElementById('timeline').textContent.includes('session_updated')")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            transcript = page.inner_text("#transcript")
            timeline = page.inner_text("#timeline")
            page.click("#hangup")
            page.wait_for_function("document.getElementById('status').textContent === 'closed'")
            return {"packets": packets, "transcript": transcript, "timeline": timeline}
        finally:
            browser.close()


async def test_a_browser_call_with_server_side_controls(web: WebApp) -> None:
    screenshot = ARTIFACTS / "browser-call.png"
    with trio.fail_after(90):
        shown = await trio.to_thread.run_sync(drive, web.url, "hello from chromium", screenshot)
        (call,) = web.calls.values()
        await call.ended.wait()
    assert shown["packets"] > 0  # remote audio arrived over RTP
    assert "You said: hello from chromium" in shown["transcript"]
    assert "answer" in shown["timeline"]
    assert "sideband_joined" in shown["timeline"]
    assert call.closed == Closed("requested")
    assert engine_tasks() == []
    assert screenshot.stat().st_size > 10_000
