"""``rtengine web``'s page and page sessions, driven with httpx and a websocket over loopback (the browser test is
separate)."""

from collections.abc import AsyncIterator

import httpx
import pytest
import trio
from engine_helpers import API_KEY, client_for, engine_tasks
from web_helpers import Message, no_app_errors, page_session, send, serving_web, start_call, until, wait_forgotten

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.apps._web import WebApp, open_web_app
from rtengine.server import ServerOptions, open_local_server


@pytest.fixture
async def web(peers: PeerService, caplog: pytest.LogCaptureFixture) -> AsyncIterator[WebApp]:
    async with serving_web(peers) as app:
        yield app
    assert no_app_errors(caplog) == []


async def test_the_page_and_its_icon_are_served(web: WebApp) -> None:
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=web.url) as http:
            page = await http.get("/")
            icon = await http.get("/favicon.ico")
            missing = await http.get("/elsewhere")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for element in ("start", "hangup", "status", "worker", "timeline", "transcript", "text", "send"):
        assert f'id="{element}"' in page.text
    assert API_KEY not in page.text
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/svg+xml"
    assert icon.content.startswith(b"<svg")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert page.headers["x-rtengine-worker"].isdigit()


async def test_bad_messages_get_clear_errors_and_start_nothing(web: WebApp) -> None:
    with trio.fail_after(10):
        async with page_session(web) as ws:
            hello = await until(ws, lambda m: m["type"] == "hello")
            replies: list[Message] = []
            for raw in ("not json", '["offer"]', '{"type": "offer", "sdp": 7}', '{"type": "text", "text": "hi"}'):
                await ws.send(raw)
                replies += await until(ws, lambda m: m["type"] == "error")
            replies += await start_call(ws, "hello")
            await send(ws, {"type": "text", "text": ""})
            replies += await until(ws, lambda m: m["type"] == "error")
            await send(ws, {"type": "hangup"})
            assert await until(ws) == []  # the session ends: no call to hang up
    await wait_forgotten(web)
    assert hello[0]["worker"] > 0
    codes = [m["code"] for m in replies]
    assert codes == ["bad_json", "unknown_message", "invalid_offer", "not_running", "invalid_offer", "bad_text"]
    assert web.ended == {}


async def test_two_concurrent_conversations(web: WebApp, peers: PeerService) -> None:
    replies: dict[str, list[Message]] = {}

    async def converse(text: str) -> None:
        offer = await peers.create_offer()
        try:
            async with page_session(web) as ws:
                answer = (await start_call(ws, offer.local_sdp))[-1]
                assert answer["type"] == "answer"
                assert answer["sdp"].startswith("v=0")
                await send(ws, {"type": "text", "text": text})
                replies[text] = [answer, *await until(ws, lambda m: m["type"] == "transcript_done")]
                await send(ws, {"type": "hangup"})
                replies[text] += await until(ws)  # up to the app closing the session
                assert ws.closed
        finally:
            await offer.aclose()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for text in ("first", "second"):
                nursery.start_soon(converse, text)
        await wait_forgotten(web)
    assert len({replies[t][0]["call_id"] for t in ("first", "second")}) == 2
    for text in ("first", "second"):
        kinds = [m["type"] for m in replies[text]]
        assert {"type": "transcript_done", "transcript": f"You said: {text}"} in replies[text]
        assert {"type": "user_text", "text": text} in replies[text]
        assert any(m["type"] == "phase" and m["phase"] == "answer" for m in replies[text])
        assert kinds[-1] == "closed"
        assert replies[text][-1]["reason"] == "requested"
    assert web.ended == {"requested": 2}
    assert engine_tasks() == []


async def test_a_page_that_goes_away_ends_its_conversation(web: WebApp, offer_sdp: str) -> None:
    with trio.fail_after(20):
        async with page_session(web) as ws:
            assert (await start_call(ws, offer_sdp))[-1]["type"] == "answer"
            (page,) = web.pages
            assert page.conv is not None
            conv = page.conv
            was_active = conv.active
        await wait_forgotten(web)
    assert was_active
    assert conv.active is False
    assert web.ended == {"requested": 1}
    assert web.caps.by_client == {}


async def test_shutting_the_app_down_ends_every_conversation(peers: PeerService) -> None:
    options = ServerOptions(api_key=API_KEY, delta_interval=0.0)
    seen: list[list[Message]] = []
    codes: list[int | None] = []
    with trio.fail_after(20):
        offers = [await peers.create_offer() for _ in range(2)]
        async with open_local_server(options, peers=peers) as server, client_for(server) as client:
            async with trio.open_nursery() as pages, open_web_app(client, rtengine.SessionConfig()) as web:

                async def page(offer_sdp: str, task_status: trio.TaskStatus[None]) -> None:
                    async with page_session(web) as ws:
                        assert (await start_call(ws, offer_sdp))[-1]["type"] == "answer"
                        task_status.started()
                        seen.append(await until(ws))
                        codes.append(ws.close_code)

                for offer in offers:
                    await pages.start(page, offer.local_sdp)
                conversations = [p.conv for p in web.pages]
                assert all(conv is not None and conv.active for conv in conversations)
            assert web.ended == {"requested": 2}
            assert web.pages == set()
            assert engine_tasks() == []
        for offer in offers:
            await offer.aclose()
    assert [messages[-1]["type"] for messages in seen] == ["closed", "closed"]
    assert codes == [1001, 1001]  # going away: the page shows "disconnected"
