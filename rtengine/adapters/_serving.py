"""HTTP/1.1 and websocket plumbing for the local server: h11 and wsproto state machines over trio streams.

Why not hypercorn: it answers a client's CLOSE frame itself and reports code 1006 to the app, so "record the client's
close code" and "never answer a CLOSE" cannot be built through ASGI (measured with hypercorn's trio worker). h11 and
wsproto are the sans-IO parsers hypercorn itself uses; this module only moves bytes between them and a trio stream, so
no HTTP or websocket parsing is written by hand. The websocket side lives in :mod:`._ws_server` (re-exported here).

Every read is bounded (:class:`Limits`: head and body deadlines and sizes, a connection cap) and every request gets
an answer — a bad one its 4xx, sent before the connection closes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final

import h11
import trio

from ..protocol._util import collapse_single_group
from ._ws_server import HandshakeError, WebSocket, WsClosed, WsFrame

__all__ = [
    "HandshakeError",
    "HttpRequest",
    "Limits",
    "Response",
    "WebSocket",
    "WsClosed",
    "WsFrame",
    "read_request",
    "send_response",
    "serve_connection",
]

log = logging.getLogger("rtengine.server")

#: ``(status, headers, body)``.
Response = tuple[int, list[tuple[str, str]], bytes]
#: Builds a JSON error body from a message and a code.
ErrorBody = Callable[[str, str], bytes]

RECEIVE_SIZE: Final = 65536
#: How long, and how much, a connection answered early keeps reading (and dropping) what the client still sends.
LINGER_SECONDS: Final = 1.0
LINGER_BYTES: Final = 2 * 1024 * 1024


@dataclass(slots=True)
class HttpRequest:
    """One parsed request head (and, once read, its body)."""

    method: str
    target: str
    headers: dict[str, str]
    raw_head: bytes = field(repr=False)
    body: bytes = field(default=b"", repr=False)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    @property
    def is_websocket(self) -> bool:
        return (
            self.method == "GET"
            and self.headers.get("upgrade", "").lower() == "websocket"
            and "upgrade" in self.headers.get("connection", "").lower()
        )


class BodyTooLarge(Exception):
    pass


async def read_request(stream: trio.abc.Stream, conn: h11.Connection) -> HttpRequest | None:
    """Read the next request head. ``None`` when the client closed the connection between requests."""
    raw = bytearray(conn.trailing_data[0])
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(RECEIVE_SIZE)
            raw += data
            conn.receive_data(bytes(data))
            continue
        if isinstance(event, h11.ConnectionClosed):
            return None
        if isinstance(event, h11.Request):
            headers: dict[str, str] = {}
            for name, value in event.headers:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            return HttpRequest(event.method.decode("ascii"), event.target.decode("latin-1"), headers, bytes(raw))
        raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} before a request")


async def read_body(stream: trio.abc.Stream, conn: h11.Connection, limit: int) -> bytes:
    """Read the current request's body; raises :class:`BodyTooLarge` past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(RECEIVE_SIZE)))
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if size > limit:
                raise BodyTooLarge
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return b"".join(chunks)
        else:
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} in a request body")


