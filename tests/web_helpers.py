"""Driving ``rtengine web``'s page session the way its page does: one websocket to ``/api/session`` with the page's
own ``Origin``, JSON messages both ways (over rtengine's own websocket client, which closes its socket on every
path); and the app itself in front of a local server (:func:`serving_web`)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from engine_helpers import API_KEY, client_for

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.adapters._ws import open_socket
from rtengine.adapters._ws_socket import RealtimeSocket
from rtengine.apps._web import WebApp, open_web_app
from rtengine.protocol._lifecycle import SocketEnd
from rtengine.server import ServerOptions, open_local_server

Message = dict[str, Any]


@asynccontextmanager
async def serving_web(peers: PeerService) -> AsyncIterator[WebApp]:
    """``rtengine web``'s app for a default session, its client on a local server (the tests' ``web`` fixtures)."""
    options = ServerOptions(api_key=API_KEY, delta_interval=0.0)
    async with (
        open_local_server(options, peers=peers) as server,
        client_for(server) as client,
        open_web_app(client, rtengine.SessionConfig()) as app,
    ):
        yield app


def origin_of(web: WebApp) -> str:
    return web.url.rstrip("/")


@asynccontextmanager
async def page_session(
    web: WebApp, *, origin: str | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[RealtimeSocket]:
    """A page's session websocket (``origin`` defaults to the app's own)."""
    url = web.url.replace("http://", "ws://") + "api/session"
    async with open_socket(url, {"origin": origin or origin_of(web), **(headers or {})}) as ws:
        yield ws


async def send(ws: RealtimeSocket, message: Message) -> None:
    await ws.send(json.dumps(message))


async def until(ws: RealtimeSocket, done: Callable[[Message], bool] = lambda _m: False) -> list[Message]:
    """The messages up to and including the first ``done`` one, or up to the app closing the session."""
    seen: list[Message] = []
    while True:
        raw = await ws.receive()
        if isinstance(raw, SocketEnd):
            return seen
        seen.append(json.loads(raw))
        if done(seen[-1]):
            return seen


async def start_call(ws: RealtimeSocket, offer_sdp: str) -> list[Message]:
    """Send the offer; the messages up to the answer (or an error)."""
    await send(ws, {"type": "offer", "sdp": offer_sdp})
    return await until(ws, lambda m: m["type"] in ("answer", "error"))


async def wait_forgotten(web: WebApp) -> None:
    """Until the app holds no page session."""
    await web.wait_no_pages()


def no_app_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The errors hypercorn logged for the app (an exception out of a route or a session ends up there)."""
    return [r.getMessage() for r in caplog.records if r.name.startswith("rtengine.apps") and r.levelno >= logging.ERROR]
