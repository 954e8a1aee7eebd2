"""A key a server echoes in the close reason of its answer to the client's close never reaches an event or a log
line (issue #15, finding 2: the close reason on the client-initiated path)."""

from __future__ import annotations

import logging

import pytest
import trio
from loopback import Reply, serving_routes

from rtengine.adapters._serving import HttpRequest, WebSocket, WsClosed
from rtengine.adapters._ws import open_socket

KEY = "gw7f3a9c1e5b2d8f4a6c0e9b1d3f5a7c9e"


async def _route(request: HttpRequest) -> Reply:  # pragma: no cover - only websockets are opened
    return 404, [], b""


async def _websocket(stream: trio.abc.Stream, request: HttpRequest) -> None:
    """Accept; when the client closes, answer its close with the request's key as the reason."""
    ws = WebSocket(stream, request, 1 << 20)
    ws.answer_close = False
    await ws.accept()
    while not isinstance(await ws.receive(), WsClosed):
        pass
    await ws.send_close(1000, f"bye {request.headers.get('authorization', '')}"[:120])


async def test_a_key_in_the_close_reason_answering_ours_is_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with trio.fail_after(10):
        async with serving_routes(_route, _websocket, max_body=1 << 20) as port:
            url = f"ws://127.0.0.1:{port}/v1/realtime"
            async with open_socket(url, {"Authorization": f"Bearer {KEY}"}) as sock:
                pass  # leaving the block closes: the server answers with the key as its reason
    assert sock.close_reason is not None
    assert sock.close_reason == "bye <redacted>"  # the server's reason is kept, scrubbed
    assert KEY not in sock.close_reason
    assert [r for r in caplog.records if KEY in r.getMessage()] == []
