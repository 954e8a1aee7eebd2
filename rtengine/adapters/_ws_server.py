"""The server side of a websocket: wsproto over a trio stream (for :mod:`~rtengine.adapters._serving`).

:class:`WebSocket` answers pings, reassembles messages, reports how the client ended (:class:`WsClosed`), and
refuses a message over its size limit with 1009 as soon as a frame header declares it.
"""

from __future__ import annotations

import contextlib
import math
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio
import wsproto
import wsproto.events as ws_events
from wsproto.connection import ConnectionState
from wsproto.utilities import RemoteProtocolError

if TYPE_CHECKING:
    from ._serving import HttpRequest

__all__ = ["HandshakeError", "WebSocket", "WsClosed", "WsFrame"]

RECEIVE_SIZE: Final = 65536
#: Seconds a write cancelled midway has to finish its frame (within its own bound too) before the connection is reset:
#: a cancellation (a server shutting down, a cancelled response) waits this long at most.
FINISH_CANCELLED_WRITE: Final = 2.0


class HandshakeError(Exception):
    """A websocket upgrade request wsproto cannot take (answered 400 before anything else was sent)."""


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

    def __init__(
        self, stream: trio.abc.Stream, request: HttpRequest, max_message_size: int, write_timeout: float = math.inf
    ) -> None:
        self.stream = stream
        #: Seconds one write may wait for the client to take it; then the connection is reset (``too_slow``).
        self.write_timeout = write_timeout
        #: True once a write was not finished in time: the connection was reset, and every later write raises
        #: ``trio.BrokenResourceError``.
        self.too_slow = False
        self._unsent = memoryview(b"")
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
        """Every write: bounded by ``write_timeout`` (waiting for the lock included — the write ahead of it is
        bounded too). A write the client does not take in time resets the connection (``too_slow``): raises
        ``trio.BrokenResourceError``, as every later write does (and any write once the client is gone).
        Cancelled after part of its frame went out, the write first finishes the frame (shielded, within the same
        bound and :data:`FINISH_CANCELLED_WRITE`, else the connection is reset: a half written frame is never
        followed by another one), then ``Cancelled`` goes on; cancelled before any byte went out, it just goes
        on."""
        with trio.move_on_after(self.write_timeout) as bound:
            async with self._send_lock:
                if self.too_slow:
                    raise trio.BrokenResourceError("the connection was reset")
                self._unsent = memoryview(data)
                try:
                    await self._send_unsent()
                except trio.Cancelled:
                    if not bound.cancel_called and 0 < len(self._unsent) < len(data):
                        deadline = min(bound.deadline, trio.current_time() + FINISH_CANCELLED_WRITE)
                        with trio.CancelScope(shield=True, deadline=deadline):
                            await self._send_unsent()
                        if self._unsent:
                            self._too_slow()
                    raise
                return
        self._too_slow()
        raise trio.BrokenResourceError("the client took no frame for the write timeout")

    def _too_slow(self) -> None:
        self.too_slow = True
        self.drop()

    async def _send_unsent(self) -> None:
        if not isinstance(self.stream, trio.SocketStream):  # TLS: a cancelled send breaks trio's SSLStream itself
            await self.stream.send_all(self._unsent)
            self._unsent = memoryview(b"")
            return
        while self._unsent:
            try:
                sent = await self.stream.socket.send(self._unsent)
            except OSError as exc:
                raise trio.BrokenResourceError from exc
            self._unsent = self._unsent[sent:]

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
            if self._ws.state is ConnectionState.OPEN:  # no pong may follow the client's CLOSE
                try:
                    await self._write(self._ws.send(event.response()))
                except trio.BrokenResourceError:
                    self.client_closed = WsClosed("too_slow" if self.too_slow else "eof")
                    return self.client_closed
            return None
        if isinstance(event, ws_events.CloseConnection):
            self.client_closed = WsClosed("close", event.code, event.reason or None)
            if self.answer_close and not self.server_close_sent:
                self.server_close_sent = True
                with contextlib.suppress(trio.BrokenResourceError):  # it closed first: its CLOSE is how it ended
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
