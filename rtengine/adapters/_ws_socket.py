"""An open realtime websocket: :class:`RealtimeSocket`, its frames and its close handshake (see
:mod:`rtengine.adapters._ws` for the theory of operation and the cancellation semantics).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Final

import trio
import wsproto.events as wse
from wsproto.connection import Connection, ConnectionState

from ..protocol._errors import ConnectionLost
from ..protocol._lifecycle import SocketEnd
from ..protocol._util import describe_exception
from ._ws_frames import Gate, Splitter, text_frame, whole_text
from ._ws_opening import SHAPES_ONLY, _public, _translate

log = logging.getLogger("rtengine.websocket")

#: wsproto's "no status code in the close frame" (never on the wire).
_NO_STATUS: Final = 1005


def _text_size(data: str | bytes | bytearray) -> int:
    """Bytes of a message part as it was on the wire (UTF-8 for text; ASCII text is counted without encoding)."""
    if isinstance(data, str) and not data.isascii():
        return len(data.encode("utf-8"))
    return len(data)


class RealtimeSocket:
    """An open realtime websocket (the :class:`~rtengine.engine._seams.Socket` seam). Created by
    :meth:`~rtengine.adapters._ws.WebSocketOpener.open`.

    One task receives; any number of tasks may send (sends are serialized). ``close_code``/``close_reason`` say how
    the connection ended once it has (``None`` before, and ``close_code`` stays ``None`` for an end without a close
    frame); ``close_took`` is how long leaving the block took.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        ws: Connection,
        url: str,
        *,
        close_timeout: float,
        max_message_size: int,
        receive_size: int,
        scrub: Callable[[str], str] = SHAPES_ONLY,
        leftover: bytes = b"",
    ) -> None:
        #: Removes secrets from the server's close reasons (they reach events and logs).
        self.scrub = scrub
        self._stream = stream
        self._ws = ws
        self.url = url
        self.close_timeout = close_timeout
        self.max_message_size = max_message_size
        self.receive_size = receive_size
        self.close_took: float | None = None
        self._send_lock = Gate()
        self._read_lock = Gate()
        #: The exception translations of a write and of a read (one each, reused).
        self._writing = _translate("failed to send on the realtime websocket", ConnectionLost)
        self._reading = _translate("reading the realtime websocket failed", ConnectionLost)
        self._parts: list[str | bytes] = []
        self._size = 0
        #: An event :meth:`receive_nowait` took that needs I/O (next for receive); wsproto's events (one generator
        #: per read, not per event).
        self._held: wse.Event | None = None
        self._events: Iterator[wse.Event] = iter(())
        #: Bytes were fed to wsproto since ``_events`` was made: a spent generator is replaced only then (a fresh
        #: one over the same bytes would parse the same incomplete frame header again, once per message).
        self._fed = True  # once: whatever wsproto may already have (the opening leaves it none)
        #: The bytes read, split into frames: the usual ones taken there, the rest fed to wsproto whole
        #: (``leftover``: what the opening read after the upgrade's answer).
        self._split = Splitter(max_message_size, leftover)
        self._reads = 0
        self._end: SocketEnd | None = None
        #: A write was interrupted after it may have begun: part of a frame may be on the wire.
        self._torn = False
        #: The server broke the protocol: the frame parser is unusable, no handshake is attempted.
        self._broken = False
        #: The block was left (the stream is closed or being closed).
        self._finished = False

    def __repr__(self) -> str:
        return f"<RealtimeSocket {_public(self.url)} {'closed' if self.closed else 'open'}>"

    @property
    def closed(self) -> bool:
        """True once the connection has ended (either side) or the block was left."""
        return self._end is not None or self._finished

    @property
    def end(self) -> SocketEnd | None:
        """How the connection ended, once it has."""
        return self._end

    @property
    def close_code(self) -> int | None:
        return self._end.code if self._end is not None else None

    @property
    def close_reason(self) -> str | None:
        return self._end.reason if self._end is not None else None

    # --- sending ------------------------------------------------------------------------------------------------

    async def send(self, text: str) -> None:
        """Write one text frame. Raises :class:`~rtengine.ConnectionLost` when the connection has ended, the socket
        is closed or torn, or the write fails. Cancellation: see :mod:`rtengine.adapters._ws` (a send cancelled
        before any byte was written leaves the socket whole)."""
        await self._write(text)

    async def _write(self, event: str | wse.Event) -> None:
        """Write a text message (a ``str``: framed by :func:`~rtengine.adapters._ws_frames.text_frame`) or a
        control frame (a pong, a close: framed by wsproto)."""
        what = "failed to send on the realtime websocket"
        await self._send_lock.acquire()  # free (the usual case): no schedule point here; the write is one
        try:
            if self._finished or self._torn:
                raise ConnectionLost(f"{what}: the socket is {'closed' if self._finished else 'torn'}")
            if isinstance(event, str) and (end := self._end) is not None:
                message = f"{what}: the connection has ended: {end.detail}"
                raise ConnectionLost(message, code=end.code, reason=end.reason)
            if type(event) is not wse.CloseConnection and self._ws.state is not ConnectionState.OPEN:
                raise ConnectionLost(f"{what}: the connection is closing", code=self.close_code)
            # A pending cancellation is taken here, before any byte is written: such a send is not torn.
            await trio.lowlevel.checkpoint_if_cancelled()
            data: bytes | None = None
            try:
                with self._writing:
                    data = text_frame(event) if isinstance(event, str) else self._ws.send(event)
                    await self._stream.send_all(data)
            except ConnectionLost as exc:
                if data is not None:  # the write had begun: part of the frame may be on the wire
                    self._torn = True
                    exc.partial = True
                raise
            except BaseException:
                if data is not None:
                    self._torn = True
                raise
        finally:
            self._send_lock.release()

    # --- receiving ----------------------------------------------------------------------------------------------

    async def receive(self) -> str | bytes | SocketEnd:
        """The next complete message (text as ``str``, binary as ``bytes``), or how the connection ended.

        Pings are answered and a server CLOSE is answered here. Once ended, every call returns the same
        :class:`~rtengine.protocol.SocketEnd`. Cancellation: nothing is lost; the socket stays usable.
        """
        await self._read_lock.acquire()
        try:
            reads = self._reads
            while True:
                if (end := self._end) is not None:
                    message: str | bytes | SocketEnd = end
                    break
                event = self._next_event()
                if event is None:
                    await self._fill()
                    continue
                if isinstance(event, str):  # a whole text frame, taken by the splitter
                    message = event
                    break
                got: str | bytes | None = whole_text(event, self.max_message_size) if not self._parts else None
                if got is None:
                    got = await self._on_event(event)
                if got is not None:
                    message = got
                    break
            if self._reads == reads:  # no read (always a checkpoint) was needed: still a schedule point
                await trio.lowlevel.cancel_shielded_checkpoint()
            return message
        finally:
            self._read_lock.release()

    def receive_nowait(self) -> str | bytes | None:
        """A message already complete in the bytes read, with no I/O (not a checkpoint: a reader drains one read's
        messages in one wake-up); None when the next needs I/O (a read, a pong, a CLOSE, a message too big), after
        the end (:meth:`receive` says how), or while another task is in :meth:`receive`."""
        if self._end is not None or self._read_lock.locked():
            return None
        while (event := self._next_event()) is not None:
            if isinstance(event, str):  # a whole text frame, taken by the splitter
                return event
            if not self._parts and (whole := whole_text(event, self.max_message_size)) is not None:
                return whole
            if isinstance(event, wse.TextMessage | wse.BytesMessage):
                data = event.data if isinstance(event.data, str) else bytes(event.data)
                size = self._size + _text_size(data)
                if size <= self.max_message_size:
                    message = self._assemble(event, data, size)
                    if message is not None:
                        return message
                    continue
            self._held = event  # a control frame or an oversized part: receive() handles it (with I/O)
            return None
        return None

    def _next_event(self) -> wse.Event | str | None:
        """One event wsproto already has, else the next frame of the bytes read: its text when the splitter takes
        it (a whole text frame, while the connection is open and no fragmented message is being assembled), else
        wsproto's events for it; None when more bytes are needed. One at a time: a caller cancelled later loses
        nothing. An event held back by :meth:`receive_nowait` comes first."""
        if (held := self._held) is not None:
            self._held = None
            return held
        while True:
            if (event := next(self._events, None)) is not None:
                return event
            if self._fed:  # spent: a fresh generator sees the bytes fed since
                self._fed = False
                self._events = self._ws.events()
                continue
            taken = self._split.take(self._ws, not self._parts and self._ws.state is ConnectionState.OPEN)
            if isinstance(taken, str):
                return taken
            if taken is None:
                return None
            self._fed = True  # bytes went to wsproto: its events next

    def _genuine_close(self) -> bool:
        """After a CloseConnection event: True when the server sent a close frame (wsproto moved its state), False
        when wsproto synthesized it for a protocol violation (a frame it could not parse)."""
        return self._ws.state in (ConnectionState.REMOTE_CLOSING, ConnectionState.CLOSED)

    async def _fill(self) -> bool:
        """Read once and feed wsproto. False at EOF or after a failed read: the connection has ended (not cleanly)."""
        self._reads += 1
        try:
            with self._reading:
                data = await self._stream.receive_some(self.receive_size)
        except ConnectionLost as exc:
            self._ended(SocketEnd(clean=False, detail=str(exc)))
            return False
        if not data:
            self._ended(SocketEnd(clean=False, detail="the server closed the connection without a close frame"))
            return False
        self._split.feed(bytes(data))
        return True

    def _ended(self, end: SocketEnd) -> None:
        if self._end is None:
            self._end = end
            self._parts, self._size = [], 0

    async def _on_event(self, event: wse.Event) -> str | bytes | None:
        if isinstance(event, wse.TextMessage | wse.BytesMessage):
            return await self._on_message(event)
        if isinstance(event, wse.Ping):
            try:
                await self._write(event.response())
            except ConnectionLost as exc:
                log.debug("pong not sent: %s", exc)
            return None
        if isinstance(event, wse.CloseConnection):
            await self._on_close(event)
        return None

    async def _on_message(self, event: wse.TextMessage | wse.BytesMessage) -> str | bytes | None:
        data = event.data if isinstance(event.data, str) else bytes(event.data)
        size = self._size + _text_size(data)
        if size > self.max_message_size:
            detail = f"the server sent a message larger than max_message_size ({self.max_message_size} bytes)"
            self._ended(SocketEnd(clean=False, code=1009, reason="message too big", detail=detail))
            await self._send_close(1009, "message too big")
            return None
        return self._assemble(event, data, size)

    def _assemble(self, event: wse.TextMessage | wse.BytesMessage, data: str | bytes, size: int) -> str | bytes | None:
        """Add one part (``size``: the message's bytes so far, within the cap); the message once it is complete."""
        if event.message_finished and not self._parts:
            return data  # a message in one frame: nothing to join
        self._parts.append(data)
        self._size = size
        if not event.message_finished:
            return None
        parts, self._parts, self._size = self._parts, [], 0
        if isinstance(event, wse.TextMessage):
            return "".join(p for p in parts if isinstance(p, str))
        return b"".join(p for p in parts if isinstance(p, bytes))

    async def _on_close(self, event: wse.CloseConnection) -> None:
        code = int(event.code)
        event = wse.CloseConnection(code=event.code, reason=self.scrub(event.reason) if event.reason else event.reason)
        if not self._genuine_close():
            # wsproto could not parse what the server sent: fail the connection with wsproto's code (1002 for a
            # protocol error, 1007 for invalid UTF-8).
            self._broken = True
            reason = event.reason or "protocol error"
            detail = f"protocol violation by the server: {reason}"
            self._ended(SocketEnd(clean=False, code=code, reason=reason, detail=detail))
            await self._send_close(code, reason[:100])
            return
        public_code = None if code == _NO_STATUS else code
        detail = f"the server closed the websocket ({public_code} {event.reason or ''})".replace(" )", ")")
        self._ended(SocketEnd(clean=True, code=public_code, reason=event.reason or None, detail=detail))
        if self._ws.state is ConnectionState.REMOTE_CLOSING:
            await self._send_close(1000 if public_code is None else public_code)

    async def _send_close(self, code: int, reason: str | None = None) -> None:
        """Send a close frame (ours, or the reply to the server's); a failed write is not an error here."""
        try:
            await self._write(wse.CloseConnection(code=code, reason=reason))
        except ConnectionLost as exc:
            log.debug("close frame not sent: %s", exc)

    # --- closing ------------------------------------------------------------------------------------------------

    async def _finish(self) -> None:
        """Leave the block: the close handshake (unless torn or broken), then close the stream. Shielded, bounded by
        ``close_timeout`` as a whole, never raises (:func:`_finish`)."""
        await _finish(self)


