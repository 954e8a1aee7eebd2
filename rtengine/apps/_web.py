"""``rtengine web``: server-side controls for a browser's WebRTC call — an ASGI app (Starlette) on hypercorn's trio
worker, and the example of embedding rtengine in an ASGI app.

The browser is the media peer (microphone, speaker); the app creates the call with its own API key (which never
reaches the browser) and keeps the conversation — sideband, events, text, hang-up — in a nursery owned by the app's
lifespan: nothing is detached, and leaving the lifespan closes every conversation. Routes:

* ``GET /`` — the page (plain HTML and JS, no build step); ``GET /favicon.ico``;
* ``websocket /api/session`` — the page's session (see :mod:`rtengine.apps._web_page`): the page sends its offer over
  it, gets the answer and the conversation's events, sends text and hangs up. The websocket is the only handle on
  its conversation, so whichever worker process accepts it holds the call (``--workers N`` needs no shared state).

Every request passes :class:`~rtengine.apps._web_guard.SameOriginGuard` (Host and Origin of the served origin);
sessions are capped per client and in total (``429`` / ``503``) — a client being its address (its /64 for IPv6), or,
for a connection from a ``--forwarded-allow-ips`` proxy, the address it forwards
(:mod:`~rtengine.apps._web_clients`); an ended conversation is forgotten at once (only
the count of its ``Closed`` reason is kept).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING, Final, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from .. import RealtimeClient, SessionConfig
from ._web_clients import NO_PROXIES, TrustedProxies, client_key
from ._web_guard import Caps, SameOriginGuard, served_names
from ._web_page import PageSession

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework

__all__ = ["WebApp", "WebLimits", "hypercorn_config", "open_web_app"]

log = logging.getLogger("rtengine.apps.web")

#: The largest websocket message a page may send (an SDP offer is a few KiB).
MAX_MESSAGE: Final = 64 * 1024

#: What the app's lifespan needs: the client that creates calls and the session every call gets.
Provider = Callable[[], AbstractAsyncContextManager[tuple[RealtimeClient, SessionConfig]]]


@dataclass(frozen=True)
class WebLimits:
    """Page sessions (each holds at most one call) one worker process serves at a time."""

    max_calls: int = 32
    max_calls_per_client: int = 4
    #: seconds a session may wait before sending its offer (it holds a capped slot meanwhile)
    offer_timeout: float = 30.0


def _json_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "code": code}}, status_code=status)


class WebApp:
    """The app: :attr:`asgi` is the Starlette application to serve; its lifespan owns the conversations' nursery.

    :attr:`pages` holds the live page sessions; :attr:`ended` counts the ``Closed`` reasons of the conversations
    that ended (they are not kept)."""

    def __init__(
        self,
        provide: Provider,
        *,
        names: frozenset[str],
        limits: WebLimits = WebLimits(),
        allowed: frozenset[str] = frozenset(),
        proxies: TrustedProxies = NO_PROXIES,
    ) -> None:
        self._proxies = proxies
        self.pages: set[PageSession] = set()
        self.ended: Counter[str] = Counter()
        self.caps = Caps(limits.max_calls, limits.max_calls_per_client)
        self._offer_timeout = limits.offer_timeout
        self.port = 0
        self._provide = provide
        self._running: tuple[RealtimeClient, SessionConfig, trio.Nursery] | None = None
        self._closing = False
        self._page_ended = trio.Event()
        files = resources.files("rtengine.apps.web")
        self._page = files.joinpath("index.html").read_bytes()
        self._icon = files.joinpath("favicon.svg").read_bytes()
        routes = [
            Route("/", self._index),
            Route("/index.html", self._index),
            Route("/favicon.ico", self._favicon),
            WebSocketRoute("/api/session", self._session),
        ]
        self.asgi = Starlette(
            routes=routes,
            middleware=[Middleware(SameOriginGuard, names=names, allowed=allowed)],
            exception_handlers={HTTPException: self._http_error},
            lifespan=self._lifespan,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        """Open the client and the conversations' nursery; on the way out end every page session (shielded)."""
        async with self._provide() as (client, session), trio.open_nursery() as nursery:
            self._running = (client, session, nursery)
            try:
                yield
            finally:
                with trio.CancelScope(shield=True):
                    await self.shutdown()
                self._running = None
                nursery.cancel_scope.cancel()

    async def shutdown(self) -> None:
        """Refuse new sessions and end every page session: each page gets ``closed`` and a 1001 close.

        Cancelled, it stops waiting for the pages; the sessions still close their conversations (shielded)."""
        self._closing = True
        async with trio.open_nursery() as nursery:
            for page in list(self.pages):
                nursery.start_soon(page.stop)

    async def wait_no_pages(self) -> None:
        """Until the app holds no page session (every session that ended has been forgotten)."""
        while self.pages:
            await self._page_ended.wait()

    async def _index(self, _request: Request) -> Response:
        headers = {"cache-control": "no-store"}
        return Response(self._page, media_type="text/html; charset=utf-8", headers=headers)

    async def _favicon(self, _request: Request) -> Response:
        return Response(self._icon, media_type="image/svg+xml", headers={"cache-control": "max-age=86400"})

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return _json_error(status, "not_found" if status == 404 else "bad_request", f"no route for {request.method}")

    async def _session(self, ws: WebSocket) -> None:
        address = client_key(ws.client.host if ws.client else "unknown", ws.headers, self._proxies)
        running = self._running
        refusal = (503, "shutting_down", "the app is shutting down") if running is None or self._closing else None
        refusal = refusal or self.caps.refusal(address)
        if refusal is not None or running is None:
            status, code, message = refusal or (503, "shutting_down", "")
            await ws.send_denial_response(_json_error(status, code, message))
            return
        client, session, nursery = running
        page = PageSession(ws, client, session, nursery, offer_timeout=self._offer_timeout)
        self.caps.take(address)
        self.pages.add(page)
        try:
            await page.run()
        finally:
            self.pages.discard(page)
            self.caps.give_back(address)
            if page.closed is not None:
                self.ended[page.closed.reason] += 1
            self._page_ended.set()
            self._page_ended = trio.Event()


