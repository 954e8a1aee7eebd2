"""Drive calls in Chromium with Playwright (run as a separate process by test_browser.py).

A subprocess, because Playwright's sync API runs its own asyncio loop and the test process already has
trio-asyncio's event-loop policy installed. Usage:

* ``python browser_driver.py URL TEXT SCREENSHOT`` — one call with text; prints what the page showed as one JSON line;
* ``python browser_driver.py --two URL`` — two pages, each holding a call on a different worker process of the app;
  prints one JSON line once both calls are connected, then waits (up to 30 s) for both pages to show
  "disconnected" (the test stops the app) and prints a second line.

Every response the pages load with an HTTP error status (a missing favicon, say) is reported as ``failed``.
"""

import json
import pathlib
import sys

from playwright.sync_api import Browser, Page, sync_playwright

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
STATUS = "document.getElementById('status').textContent"


def _open(browser: Browser, url: str, failed: list[str]) -> Page:
    page = browser.new_page()
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    page.goto(url)
    page.wait_for_load_state("networkidle")
    return page


def _call(page: Page) -> str:
    """Start a call and wait until its audio flows; the worker holding it."""
    page.click("#start")
    page.wait_for_function(f"{STATUS} === 'connected'", timeout=30000)
    return page.inner_text("#worker")


def drive(url: str, text: str, screenshot: pathlib.Path) -> dict[str, object]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            failed: list[str] = []
            page = _open(browser, url, failed)
            worker = _call(page)
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
                "worker": worker,
                "transcript": page.inner_text("#transcript"),
                "timeline": page.inner_text("#timeline"),
                "datachannel": page.inner_text("#datachannel"),
            }
            page.click("#hangup")
            page.wait_for_function(f"{STATUS} === 'closed'")
            return {**shown, "failed": failed}
        finally:
            browser.close()


def drive_two(url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            failed: list[str] = []
            first, second = _open(browser, url, failed), _open(browser, url, failed)
            workers = [_call(first)]
            attempts = 0
            while attempts < 12:  # the kernel hands each connection to either worker
                attempts += 1
                workers[1:] = [_call(second)]
                if workers[1] != workers[0]:
                    break
                second.click("#hangup")
                second.wait_for_function(f"{STATUS} === 'closed'")
            statuses = [page.inner_text("#status") for page in (first, second)]
            packets = [page.evaluate("window.inboundPackets()") for page in (first, second)]
            held = {"workers": workers, "attempts": attempts, "statuses": statuses, "packets": packets}
            print(json.dumps(held), flush=True)
            for page in (first, second):
                page.wait_for_function(f"{STATUS} === 'disconnected'", timeout=30000)
            after = [page.inner_text("#status") for page in (first, second)]
            print(json.dumps({"after": after, "failed": failed}), flush=True)
        finally:
            browser.close()


if __name__ == "__main__":
    if sys.argv[1] == "--two":
        drive_two(sys.argv[2])
    else:
        print(json.dumps(drive(sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3]))))