# --- closing: the socket's exit (functions of the socket, kept out of the class to keep it readable) --------------


async def _finish(sock: RealtimeSocket) -> None:
    """Leave the block: the close handshake (unless torn or broken), then close the stream. Shielded, bounded by
    ``close_timeout`` as a whole, never raises."""
    start = trio.current_time()
    deadline = start + sock.close_timeout
    try:
        with trio.CancelScope(deadline=deadline, shield=True):
            await _close_handshake(sock)
    except Exception as exc:  # the exit never raises: the block's own exception (if any) must propagate
        log.debug("websocket close handshake failed: %s", describe_exception(exc))
    finally:
        sock._finished = True
        with trio.CancelScope(deadline=deadline, shield=True):
            try:
                await sock._stream.aclose()  # cancelled at the deadline: still closed, forcefully
            except Exception as exc:
                log.debug("closing the websocket stream failed: %s", describe_exception(exc))
        sock.close_took = trio.current_time() - start
        sock._ended(SocketEnd(clean=False, detail="the socket was closed locally"))


async def _close_handshake(sock: RealtimeSocket) -> None:
    if sock._torn or sock._broken:
        return
    await sock._read_lock.acquire()
    try:
        await _handshake_locked(sock)
    finally:
        sock._read_lock.release()


async def _handshake_locked(sock: RealtimeSocket) -> None:
    state = sock._ws.state
    if state is ConnectionState.OPEN:
        await sock._write(wse.CloseConnection(code=1000))
    elif state is ConnectionState.REMOTE_CLOSING:
        code = sock.close_code
        await sock._write(wse.CloseConnection(code=1000 if code is None else code))
    while sock._ws.state is ConnectionState.LOCAL_CLOSING and not sock._broken:
        event = sock._next_event()
        if event is None:
            if not await sock._fill():
                return  # EOF or a failed read: nothing more will come
            continue
        if isinstance(event, wse.CloseConnection):
            if not sock._genuine_close():
                return
            code = int(event.code)
            public_code = None if code == _NO_STATUS else code
            reason = sock.scrub(event.reason) if event.reason else None  # server text: scrubbed
            detail = "the websocket was closed by the client"
            sock._ended(SocketEnd(clean=True, code=public_code, reason=reason, detail=detail))
            return
        # Data frames and pings after our CLOSE are discarded (no pong may follow a CLOSE).
