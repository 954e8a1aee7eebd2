"""What a websocket conversation carries from one session to the next: the history (and its replay into a new
session), and the current session's clock (its id, its cap, a response in flight).

:class:`Follow` is fed by the loop (every typed server event read, every client payload written); the session
chain (:mod:`~rtengine.engine._wsession`) reads it. :func:`replay_into` writes the replay on a new socket — before
anything else but its ``session.update`` — and reads the server's answers until each replayed item was added or
refused: the ``conversation.item.added``/``.done`` of the replay are followed (history, brain) but not delivered
(the app saw those items already), a refusal is one non-fatal ``Error`` naming the ``conversation.item.create``
(the conversation goes on; the restore is then not complete), everything else is handled as the loop would.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final

import trio

from ..protocol._events import ItemAdded, ItemDone, ProtocolWarning, ServerErrorEvent, ServerEvent
from ..protocol._history import History, Replay
from ..protocol._lifecycle import Error, SocketEnd
from ..protocol._parse import parse_server_event
from ..protocol._payloads import encode
from ..protocol._rotation import SessionClock

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from ._conversation import Core
    from ._seams import Socket

__all__ = ["REPLAY_WAIT", "Follow", "replay_into"]

log = logging.getLogger("rtengine")

#: At most this long a new session's answers to the replay are awaited (then the restore is taken as incomplete).
REPLAY_WAIT: Final = 10.0


class Follow:
    """The history and the current session's clock, fed by the loop; ``changed`` is set when the session's
    rotation time or response state changed (a new event each time)."""

    __slots__ = ("changed", "clock", "history", "margin")

    def __init__(self, margin: float | None, max_items: int) -> None:
        self.margin = margin
        self.history = History(max_items)
        self.clock = SessionClock(margin)
        self.changed = trio.Event()

    def new_session(self) -> SessionClock:
        """A new session took over: a fresh clock (its ``session.created`` states its cap)."""
        self.clock = SessionClock(self.margin)
        self._changed()
        return self.clock

    def observe(self, event: ServerEvent | ProtocolWarning) -> None:
        if isinstance(event, ProtocolWarning):
            return
        self.history.observe(event)
        active = self.clock.response_active
        if self.clock.observe(event, trio.current_time(), time.time()) or active != self.clock.response_active:
            self._changed()

    def sent(self, payload: Mapping[str, Any]) -> None:
        self.history.sent(payload)

    def _changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


async def replay_into(core: Core, sock: Socket, replay: Replay) -> tuple[int, int] | SocketEnd | None:
    """Write ``replay`` on ``sock`` and read until the server added or refused each item (see the module
    docstring): ``(added, refused)``; the ``SocketEnd`` when the socket ended meanwhile; None once the
    conversation ended (a fatal server error)."""
    brain, outlet, follow, stats = core.brain, core.outlet, core.follow, core.stats
    assert follow is not None
    ours: set[str] = set()
    for payload in replay.items:
        stamped = brain.stamp(dict(payload))
        ours.add(stamped["event_id"])
        await sock.send(encode(stamped))
    stats.items_replayed += len(replay.items)
    added = refused = 0
    with trio.move_on_after(REPLAY_WAIT) as waited:
        while added + refused < len(replay.items):
            message = await sock.receive()
            if isinstance(message, SocketEnd):
                return message
            stats.frames_received += 1
            event = parse_server_event(message, brain.output_format)
            if isinstance(event, ServerErrorEvent) and event.error_event_id in ours:
                refused += 1
                stats.replay_refused += 1
                log.warning("realtime server refused a replayed item: %s", event.message)
                refusal = Error(event.message, event.code, False, "conversation.item.create", event.error_event_id)
                await outlet.forward(refusal)
                continue
            follow.observe(event)
            reaction = brain.server_event(event)
            if isinstance(event, ItemAdded):
                added += 1
            if reaction.end is not None:
                error, closed = reaction.end
                core.end(closed, error)
                return None
            for payload in reaction.send:  # nothing to answer during a replay, but never drop what the brain says
                await sock.send(encode(brain.stamp(payload)))
            if reaction.deliver is not None and not isinstance(event, ItemAdded | ItemDone):
                await outlet.forward(reaction.deliver)
    if waited.cancelled_caught:
        log.warning(
            "realtime replay not confirmed within %.0f s (%d of %d items)", REPLAY_WAIT, added, len(replay.items)
        )
        refused += len(replay.items) - added - refused
    return added, refused
