"""Small scripted servers for tests on 127.0.0.1:0: HTTP (and websocket) ones — webhook receivers, stand-in Calls
APIs, providers that echo secrets — served by rtengine's own serving code (``rtengine.adapters.serve_connection``),
and raw ones that write whatever bytes a test needs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, nullcontext, suppress
from functools import partial

import trio

from rtengine.adapters import HttpRequest, Limits, serve_connection

Reply = tuple[int, list[tuple[str, str]], bytes]
Route = Callable[[HttpRequest], Awaitable[Reply]]
Upgrade = Callable[[trio.abc.Stream, HttpRequest], Awaitable[None]]


def error_body(message: str, code: str) -> bytes:
    """An API-shaped error body (what the serving code answers a malformed request with)."""
    return json.dumps({"error": {"message": message, "code": code}}).encode()


async def no_websocket(stream: trio.abc.Stream, request: HttpRequest) -> None:
    """A websocket upgrade is not served: the connection is closed."""
    await stream.aclose()


@asynccontextmanager
async def serving_routes(
    route: Route,
    websocket: Upgrade = no_websocket,
    *,
    max_body: int = 65536,
    errors: Callable[[str, str], bytes] = error_body,
    port: int = 0,
) -> AsyncIterator[int]:
    """Serve ``route`` (and ``websocket`` upgrades) on 127.0.0.1 (``port``, 0: any free one); yields the port.
    Leaving the block stops the server and drops its open connections, also on cancellation or an error."""

    async def handle(stream: trio.abc.Stream) -> None:
        await serve_connection(stream, route=route, websocket=websocket, limits=Limits(max_body), error_body=errors)

    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        nursery.start_soon(trio.serve_listeners, handle, listeners)
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def serving_raw(
    handler: Callable[[trio.SocketStream], Awaitable[None]], *, close: bool = False
) -> AsyncIterator[int]:
    """Serve ``handler`` on 127.0.0.1:0, as raw bytes; yields the port. A client that goes away mid-exchange is no
    error (a broken or closed stream ends the handler quietly); with ``close``, the stream is closed after the
    handler. Leaving the block stops the server and drops its open connections."""

    async def guarded(stream: trio.SocketStream) -> None:
        async with stream if close else nullcontext():
            with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await handler(stream)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, guarded, 0, host="127.0.0.1"))
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()
