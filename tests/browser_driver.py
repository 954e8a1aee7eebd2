"""Drive calls in Chromium with Playwright (run as a separate process by test_browser.py).

A subprocess, because Playwright's sync API runs its own asyncio loop and the test process already has
trio-asyncio's event-loop policy installed. Usage:

* ``python browser_driver.py URL TEXT SCREENSHOT`` — one call with text; prints what the page showed as one JSON line;
* ``python browser_driver.py --two URL`` — two pages, each holding a call on a different worker process of the app;
  prints one JSON line once both calls are connected, then waits (up to 30 s) for both pages to show
  "disconnected" (the test stops the app) and prints a second line.

* ``python browser_driver.py --again URL`` — one page calls, hangs up and calls again at once, while the app's last
  words on the first session (its ``closed`` and its close) reach the page only after the second call started, as
  they do when the app or the machine is slow; prints what the page showed during the second call as one JSON line.

When a page does not reach the state waited for, the driver prints ``{"stuck": …}`` as its JSON line instead: what
it waited for, the attempt, and what the page showed (status, worker, timeline, transcript, data channel events).

Every response the pages load with an HTTP error status (a missing favicon, say) is reported as ``failed``.
"""

import json
import pathlib
import sys
from collections.abc import Callable

from playwright.sync_api import Browser, Page, WebSocketRoute, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

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


def _open(
    browser: Browser,
    url: str,
    failed: list[str],
    route: Callable[[WebSocketRoute], None] | None = None,
) -> Page:
    page = browser.new_page()
    page.on(
        "response",
        lambda response: failed.append(response.url) if response.status >= 400 else None,
    )
    if route is not None:
        page.route_web_socket("**/api/session", route)
    page.goto(url)
    page.wait_for_load_state("networkidle")
    return page


class Stuck(Exception):
    """A page did not reach the state waited for; ``shown`` says what it showed instead."""

    def __init__(self, shown: dict[str, object]) -> None:
        super().__init__(json.dumps(shown))
        self.shown = shown


def _shown(page: Page) -> dict[str, str]:
    names = ("status", "worker", "timeline", "transcript", "datachannel")
    return {name: page.inner_text(f"#{name}") for name in names}


def _wait_status(page: Page, status: str, what: str, timeout: float = 30000) -> None:
    try:
        page.wait_for_function(f"{STATUS} === '{status}'", timeout=timeout)
    except PlaywrightTimeout:
        raise Stuck(
            {
                "waited": f"{what}: status {status!r} within {timeout / 1000:g} s",
                **_shown(page),
            }
        ) from None


def _call(page: Page, what: str = "call") -> str:
    """Start a call and wait until its audio flows; the worker holding it."""
    page.click("#start")
    _wait_status(page, "connected", what)
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
                f"document.getElementById('transcript').textContent.includes('You said: {text}')",
                timeout=15000,
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
            _wait_status(page, "closed", "hang-up")
            return {**shown, "failed": failed}
        finally:
            browser.close()


class LateWords:
    """Routes a page's sessions to the app. After :meth:`hold`, what the app sends on the current session (its
    messages, its close) is held back until the page opens its next session, and delivered then (anything later
    from it is delivered as it comes); :attr:`late` lists what reached the page after its next session opened."""

    def __init__(self) -> None:
        self.sessions = 0
        self.holding: int | None = None
        self.held: list[Callable[[], None]] = []
        self.late: list[str] = []

    def hold(self) -> None:
        self.holding = self.sessions

    def route(self, page_side: WebSocketRoute) -> None:
        self.sessions += 1
        self.holding = None
        for deliver in self.held:  # the page is opening its next session: the last one's words arrive now
            deliver()
        self.held.clear()
        session = self.sessions
        app_side = page_side.connect_to_server()

        def forward(what: str, deliver: Callable[[], None]) -> None:
            def delivered() -> None:
                if session < self.sessions:
                    self.late.append(what)
                deliver()

            if self.holding == session:
                self.held.append(delivered)
            else:
                delivered()

        def message(text: str | bytes) -> None:
            forward(str(text)[:40], lambda: page_side.send(text))

        def close(code: int | None, reason: str | None) -> None:
            forward(f"close {code}", lambda: page_side.close(code=code, reason=reason))

        app_side.on_message(message)
        app_side.on_close(close)


def drive_again(url: str) -> dict[str, object]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            failed: list[str] = []
            late = LateWords()
            page = _open(browser, url, failed, late.route)
            workers = [_call(page, "first call")]
            late.hold()
            page.click("#hangup")
            _wait_status(page, "closed", "first call's hang-up")
            workers.append(_call(page, "second call, the first session's last words arriving late"))
            page.wait_for_timeout(500)  # anything late still to upset the call has arrived by now
            shown = {
                **_shown(page),
                "packets": page.evaluate("window.inboundPackets()"),
            }
            page.click("#hangup")
            _wait_status(page, "closed", "second call's hang-up")
            return {**shown, "workers": workers, "late": late.late, "failed": failed}
        finally:
            browser.close()


def drive_two(url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            failed: list[str] = []
            first, second = _open(browser, url, failed), _open(browser, url, failed)
            workers = [_call(first, "first page")]
            attempts = 0
            while attempts < 12:  # the kernel hands each connection to either worker
                attempts += 1
                workers[1:] = [_call(second, f"second page, attempt {attempts}")]
                if workers[1] != workers[0]:
                    break
                second.click("#hangup")
                _wait_status(second, "closed", f"second page's hang-up, attempt {attempts}")
            statuses = [page.inner_text("#status") for page in (first, second)]
            packets = [page.evaluate("window.inboundPackets()") for page in (first, second)]
            held = {
                "workers": workers,
                "attempts": attempts,
                "statuses": statuses,
                "packets": packets,
            }
            print(json.dumps(held), flush=True)
            for page, which in ((first, "first"), (second, "second")):
                _wait_status(page, "disconnected", f"{which} page after the app's exit")
            after = [page.inner_text("#status") for page in (first, second)]
            print(json.dumps({"after": after, "failed": failed}), flush=True)
        finally:
            browser.close()


if __name__ == "__main__":
    try:
        if sys.argv[1] == "--two":
            drive_two(sys.argv[2])
        elif sys.argv[1] == "--again":
            print(json.dumps(drive_again(sys.argv[2])))
        else:
            print(json.dumps(drive(sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3]))))
    except Stuck as stuck:
        print(json.dumps({"stuck": stuck.shown}), flush=True)
        sys.exit(1)
