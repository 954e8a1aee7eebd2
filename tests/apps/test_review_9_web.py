"""Adversarial review of session 9 (rev9), apps side: text the wire cannot carry, sent by a web page (JSON may
escape a lone surrogate: ``"\\ud800"``), is the page's error, never the app's: an offer holding one is an
``invalid_offer`` (it used to escape the page session as a bare ``UnicodeEncodeError``, finding 2), and a text
holding one is a ``bad_text`` while the call goes on (finding 8)."""

from collections.abc import AsyncIterator

import pytest
import trio
from web_helpers import no_app_errors, page_session, send, serving_web, start_call, until, wait_forgotten

from rtengine.adapters._peer import PeerService
from rtengine.apps._web import WebApp


@pytest.fixture
async def web(peers: PeerService, caplog: pytest.LogCaptureFixture) -> AsyncIterator[WebApp]:
    async with serving_web(peers) as app:
        yield app
    assert no_app_errors(caplog) == []


async def test_a_page_offer_the_wire_cannot_carry_is_an_invalid_offer(web: WebApp, offer_sdp: str) -> None:
    with trio.fail_after(20):
        async with page_session(web) as ws:
            await ws.send('{"type": "offer", "sdp": "' + offer_sdp.replace("\r\n", "\\r\\n") + 'a=x:\\ud800\\r\\n"}')
            refused = await until(ws, lambda m: m["type"] in ("answer", "error"))
            answered = await start_call(ws, offer_sdp)  # the same page session, a usable offer: the call starts
        await wait_forgotten(web)
    assert refused[-1]["code"] == "invalid_offer"
    assert "lone surrogate" in refused[-1]["message"]
    assert answered[-1]["type"] == "answer"
    assert web.ended == {"requested": 1}


async def test_a_page_text_the_wire_cannot_carry_is_a_bad_text_and_the_call_goes_on(
    web: WebApp, offer_sdp: str
) -> None:
    with trio.fail_after(20):
        async with page_session(web) as ws:
            assert (await start_call(ws, offer_sdp))[-1]["type"] == "answer"
            await ws.send('{"type": "text", "text": "bad \\ud800 text"}')
            refused = await until(ws, lambda m: m["type"] == "error")
            await send(ws, {"type": "text", "text": "fine"})
            echoed = await until(ws, lambda m: m["type"] == "user_text")
            (page,) = web.pages
            assert page.conv is not None
            assert page.conv.active
        await wait_forgotten(web)
    assert refused[-1]["code"] == "bad_text"
    assert "lone surrogate" in refused[-1]["message"]
    assert echoed[-1]["text"] == "fine"
