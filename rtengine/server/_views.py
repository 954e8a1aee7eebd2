"""The views of one conversation, and the fan-out of its server events to them.

A WebRTC call has one conversation seen through several views: its ``oai-events`` data channel and every
sideband websocket that joins (a :class:`Link` each); a plain websocket is the one view of its own conversation.
Client events from any view go into the conversation; its server events go out on all of them, except
``session.created`` (only to the view that just opened, and never to a sideband: like the API, a sideband's first
event is the ``session.updated`` answering its ``session.update``) and an ``error`` (only to the view whose client
event caused it). A client that vanished is not an error of the conversation: its link stops being written to, and
its reader records how it ended. At the session cap every websocket view is closed with ``1001`` (:meth:`expire`).

Every write to a websocket is bounded by ``ServerOptions.slow_client_seconds`` (:class:`WebSocket`; its pongs and
its answer to a CLOSE too): a client that stopped reading is reset (recorded ``too_slow``, by :meth:`Link.write`
or, for a pong, by its reader) instead of stalling the fan-out to the other views.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from ..adapters._serving import WebSocket, WsClosed
from ._faults import ConversationFaults
from ._record import ConnectionRecord, ServerRecord
from ._shapes import encode, error_event, with_event_id
from ._validate import ClientFrame

if TYPE_CHECKING:
    from ._calls import Call

__all__ = ["ConversationViews", "Link"]

#: Handles one client event (its frame, decoded once) from a view: a websocket, or None for the data channel.
ClientEventHandler = Callable[[ClientFrame, "Link | None"], Awaitable[None]]


@dataclass(eq=False)
class Link:
    """One websocket attached to a conversation: its record, what it was sent (for ``close_after_events``), and
    its scope (cancelled to drop it)."""

    ws: WebSocket
    record: ConnectionRecord
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    sent: int = 0
    closing: bool = False
    #: Set once the link is detached (its reader has returned).
    left: trio.Event = field(default_factory=trio.Event)

    async def write(self, send: Callable[[], Awaitable[None]]) -> bool:
        """Run one write to the client (a message or a CLOSE); False when the client is gone or too slow. Every
        write of the socket is bounded (``ServerOptions.slow_client_seconds``, :class:`WebSocket`): a client that
        has not taken the frame in time was reset there and then (the half written frame is never finished); it is
        recorded ``too_slow`` (unless it had ended otherwise) and its reader is cancelled. Cancelled from outside
        midway, the write first finishes its frame (a later frame must never follow half a frame), or resets the
        connection when it cannot within its bound, and ``Cancelled`` goes on."""
        try:
            await send()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.closing = True
            if self.ws.too_slow:
                if self.record.end is None:
                    self.record.end = "too_slow"
                self.scope.cancel()
            return False
        return True


class ConversationViews:
    """The websockets attached to one conversation (``links``), plus the call's data channel when it has a call."""

    def __init__(self, records: ServerRecord, faults: ConversationFaults, call: Call | None) -> None:
        self._records = records
        self._faults = faults
        self._call = call
        self.links: list[Link] = []

    # --- fan-out ---------------------------------------------------------------------------------------------

    async def send(self, event: dict[str, Any]) -> dict[str, Any]:
        """Send one server event (adds ``event_id``) to every view of the conversation; return it as sent."""
        full = with_event_id(event)
        await self.broadcast(encode(full), full)
        return full

    async def reply(self, origin: Link | None, event: dict[str, Any]) -> None:
        """Send an event that answers one client event (an ``error``) to the view that sent it only: the
        websocket ``origin``, or the call's data channel when ``origin`` is None."""
        full = with_event_id(event)
        if origin is not None:
            await self.send_to(origin, encode(full), full)
        elif self._call is not None:
            self._send_data(encode(full), full)

    async def broadcast(self, text: str | None, recorded: Any, data: bytes | None = None) -> None:
        """Send a text (or, with ``data``, a binary) frame to every view; ``recorded`` is what the records keep."""
        for link in list(self.links):
            await self.send_to(link, text, recorded, data)
        if self._call is not None and text is not None:
            self._send_data(text, recorded)  # the same events on the call's oai-events data channel

    def _send_data(self, text: str, recorded: Any) -> None:
        """Send on the call's ``oai-events`` data channel and record it."""
        assert self._call is not None
        self._call.peer.send_data(text)
        self._call.record.data_frames_out.append(recorded)
        self._records.changed()

    async def send_to(self, link: Link, text: str | None, recorded: Any, data: bytes | None = None) -> None:
        """Send on one websocket, honouring ``close_after_events``; a client too slow to take it is dropped."""
        if link.closing:
            return
        if data is not None:
            sent = await link.write(functools.partial(link.ws.send_bytes, data))
        else:
            assert text is not None
            sent = await link.write(functools.partial(link.ws.send_text, text))
        if not sent:
            self._records.changed()
            return
        link.record.frames_out.append(recorded)
        self._records.changed()
        await self._faults.after_send(link)

    async def greet(self, link: Link, session: dict[str, Any]) -> None:
        """``session.created`` to a direct websocket that just attached; nothing to a sideband (the API sends a
        sideband no ``session.created``: its first event answers its ``session.update``)."""
        if link.record.kind == "sideband":
            return
        created = with_event_id({"type": "session.created", "session": session})
        await self.send_to(link, encode(created), created)

    def greet_data_channel(self, session: dict[str, Any]) -> None:
        """``session.created`` on the call's data channel, once it opens."""
        created = with_event_id({"type": "session.created", "session": session})
        self._send_data(encode(created), created)

    # --- attached websockets ---------------------------------------------------------------------------------

    def attach(self, ws: WebSocket, record: ConnectionRecord) -> Link:
        link = Link(ws, record)
        self.links.append(link)
        return link

    def detach(self, link: Link) -> None:
        self.links.remove(link)
        link.left.set()

    async def expire(self, reason: str, reply_timeout: float) -> None:
        """The session cap: send CLOSE ``1001`` with ``reason`` on every websocket (recorded as
        ``session_expired``), then wait up to ``reply_timeout`` for their clients to answer and leave; the links
        still attached after that are for the caller to drop."""
        await self.close_all(1001, reason, "session_expired", reply_timeout)

    async def close_all(self, code: int, reason: str, end: str, reply_timeout: float) -> None:
        """Send CLOSE ``code`` with ``reason`` on every websocket (recorded as ``end``), then wait up to
        ``reply_timeout`` for their clients to answer and leave; the links still attached after that are for the
        caller to drop."""
        expiring = [link for link in self.links if not link.closing]
        for link in expiring:
            link.closing = True
            if link.record.end is None:
                link.record.end, link.record.close_code = end, code
            await link.write(functools.partial(link.ws.send_close, code, reason))
        self._records.changed()
        with trio.move_on_after(reply_timeout):
            for link in expiring:
                await link.left.wait()

    def drop_all(self, end: str) -> None:
        """Cancel every attached websocket, recording ``end`` for those that had not ended."""
        for link in self.links:
            if link.record.end is None:
                link.record.end = end
            link.scope.cancel()

    async def read(self, link: Link, handle: ClientEventHandler) -> None:
        """Read client frames from ``link`` into ``handle`` until the client or a fault ends the connection."""
        ws, record = link.ws, link.record
        while True:
            if record.end == "server_close":
                await self._faults.await_close_reply(link)
                return
            outcome = await ws.receive()
            if isinstance(outcome, WsClosed):
                link.closing = True
                await self._client_ended(link, outcome)
                return
            if outcome.data is not None:
                record.binary_in += 1
                self._records.changed()
                await self.reply(
                    link, error_event("Binary frames are not supported; send JSON text.", code="invalid_json")
                )
                continue
            assert outcome.text is not None
            frame = ClientFrame.decode(outcome.text)  # the one parse of this frame
            kind = frame.value.get("type") if isinstance(frame.value, dict) else None
            if await self._faults.before_handle(link, kind):  # dropped on this frame (drop_sideband_on): unread
                if record.end == "server_close":
                    continue  # a CLOSE 1011: wait for the client's reply, as a drop after N events does
                return
            self._records.frame_in(record, frame)
            await handle(frame, link)

    async def _client_ended(self, link: Link, outcome: WsClosed) -> None:
        ws, record = link.ws, link.record
        if record.end is None:
            record.end = {"close": "client_close", "eof": "eof"}.get(outcome.kind, outcome.kind)
            record.close_code = outcome.code
        if outcome.kind == "close":
            record.close_answered = ws.answer_close
            if not ws.answer_close:
                await self._faults.play_dead(ws)
        elif outcome.kind in ("protocol_error", "too_big") and outcome.code is not None:
            await link.write(functools.partial(ws.send_close, outcome.code, outcome.reason or ""))
        self._records.changed()
