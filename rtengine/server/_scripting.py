"""Scripting a running local server from a test: send a server event into a live conversation, drop a sideband,
hold back the next sideband join.

These are the moves a test of an app that embeds rtengine needs while its conversation runs (the pytest plugin,
:mod:`rtengine.testing`, builds its helpers on them); the standing fault knobs (:class:`~rtengine.server.Faults`)
stay the way to make *every* connection misbehave. A conversation is named by its ``call_id`` (a WebRTC call), by its
``session_id`` (the ``session.id`` its ``session.created`` showed: how a direct websocket conversation is named), or,
with neither, is the one live conversation of the server (a call or a direct websocket).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Literal

from ._record import ServerRecord

if TYPE_CHECKING:
    from ._calls import CallManager
    from ._realtime import RealtimeSession
    from ._views import Link

__all__ = ["DropMode", "Scripting"]

#: How :meth:`Scripting.drop_sideband` ends a sideband: a CLOSE frame with a code, a TCP reset, or a TCP close
#: without a close frame (what a client calls 1006).
DropMode = Literal["close", "reset", "eof"]


class Scripting:
    """The live conversations of one server (its calls, and its direct websockets while they are served), and the
    scripted moves on them."""

    def __init__(self, record: ServerRecord, calls: CallManager) -> None:
        self._record = record
        self._calls = calls
        #: Direct websocket conversations being served now.
        self.directs: list[RealtimeSession] = []
        #: Seconds the next sideband handshakes wait before the accept, first come first served.
        self.join_delays: list[float] = []

    def conversation(self, call_id: str | None, session_id: str | None = None) -> RealtimeSession:
        """The conversation of ``call_id`` or of ``session_id``, or the only live one when both are None. Raises
        ``LookupError`` when there is no such conversation, or (neither given) none or several; the message says how
        to name one."""
        if call_id is not None:
            call = self._calls.calls.get(call_id)
            if call is None:
                raise LookupError(f"no live call {call_id!r}")
            if session_id is not None and call.conversation.session.get("id") != session_id:
                raise LookupError(f"the call {call_id!r} is not the session {session_id!r}")
            return call.conversation
        live = [call.conversation for call in self._calls.calls.values()] + list(self.directs)
        if session_id is not None:
            named = [conv for conv in live if conv.session.get("id") == session_id]
            if not named:
                raise LookupError(f"no live conversation with session id {session_id!r}")
            return named[0]
        if len(live) != 1:
            raise LookupError(
                f"{len(live)} live conversations; name one by call_id= (a WebRTC call: Conversation.call_id) or by "
                "session_id= (a websocket conversation: the session_id of its SessionCreated event)"
            )
        return live[0]

    def take_join_delay(self) -> float | None:
        """The delay for the sideband handshake now arriving, if :meth:`delay_next_join` set one."""
        return self.join_delays.pop(0) if self.join_delays else None

    async def send_event(
        self, event: dict[str, Any], call_id: str | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        """Send ``event`` (a server event: a dict with ``type``; ``event_id`` is added when missing) to every view
        of the conversation — each attached websocket and, on a call, its data channel — and return it as sent.
        Cancellation: a cancelled send may have reached some views and not others."""
        if not isinstance(event.get("type"), str):
            raise TypeError("a server event needs a string 'type'")
        return await self.conversation(call_id, session_id).views.send(event)

    async def drop_sideband(
        self,
        call_id: str | None = None,
        *,
        session_id: str | None = None,
        code: int = 1011,
        reason: str = "",
        mode: DropMode = "close",
    ) -> int:
        """End every sideband attached to the call now — with a CLOSE ``code`` (``mode="close"``), a TCP reset or a
        TCP close without a close frame — while the call lives on; return how many were dropped. A direct
        websocket conversation (named by ``session_id``, or the only live one) has its websocket dropped the same
        way. Cancellation: sidebands already dropped stay dropped."""
        if mode not in ("close", "reset", "eof"):
            raise ValueError("mode must be 'close', 'reset' or 'eof'")
        if mode == "close" and (not 1000 <= code <= 4999 or code in (1004, 1005, 1006, 1015)):
            raise ValueError(f"{code} cannot be sent in a close frame")
        links = [link for link in self.conversation(call_id, session_id).views.links if not link.closing]
        for link in links:
            await _drop(link, self._record, code, reason, mode)
        return len(links)


async def _drop(link: Link, record: ServerRecord, code: int, reason: str, mode: DropMode) -> None:
    link.closing = True
    if mode == "close":
        link.record.end, link.record.close_code = "server_close", code
        record.changed()
        await link.write(functools.partial(link.ws.send_close, code, reason))
        return
    if mode == "reset":
        link.ws.drop()
    link.record.end = "abrupt" if mode == "reset" else "server_eof"
    record.changed()
    link.scope.cancel()
