"""The web app against a hostile client (issue 13): what a page session does with messages no page sends, and with a
page that goes away while its offer is being answered (in-process app over loopback, port 0)."""

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import wsproto.events as wse
from engine_helpers import API_KEY, client_for
from web_helpers import Message, no_app_errors, page_session, send, serving_web, until, wait_forgotten

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.apps._web import WebApp, open_web_app
from rtengine.protocol._lifecycle import SocketEnd
from rtengine.server import Faults, ServerOptions, open_local_server


@pytest.fixture
async def web(peers: PeerService) -> AsyncIterator[WebApp]:
    async with serving_web(peers) as app:
        yield app


async def _reply_to(web: WebApp, message: str | bytes) -> tuple[list[Message], int | None]:
    """Send ``message`` then a ``text`` message on a fresh page session: the two replies (or fewer, when the app
    closed the session), and the close code if it did."""
    seen: list[Message] = []
    async with page_session(web) as ws:
        assert (await until(ws, lambda m: m["type"] == "hello"))[-1]["type"] == "hello"
        if isinstance(message, bytes):
            await ws._write(wse.BytesMessage(data=message))  # the page's socket has no public binary send
        else:
            await ws.send(message)
        await send(ws, {"type": "text", "text": "still there?"})
        for _ in range(2):
            raw = await ws.receive()
            if isinstance(raw, SocketEnd):
                return seen, raw.code
            seen.append(json.loads(raw))
    return seen, None


async def test_a_binary_message_gets_an_error_not_a_crash(web: WebApp, caplog: pytest.LogCaptureFixture) -> None:
    with trio.fail_after(15):
        seen, code = await _reply_to(web, b"\x00\x01binary")
    assert no_app_errors(caplog) == []
    assert code is None, f"the session was closed ({code}) after a binary message: {seen}"
    assert seen[0]["code"] == "bad_json"


async def test_deeply_nested_json_gets_an_error_not_a_crash(web: WebApp, caplog: pytest.LogCaptureFixture) -> None:
    with trio.fail_after(15):
        seen, code = await _reply_to(web, "[" * 20_000 + "]" * 20_000)
    assert no_app_errors(caplog) == []
    assert code is None, f"the session was closed ({code}) after nested JSON: {seen}"
    assert seen[0]["code"] == "bad_json"


async def test_a_page_gone_while_its_offer_is_answered_leaves_nothing(
    peers: PeerService, offer_sdp: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Held: the page closes its websocket while the provider is still answering; the call is ended, not kept."""
    options = ServerOptions(api_key=API_KEY, delta_interval=0.0, faults=Faults(call_delay=1.5))
    with trio.fail_after(40):
        async with (
            open_local_server(options, peers=peers) as server,
            client_for(server) as client,
            open_web_app(client, rtengine.SessionConfig()) as web,
        ):
            async with page_session(web) as ws:
                assert (await until(ws, lambda m: m["type"] == "hello"))[-1]["type"] == "hello"
                await send(ws, {"type": "offer", "sdp": offer_sdp})
                await trio.sleep(0.3)
            await wait_forgotten(web)
            assert web.caps.by_client == {}
            assert sum(web.ended.values()) <= 1
    assert no_app_errors(caplog) == []


async def test_an_allowed_host_works_behind_a_reverse_proxy(peers: PeerService) -> None:
    name = "app.example.com"
    options = ServerOptions(api_key=API_KEY, delta_interval=0.0)
    with trio.fail_after(20):
        async with (
            open_local_server(options, peers=peers) as server,
            client_for(server) as client,
            open_web_app(client, rtengine.SessionConfig(), allow_hosts=(name,)) as web,
        ):
            async with httpx.AsyncClient(base_url=web.url, trust_env=False) as http:
                page = await http.get("/", headers={"host": name})
            handshake = await _handshake_status(web, host=name, origin=f"https://{name}")
    assert page.status_code == 200
    assert handshake == 101


async def _handshake_status(web: WebApp, *, host: str, origin: str) -> int:
    """The status code of a hand-written websocket upgrade to ``/api/session`` with this ``Host`` and ``Origin``."""
    request = (
        f"GET /api/session HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    async with await trio.open_tcp_stream("127.0.0.1", web.port) as stream:
        await stream.send_all(request.encode())
        head = b""
        while b"\r\n" not in head and (chunk := await stream.receive_some(4096)):
            head += chunk
    return int(head.split(b" ", 2)[1])
