"""``rtengine web`` never hands the page a key its provider echoes (issue #15, finding 2, the web app's part).

The app runs with ``--base-url`` pointed at a reflecting provider: it quotes the request's ``Authorization`` header
(and its query) in a call-creation error body, in a hostile ``Location``, in a rejected sideband handshake, in
``error`` events and in a close reason. The key is also in the base URL's query. Everything the page receives (the page,
its icon, and its session's messages) and rtengine's log lines at DEBUG are free of the key.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
import trio
from echo_servers import echo, echo_error_body, echoing_server
from engine_fakes import ANSWER
from loopback import Reply
from web_helpers import page_session, start_call, until

import rtengine
from rtengine.adapters import HttpRequest
from rtengine.apps._web import open_web_app

KEYS = ["sk-proj-WEBechoSecret0123456789abcdef", "gw7f3a9c1e5b2d8f4a6c0e9b1d3f5a7c9e"]


async def _route(request: HttpRequest) -> Reply:
    """``/refuse/…``: 400 echoing the key; ``/location/…``: 201 with the key in the ``Location``; else a call."""
    if request.path.startswith("/refuse/"):
        return 400, [("content-type", "application/json")], echo_error_body(echo(request), "invalid_value")
    if request.path.startswith("/location/"):
        token = request.headers.get("authorization", "").partition(" ")[2]
        return 201, [("content-type", "application/sdp"), ("location", f"/v1/realtime/calls/{token}")], ANSWER.encode()
    return 201, [("content-type", "application/sdp"), ("location", "/v1/realtime/calls/rtc_echo1")], ANSWER.encode()


async def _page_session(base_url: str, key: str, offer_sdp: str) -> tuple[list[Any], list[str]]:
    """What a page sees for one call: its session's messages up to the answer or the error, then (for a call) the
    rest up to the app closing the session; and the page and icon it loads."""
    client = rtengine.RealtimeClient(base_url, api_key=key, call_retries=0, sideband_retries=0, close_timeout=1.0)
    async with client, open_web_app(client, rtengine.SessionConfig()) as web, httpx.AsyncClient() as http:
        loaded = [(await http.get(web.url + path)).text for path in ("", "favicon.ico")]
        async with page_session(web) as ws:
            created = await start_call(ws, offer_sdp)
            if created[-1]["type"] != "answer":
                return created, loaded
            return [*created, *await until(ws)], loaded


@pytest.mark.parametrize("key", KEYS)
async def test_the_page_never_receives_a_key_the_provider_echoes(
    key: str, offer_sdp: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with trio.fail_after(30):
        async with echoing_server(_route) as port:
            base = f"http://127.0.0.1:{port}"
            refused, loaded = await _page_session(f"{base}/refuse/v1?api-key={key}", key, offer_sdp)
            located, _ = await _page_session(f"{base}/location/v1?api-key={key}", key, offer_sdp)
            rejected, _ = await _page_session(f"{base}/reject/v1?api-key={key}", key, offer_sdp)
            echoed, _ = await _page_session(f"{base}/errors/v1?api-key={key}", key, offer_sdp)
    assert (refused[-1]["code"], located[-1]["code"]) == ("provider_error", "provider_error")
    assert "Invalid credentials" in refused[-1]["message"]  # the provider's text is passed on, scrubbed
    assert [m["type"] for m in rejected + echoed if m["type"] == "answer"] == ["answer", "answer"]
    assert any(m["type"] == "error" and "Invalid credentials" in m["message"] for m in rejected)
    assert [m["code"] for m in echoed if m["type"] == "error"] == ["response_cancel_not_active", "invalid_api_key"]
    assert echoed[-1]["type"] == "closed"
    page = [*loaded, *map(json.dumps, refused + located + rejected + echoed)]
    assert [text for text in page if key in text] == []
    # rtengine's own loggers (httpcore's DEBUG trace prints raw response headers, the hostile Location included)
    records = [f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records if r.name.startswith("rtengine")]
    assert len(records) > 4
    assert [r for r in records if key in r] == []
