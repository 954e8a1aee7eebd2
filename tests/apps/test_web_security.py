"""``rtengine web`` serves its own origin only, ties each call to its page's websocket, caps calls and forgets ended
ones (issue #13, "the web app is open to any page and any client")."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio
from engine_helpers import API_KEY, client_for
from rawnet import read_head
from web_helpers import origin_of, page_session, send, start_call, until, wait_forgotten

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.apps._web import WebApp, WebLimits, open_web_app
from rtengine.apps._web_guard import check_request, served_names
from rtengine.server import ServerOptions, open_local_server


@asynccontextmanager
async def web_app(peers: PeerService, limits: WebLimits | None = None) -> AsyncIterator[WebApp]:
    options = ServerOptions(api_key=API_KEY, delta_interval=0.0)
    async with (
        open_local_server(options, peers=peers) as server,
        client_for(server) as client,
        open_web_app(client, rtengine.SessionConfig(), limits=limits or WebLimits()) as app,
    ):
        yield app


@pytest.fixture
async def web(peers: PeerService) -> AsyncIterator[WebApp]:
    async with web_app(peers) as app:
        yield app


async def _refused_status(web: WebApp, **kwargs: object) -> int | None:
    """The HTTP status the session handshake is refused with, or None when it is accepted."""
    try:
        async with page_session(web, **kwargs):  # type: ignore[arg-type]
            return None
    except rtengine.ConnectFailed as exc:
        return exc.status


async def _raw_handshake_status(web: WebApp, *, host: str, origin: str) -> int:
    """The status line's code for a hand-written websocket upgrade with this ``Host`` and ``Origin``."""
    request = (
        "GET /api/session HTTP/1.1\r\n"
        f"Host: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    stream = await trio.open_tcp_stream("127.0.0.1", web.port)
    async with stream:
        await stream.send_all(request.encode())
        head = await read_head(stream, b"\r\n")
    return int(head.split(b" ", 2)[1])


async def test_a_forged_host_is_refused(web: WebApp) -> None:
    """DNS rebinding: a page on evil.example that resolves to 127.0.0.1 sends ``Host: evil.example:PORT``."""
    forged = f"evil.example:{web.port}"
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=web.url) as http:
            page = await http.get("/", headers={"host": forged})
            own = await http.get("/", headers={"host": f"localhost:{web.port}"})
        status = await _raw_handshake_status(web, host=forged, origin=f"http://{forged}")
        own_status = await _raw_handshake_status(
            web, host=f"localhost:{web.port}", origin=f"http://localhost:{web.port}"
        )
    assert page.status_code == 421
    assert page.json()["error"]["code"] == "unknown_host"
    assert "<html" not in page.text
    assert own.status_code == 200
    assert (status, own_status) == (421, 101)


async def test_a_cross_origin_post_is_refused(web: WebApp) -> None:
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=web.url) as http:
            foreign = await http.post("/", headers={"origin": "https://evil.example"}, content=b"v=0")
            no_origin = await http.post("/", content=b"v=0")
            same_origin = await http.post("/", headers={"origin": origin_of(web)}, content=b"v=0")
            foreign_get = await http.get("/", headers={"origin": "https://evil.example"})
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (403, "cross_origin")
    assert (no_origin.status_code, no_origin.json()["error"]["code"]) == (403, "origin_required")
    assert same_origin.status_code == 405  # past the guard: the route exists, but not for POST
    assert foreign_get.status_code == 403


async def test_the_session_websocket_refuses_a_foreign_origin(web: WebApp) -> None:
    """Cross-site websocket hijacking: any page can open a websocket to 127.0.0.1; the browser sends its Origin."""
    with trio.fail_after(10):
        foreign = await _refused_status(web, origin="https://evil.example")
        lookalike = await _refused_status(web, origin=f"http://127.0.0.1:{web.port}.evil.example")
        accepted = await _refused_status(web)
    assert (foreign, lookalike, accepted) == (403, 403, None)


