"""``rtengine web``'s endpoints, driven with httpx and websockets over loopback (the browser test is separate)."""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
from engine_helpers import API_KEY, client_for, engine_tasks

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.adapters._ws import open_socket
from rtengine.apps._web import WebApp, open_web_app
from rtengine.protocol._lifecycle import SocketEnd
from rtengine.server import LocalServer, ServerOptions, open_local_server


@pytest.fixture
async def app(peers: PeerService) -> AsyncIterator[tuple[WebApp, LocalServer]]:
    options = ServerOptions(api_key=API_KEY, delta_interval=0.0)
    async with (
        open_local_server(options, peers=peers) as server,
        client_for(server) as client,
        open_web_app(client, rtengine.SessionConfig()) as web,
    ):
        yield web, server


async def _events_until(web: WebApp, call_id: str, predicate: object, send: str | None = None) -> list[dict[str, Any]]:
    url = web.url.replace("http://", "ws://") + f"api/calls/{call_id}/events"
    seen: list[dict[str, Any]] = []
    async with open_socket(url, {}) as sock:
        while True:
            frame = await sock.receive()
            if isinstance(frame, SocketEnd):
                return seen
            seen.append(json.loads(frame))
            if callable(predicate) and predicate(seen[-1]):
                return seen


async def test_the_page_has_the_elements_tests_drive(app: tuple[WebApp, LocalServer]) -> None:
    web, _ = app
    with trio.fail_after(10):
        async with httpx.AsyncClient() as http:
            page = await http.get(web.url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for element in ("start", "hangup", "status", "timeline", "transcript", "text", "send"):
        assert f'id="{element}"' in page.text
    assert API_KEY not in page.text


async def test_bad_input_gets_clear_4xx_errors(app: tuple[WebApp, LocalServer]) -> None:
    web, _ = app
    with trio.fail_after(10):
        async with httpx.AsyncClient(base_url=web.url) as http:
            not_sdp = await http.post("api/calls", content=b"hello", headers={"content-type": "application/sdp"})
            assert not_sdp.status_code == 400
            assert not_sdp.json()["error"]["code"] == "invalid_offer"
            huge = await http.post("api/calls", content=b"v=0" + b"x" * 70_000)
            assert huge.status_code == 413
            for method, path in (
                ("POST", "api/calls/nope/text"),
                ("POST", "api/calls/nope/hangup"),
                ("GET", "api/calls/nope"),
                ("GET", "elsewhere"),
            ):
                response = await http.request(method, path, content=b"{}")
                assert response.status_code == 404, path
                assert "error" in response.json()
    assert web.calls == {}


async def test_two_concurrent_conversations(app: tuple[WebApp, LocalServer], peers: PeerService) -> None:
    web, _server = app
    with trio.fail_after(20):
        offers = [await peers.create_offer() for _ in range(2)]
        async with httpx.AsyncClient(base_url=web.url) as http:
            created = [
                (
                    await http.post(
                        "api/calls", content=o.local_sdp.encode(), headers={"content-type": "application/sdp"}
                    )
                )
                for o in offers
            ]
            assert [r.status_code for r in created] == [200, 200]
            ids = [r.json()["id"] for r in created]
            assert all(r.json()["answer"].startswith("v=0") for r in created)
            assert len({r.json()["call_id"] for r in created}) == 2
            bad = await http.post(f"api/calls/{ids[0]}/text", content=b"not json")
            assert bad.status_code == 400
            replies: dict[str, list[dict[str, Any]]] = {}

            async def converse(call_id: str, text: str) -> None:
                async with trio.open_nursery() as nursery:

                    async def listen() -> None:
                        replies[call_id] = await _events_until(web, call_id, lambda m: m["type"] == "transcript_done")

                    nursery.start_soon(listen)
                    await trio.sleep(0.1)
                    response = await http.post(f"api/calls/{call_id}/text", json={"text": text})
                    assert response.status_code == 200

            async with trio.open_nursery() as nursery:
                for call_id, text in zip(ids, ("first", "second"), strict=True):
                    nursery.start_soon(converse, call_id, text)
            for call_id, text in zip(ids, ("first", "second"), strict=True):
                assert replies[call_id][-1]["transcript"] == f"You said: {text}"
                assert any(m["type"] == "phase" and m["phase"] == "answer" for m in replies[call_id])
            for call_id in ids:
                assert (await http.post(f"api/calls/{call_id}/hangup")).json()["closed"] == "requested"
                late = await http.post(f"api/calls/{call_id}/text", json={"text": "too late"})
                assert late.status_code == 409
        for offer in offers:
            await offer.aclose()
    assert engine_tasks() == []


async def test_a_page_that_goes_away_ends_its_conversation(app: tuple[WebApp, LocalServer], peers: PeerService) -> None:
    web, _ = app
    with trio.fail_after(20):
        offer = await peers.create_offer()
        async with httpx.AsyncClient(base_url=web.url) as http:
            created = await http.post("api/calls", content=offer.local_sdp.encode())
            call_id = created.json()["id"]
            seen = await _events_until(web, call_id, lambda m: m["type"] == "phase")  # subscribe, then leave
            assert seen
            call = web.calls[call_id]
            await call.ended.wait()
            state = (await http.get(f"api/calls/{call_id}")).json()
        await offer.aclose()
    assert state["closed"] == "requested"
    assert state["active"] is False


async def test_shutting_the_app_down_ends_every_conversation(peers: PeerService) -> None:
    options = ServerOptions(api_key=API_KEY, delta_interval=0.0)
    with trio.fail_after(20):
        offers = [await peers.create_offer() for _ in range(2)]
        async with open_local_server(options, peers=peers) as server, client_for(server) as client:
            async with open_web_app(client, rtengine.SessionConfig()) as web:
                async with httpx.AsyncClient(base_url=web.url) as http:
                    for offer in offers:
                        created = await http.post("api/calls", content=offer.local_sdp.encode())
                        assert created.status_code == 200
                calls = list(web.calls.values())
                assert all(call.conv.active for call in calls)
            assert [call.closed for call in calls] == [rtengine.events.Closed("requested")] * 2
            assert engine_tasks() == []
        for offer in offers:
            await offer.aclose()
