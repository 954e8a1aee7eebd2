"""A reflecting provider for the secrets tests (issue #15, finding 2): it quotes the request's ``Authorization``
header (and its query) back — in error bodies, in a rejected sideband handshake, in ``error`` events and in a close
reason — so a test can check that the key reaches no event, log line, exception or page."""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager

import trio
from loopback import Route, serving_routes

from rtengine.adapters._serving import HttpRequest, WebSocket, WsFrame


def echo(request: HttpRequest) -> str:
    """What a reflecting server says: the request's own auth header, quoted."""
    return f"Invalid credentials: {request.headers.get('authorization', '')!r} (query {request.query})"


def echo_error_body(message: str, code: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": code}}).encode()


async def echoing_sideband(stream: trio.abc.Stream, request: HttpRequest) -> None:
    """``/reject/…``: a 401 handshake echoing the key. Else: accept, answer the ``session.update`` with a benign
    ``error`` echoing the key, then a fatal one echoing it too, then a close whose reason quotes the key."""
    ws = WebSocket(stream, request, 1 << 20)
    if request.path.startswith("/reject/"):
        await ws.reject(401, echo_error_body(echo(request), "invalid_api_key"))
        return
    await ws.accept()
    frame = await ws.receive()
    assert isinstance(frame, WsFrame)
    for code in ("response_cancel_not_active", "invalid_api_key"):
        error = {"message": echo(request), "type": "invalid_request_error", "code": code, "param": None}
        await ws.send_text(json.dumps({"type": "error", "event_id": f"event_{code}", "error": error}))
    await ws.send_close(1008, f"bye {request.headers.get('authorization', '')}"[:120])
    await ws.receive()


def echoing_server(route: Route) -> AbstractAsyncContextManager[int]:
    """``route`` for HTTP and ``echoing_sideband`` for websockets, on 127.0.0.1:0; yields the port."""
    return serving_routes(route, echoing_sideband, max_body=1 << 20, errors=echo_error_body)