async def test_a_call_is_reachable_only_through_its_own_session(web: WebApp, offer_sdp: str) -> None:
    """Nothing the page is given names its conversation: a second session cannot steer or end the first's call."""
    with trio.fail_after(20):
        async with page_session(web) as owner:
            messages = await start_call(owner, offer_sdp)
            answer = messages[-1]
            async with page_session(web) as other:
                await send(other, {"type": "text", "text": "hijack"})
                hijack = await until(other, lambda m: m["type"] == "error")
                await send(other, {"type": "hangup"})
                assert await until(other) == []
            (page,) = web.pages
            assert page.conv is not None
            assert page.conv.active
            await send(owner, {"type": "text", "text": "mine"})
            reply = await until(owner, lambda m: m["type"] == "transcript_done")
    assert answer["type"] == "answer"
    assert hijack[-1]["code"] == "not_running"
    assert reply[-1]["transcript"] == "You said: mine"
    texts = [repr(m) for m in messages]
    assert [t for t in texts if "/api/" in t] == []


async def test_calls_are_capped_per_client_and_in_total(peers: PeerService) -> None:
    with trio.fail_after(20):
        async with web_app(peers, WebLimits(max_calls=10, max_calls_per_client=2)) as web:
            async with page_session(web), page_session(web):
                per_client = await _refused_status(web)
            again = await _refused_status(web)  # the slots were given back
        async with (
            web_app(peers, WebLimits(max_calls=2, max_calls_per_client=5)) as web,
            page_session(web),
            page_session(web),
        ):
            total = await _refused_status(web)
    assert (per_client, again, total) == (429, None, 503)


async def test_a_session_that_never_offers_is_closed_and_oversized_messages_are_refused(peers: PeerService) -> None:
    """Holding capped slots open costs an attacker a reconnect per ``offer_timeout``; a huge message is refused."""
    with trio.fail_after(20):
        async with web_app(peers, WebLimits(offer_timeout=0.3)) as web:
            async with page_session(web) as idle:
                messages = await until(idle)
                idle_code = idle.close_code
            async with page_session(web) as huge:
                await huge.send('{"type": "offer", "sdp": "' + "v" * 70_000 + '"}')
                await until(huge)
                huge_code = huge.close_code
            await wait_forgotten(web)
    assert [m["type"] for m in messages] == ["hello", "error"]
    assert messages[-1]["code"] == "no_offer"
    assert idle_code == 1008
    assert huge_code == 1009
    assert web.ended == {}


async def test_ended_conversations_are_forgotten(web: WebApp, peers: PeerService) -> None:
    with trio.fail_after(60):
        for _ in range(12):
            offer = await peers.create_offer()
            try:
                async with page_session(web) as ws:
                    assert (await start_call(ws, offer.local_sdp))[-1]["type"] == "answer"
                    await send(ws, {"type": "hangup"})
                    assert (await until(ws))[-1]["type"] == "closed"
            finally:
                await offer.aclose()
        await wait_forgotten(web)
    assert web.ended == {"requested": 12}
    assert web.pages == set()
    assert web.caps.by_client == {}


def test_the_guard_accepts_only_the_served_origin() -> None:
    names = served_names("127.0.0.1", ["app.example"])
    ok = {"method": "GET", "websocket": True, "port": 8080, "names": names}
    assert check_request(host="localhost:8080", origin="http://localhost:8080", **ok) is None  # type: ignore[arg-type]
    assert check_request(host="app.example:8080", origin="https://app.example:8080", **ok) is None  # type: ignore[arg-type]
    refusals = [
        check_request(host="localhost:8080", origin="http://app.example:8080", **ok),  # type: ignore[arg-type]
        check_request(host="localhost:9090", origin="http://localhost:9090", **ok),  # type: ignore[arg-type]
        check_request(host=None, origin=None, **ok),  # type: ignore[arg-type]
        check_request(host="localhost:8080", origin="null", **ok),  # type: ignore[arg-type]
    ]
    assert [r[0] if r else None for r in refusals] == [403, 421, 421, 403]
    assert "0.0.0.0" not in served_names("0.0.0.0")
