"""HTTP/1.1 and websocket plumbing for the local server: h11 and wsproto state machines over trio streams.

Why not hypercorn: it answers a client's CLOSE frame itself and reports code 1006 to the app, so "record the
client's close code" and "never answer a CLOSE" cannot be built through ASGI (stack-notes §3). h11 and wsproto
are the sans-IO parsers hypercorn itself uses; this module only moves bytes between them and a trio stream,
so no HTTP or websocket parsing is written by hand.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final

import h11
import trio
import wsproto
import wsproto.events as ws_events
from wsproto.connection import ConnectionState
from wsproto.utilities import RemoteProtocolError

from ..protocol._util import collapse_single_group

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


class HandshakeError(Exception):
    """A websocket upgrade request wsproto cannot take (answered 400 before anything else was sent)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """How long a client may take and what it may send: ``header_timeout`` — seconds for a whole request head
    (and for an idle keep-alive connection's next one); ``body_timeout`` — seconds for a whole request body;
    ``max_body`` — bytes of a request body (413 beyond); ``max_head`` — bytes of a request head; ``refuse`` —
    the server is at its connection cap: read the request head, answer 503, close."""

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

    json_type = [("content-type", "application/json")]
    try:
        with collapse_single_group():
            while True:
                with trio.move_on_after(limits.header_timeout) as head_timer:
                    request = await read_request(stream, conn)
                if head_timer.cancelled_caught:
                    if conn.trailing_data[0]:  # a head begun but not finished; an idle connection just closes
                        await fail(408, "Request head not received in time.", "request_timeout")
                    return None
                if request is None:
                    return None
                if limits.refuse:
                    message = "The server is at its connection limit; try again shortly."
                    return await fail(503, message, "server_busy", [("retry-after", "1")])
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


def _raw_response(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """A complete ``Connection: close`` response, for when h11 has no request to answer."""
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", *(f"{k}: {v}" for k, v in headers)]
    lines += [f"content-length: {len(body)}", "server: rtengine-local", "connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _is_head(conn: h11.Connection) -> bool:
    """Whether the request being answered is a HEAD (h11 then forbids a response body)."""
    method = getattr(conn, "_request_method", None)
    return method == b"HEAD"


@dataclass(frozen=True, slots=True)
class WsFrame:
    """One complete message from the client: ``text`` or ``data``."""

    text: str | None = None
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class WsClosed:
    """How the client side ended: ``kind`` is ``close`` (a CLOSE frame), ``eof`` or ``protocol_error``."""

    kind: str
    code: int | None = None
    reason: str | None = None


class WebSocket:
    """A server-side websocket over a trio stream, driven by wsproto. Sends are serialized by a lock."""

    def __init__(self, stream: trio.abc.Stream, request: HttpRequest, max_message_size: int) -> None:
        self.stream = stream
        self._ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self._send_lock = trio.Lock()
        self._max_message_size = max_message_size
        self._parts: list[str | bytes] = []
        self._size = 0
        self._pending: list[ws_events.Event] = []
        self.answer_close = True
        self.client_closed: WsClosed | None = None
        self.server_close_sent = False
        try:
            self._ws.receive_data(request.raw_head)
            events = list(self._ws.events())
        except RemoteProtocolError as exc:
            raise HandshakeError(str(exc)) from None
        if not events or not all(isinstance(event, ws_events.Request) for event in events):
            raise HandshakeError("expected one websocket upgrade request")

    async def _write(self, data: bytes) -> None:
        async with self._send_lock:
            await self.stream.send_all(data)

    async def accept(self) -> None:
        await self._write(self._ws.send(ws_events.AcceptConnection()))

    async def reject(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
        data = self._ws.send(ws_events.RejectConnection(status_code=status, headers=headers, has_body=True))
        data += self._ws.send(ws_events.RejectData(data=body, body_finished=True))
        await self._write(data)

    async def send_text(self, text: str) -> None:
        """Send a text message; dropped when the client already started closing (no frames may follow its CLOSE)."""
        if self._ws.state is ConnectionState.OPEN:
            await self._write(self._ws.send(ws_events.TextMessage(data=text)))

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message; dropped like :meth:`send_text` once the client is closing."""
        if self._ws.state is ConnectionState.OPEN:
            await self._write(self._ws.send(ws_events.BytesMessage(data=data)))

    async def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start (or answer) the close handshake."""
        if self.server_close_sent:
            return
        self.server_close_sent = True
        await self._write(self._ws.send(ws_events.CloseConnection(code=code, reason=reason or None)))

    def drop(self) -> None:
        """Abrupt TCP drop: RST instead of FIN (SO_LINGER 0), no close frame. The stream is closed by its owner."""
        if isinstance(self.stream, trio.SocketStream):
            self.stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async def receive(self) -> WsFrame | WsClosed:
        """The next complete message, or how the client ended. Pings are answered here."""
        while True:
            while self._pending:
                event = self._pending.pop(0)
                outcome = await self._handle(event)
                if outcome is not None:
                    return outcome
            try:
                data = await self.stream.receive_some(RECEIVE_SIZE)
            except trio.BrokenResourceError:
                data = b""
            if not data:
                eof = WsClosed("eof")
                self.client_closed = self.client_closed or eof
                return eof
            try:
                self._ws.receive_data(bytes(data))
                self._pending.extend(self._ws.events())
            except RemoteProtocolError as exc:
                self.client_closed = WsClosed("protocol_error", 1002, str(exc))
                return self.client_closed
            if self._size + self._declared_payload() > self._max_message_size:
                # Refused from the frame header: a client never gets to make the server wait for (or buffer) it.
                self.client_closed = WsClosed("too_big", 1009, "message too big")
                return self.client_closed

    def _declared_payload(self) -> int:
        """Payload bytes the frame being received still declares (0 between frames). wsproto keeps the parsed
        header on its frame decoder and has no public accessor, so this peeks (tests/server cover it)."""
        connection = self._ws.connection
        decoder = getattr(getattr(connection, "_proto", None), "_frame_decoder", None)
        length = getattr(getattr(decoder, "header", None), "payload_len", 0)
        consumed = getattr(decoder, "payload_consumed", 0)
        return length - consumed if isinstance(length, int) and isinstance(consumed, int) else 0

    async def _handle(self, event: ws_events.Event) -> WsFrame | WsClosed | None:
        if isinstance(event, ws_events.Ping):
            await self._write(self._ws.send(event.response()))
            return None
        if isinstance(event, ws_events.CloseConnection):
            self.client_closed = WsClosed("close", event.code, event.reason or None)
            if self.answer_close and not self.server_close_sent:
                self.server_close_sent = True
                await self._write(self._ws.send(event.response()))
            return self.client_closed
        if isinstance(event, ws_events.Message):
            self._parts.append(event.data)
            self._size += len(event.data)
            if self._size > self._max_message_size:
                self.client_closed = WsClosed("too_big", 1009, "message too big")
                return self.client_closed
            if not event.message_finished:
                return None
            parts, self._parts, self._size = self._parts, [], 0
            if isinstance(event, ws_events.TextMessage):
                return WsFrame(text="".join(p for p in parts if isinstance(p, str)))
            return WsFrame(data=b"".join(p for p in parts if isinstance(p, bytes)))
        return None
