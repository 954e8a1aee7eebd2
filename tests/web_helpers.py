"""Driving ``rtengine web``'s page session the way its page does: one websocket to ``/api/session`` with the page's
own ``Origin``, JSON messages both ways (over rtengine's own websocket client, which closes its socket on every
path)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from rtengine.adapters._ws import open_socket
from rtengine.adapters._ws_socket import RealtimeSocket
from rtengine.apps._web import WebApp
from rtengine.protocol._lifecycle import SocketEnd

Message = dict[str, Any]


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