async def send_response(
    stream: trio.abc.Stream,
    conn: h11.Connection,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    close: bool = False,
    head: bool = False,
) -> None:
    """Send a complete response (``Content-Length`` framing); ``head``: the answer to a HEAD, without the body."""
    all_headers = [*headers, ("content-length", str(len(body))), ("server", "rtengine-local")]
    if close:
        all_headers.append(("connection", "close"))
    data = conn.send(h11.Response(status_code=status, headers=all_headers))
    assert data is not None
    if not head:
        data += conn.send(h11.Data(data=body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)


@dataclass(frozen=True, slots=True)
class Limits:
    """How long a client may take and what it may send: ``header_timeout`` — seconds for a whole request head
    (and for an idle keep-alive connection's next one); ``body_timeout`` — seconds for a whole request body;
    ``max_body`` — bytes of a request body (413 beyond); ``max_head`` — bytes of a request head; ``refuse`` —
    the server is at its connection cap: answer 503 at once (before any request head), close."""

    max_body: int
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_head: int = 64 * 1024
    refuse: bool = False


async def serve_connection(
    stream: trio.abc.Stream,
    *,
    route: Callable[[HttpRequest], Awaitable[Response]],
    websocket: Callable[[trio.abc.Stream, HttpRequest], Awaitable[None]],
    limits: Limits,
    error_body: ErrorBody,
) -> None:
    """Serve one TCP connection: HTTP/1.1 requests (keep-alive) through ``route``, or one websocket upgrade handed
    to ``websocket``. A body over ``limits.max_body`` gets 413, bad HTTP 400, a client too slow for the limits'
    timeouts 408 (or, idle between requests, a plain close). Never raises; always closes the stream.
    """
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head)

    async def fail(status: int, message: str, code: str, extra: list[tuple[str, str]] | None = None) -> None:
        headers = [*json_type, *(extra or [])]
        body = error_body(message, code)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            try:
                await send_response(stream, conn, status, headers, body, close=True, head=_is_head(conn))
            except h11.LocalProtocolError:
                if conn.our_state is h11.IDLE:  # no request head was parsed, so h11 cannot answer: by hand
                    await stream.send_all(_raw_response(status, headers, body))
            await _linger(stream)

    json_type = [("content-type", "application/json")]
    try:
        with collapse_single_group():
            if limits.refuse:  # at once, not after the client's head: a flood of idle connections must not hold fds
                message = "The server is at its connection limit; try again shortly."
                return await fail(503, message, "server_busy", [("retry-after", "1")])
            while True:
                with trio.move_on_after(limits.header_timeout) as head_timer:
                    request = await read_request(stream, conn)
                if head_timer.cancelled_caught:
                    if conn.trailing_data[0]:  # a head begun but not finished; an idle connection just closes
                        await fail(408, "Request head not received in time.", "request_timeout")
                    return None
                if request is None:
                    return None
                if request.is_websocket:
                    try:
                        await websocket(stream, request)
                    except HandshakeError as exc:
                        await fail(400, f"Bad websocket upgrade request: {exc}", "bad_request")
                    return None
                with trio.move_on_after(limits.body_timeout) as body_timer:
                    try:
                        request.body = await read_body(stream, conn, limits.max_body)
                    except BodyTooLarge:
                        return await fail(413, f"Request body exceeds {limits.max_body} bytes.", "body_too_large")
                if body_timer.cancelled_caught:
                    return await fail(408, "Request body not received in time.", "request_timeout")
                status, headers, body = await route(request)
                await send_response(stream, conn, status, headers, body, head=request.method == "HEAD")
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return None
                conn.start_next_cycle()
    except h11.RemoteProtocolError as exc:
        log.debug("bad HTTP from client: %s", exc)
        await fail(400, f"Bad HTTP request: {exc}", "bad_request")
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    except BaseExceptionGroup as group:
        # Several failures at once, e.g. a peer that vanished mid-write while the server shuts down (Cancelled):
        # a vanished peer is ordinary, cancellation goes on up, anything else is a bug worth an ERROR.
        _, rest = group.split((trio.BrokenResourceError, trio.ClosedResourceError))
        if rest is not None:
            cancelled, others = rest.split(trio.Cancelled)
            if others is not None:
                log.exception("unexpected error while serving a connection", exc_info=others)
            if cancelled is not None:
                raise cancelled from None
    except Exception:
        log.exception("unexpected error while serving a connection")
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()


async def _linger(stream: trio.abc.Stream) -> None:
    """After an early answer (the client may still be sending): end our side, then read and drop what the client
    still sends, briefly and bounded, so that closing does not reset the connection and lose the answer."""
    if isinstance(stream, trio.abc.HalfCloseableStream):
        await stream.send_eof()
    dropped = 0
    with trio.move_on_after(LINGER_SECONDS):
        while dropped < LINGER_BYTES and (data := await stream.receive_some(RECEIVE_SIZE)):
            dropped += len(data)


def _raw_response(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """A complete ``Connection: close`` response, for when h11 has no request to answer."""
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", *(f"{k}: {v}" for k, v in headers)]
    lines += [f"content-length: {len(body)}", "server: rtengine-local", "connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _is_head(conn: h11.Connection) -> bool:
    """Whether the request being answered is a HEAD (h11 then forbids a response body)."""
    method = getattr(conn, "_request_method", None)
    return method == b"HEAD"