def hypercorn_config(host: str, port: int) -> Config:
    """hypercorn's settings for the app: bind ``host:port``, small websocket messages, quiet logs."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.websocket_max_message_size = MAX_MESSAGE
    config.graceful_timeout = 2.0
    config.include_server_header = False
    config.errorlog = logging.getLogger("rtengine.apps.web.hypercorn")
    config.accesslog = None
    return config


@asynccontextmanager
async def open_web_app(
    client: RealtimeClient,
    session: SessionConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    limits: WebLimits = WebLimits(),
    allow_hosts: tuple[str, ...] = (),
    forwarded_allow_ips: tuple[str, ...] = (),
) -> AsyncIterator[WebApp]:
    """Serve the app in this process (hypercorn's trio server) for the duration of the block.

    Leaving the block ends every page session (each page sees ``closed`` and shows "disconnected"), stops the server
    and runs the lifespan's exit; on cancellation the same happens, with the session ends shielded."""

    @asynccontextmanager
    async def given() -> AsyncIterator[tuple[RealtimeClient, SessionConfig]]:
        yield client, session

    web = WebApp(
        given,
        names=served_names(host, allow_hosts),
        limits=limits,
        allowed=frozenset(allow_hosts),
        proxies=TrustedProxies(forwarded_allow_ips),
    )
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        app = cast("ASGIFramework", web.asgi)
        binds = await nursery.start(partial(serve, app, hypercorn_config(host, port), shutdown_trigger=stop.wait))
        web.port = int(binds[0].rsplit(":", 1)[1])
        try:
            yield web
        finally:
            with trio.CancelScope(shield=True):
                await web.shutdown()
            stop.set()
