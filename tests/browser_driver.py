"""Drive one call in Chromium with Playwright (run as a separate process by test_browser.py).

A subprocess, because Playwright's sync API runs its own asyncio loop and the test process already has
trio-asyncio's event-loop policy installed. Usage: ``python browser_driver.py URL TEXT SCREENSHOT``; prints what the
page showed as one JSON line.
"""

import json
import pathlib
import sys

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
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


def drive(url: str, text: str, screenshot: pathlib.Path) -> dict[str, object]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
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
            page.wait_for_function("document.getElementById('datachannel').textContent.includes('response.done')")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            shown = {
                "packets": packets,
                "transcript": page.inner_text("#transcript"),
                "timeline": page.inner_text("#timeline"),
                "datachannel": page.inner_text("#datachannel"),
            }
            page.click("#hangup")
            page.wait_for_function("document.getElementById('status').textContent === 'closed'")
            return shown
        finally:
            browser.close()


if __name__ == "__main__":
    print(json.dumps(drive(sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3]))))
