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
from typing import TYPE_CHECKING, Any, Final

import trio

from ..protocol._audio_tail import AudioTail
from ..protocol._commands import undo_update
from ..protocol._events import AudioOut, ItemAdded, ItemDone, ProtocolWarning, ServerErrorEvent, ServerEvent
from ..protocol._history import History, Replay
from ..protocol._lifecycle import Error, SocketEnd
from ..protocol._parse import parse_server_event
from ..protocol._payloads import encode
from ..protocol._rotation import SessionClock

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence, Set

    from ._conversation import Core
    from ._seams import Socket

__all__ = ["REPLAY_WAIT", "Follow", "Primed", "replay_into", "write_replay"]

log = logging.getLogger("rtengine")

#: At most this long a new session's answers to the replay are awaited (then the restore is taken as incomplete).
REPLAY_WAIT: Final = 10.0
#: A ``Primed`` that wrote nothing early (one shared empty set: each ``frozenset()`` is an object of its own).
_NO_IDS: Final[frozenset[str]] = frozenset()


class Follow:
    """The history and the current session's clock, fed by the loop; ``changed`` is set when the session's
    rotation time or quiet (no response in flight, the user not speaking) changed (a new event each time)."""

    __slots__ = ("_next", "audio", "clock", "history", "margin", "on_change")

    def __init__(self, margin: float | None, max_items: int) -> None:
        self.margin = margin
        self.history = History(max_items)
        self.clock = SessionClock(margin)
        self._next: trio.Event | None = None  # ``changed``, made when first asked for (an idle one waits for none)
        #: The audio written since the server's input buffer was last committed or cleared.
        self.audio = AudioTail()
        #: Called (synchronously) at every change, after ``changed`` is set: arms the alarm once the rotation time
        #: is known.
        self.on_change: Callable[[], None] | None = None

    @property
    def changed(self) -> trio.Event:
        """Set at the next change (each change makes way for a new event)."""
        if self._next is None:
            self._next = trio.Event()
        return self._next

    def new_session(self) -> SessionClock:
        """A new session took over: a fresh clock (its ``session.created`` states its cap)."""
        self.clock = SessionClock(self.margin)
        self._changed()
        return self.clock

    def observe(self, event: ServerEvent | ProtocolWarning) -> None:
        if isinstance(event, ProtocolWarning | AudioOut):
            return  # an audio delta changes neither the history, the audio tail nor the session clock
        self.history.observe(event)
        self.audio.observe(event)
        quiet = self.clock.quiet
        if self.clock.observe(event, trio.current_time(), time.time()) or quiet != self.clock.quiet:
            self._changed()

    def sent(self, payload: Mapping[str, Any]) -> None:
        self.history.sent(payload)
        self.audio.sent(payload)
        if payload.get("type") == "response.create" and not self.clock.response_active:
            self.clock.requested()
            self._changed()

    def _changed(self) -> None:
        changed, self._next = self._next, None
        if changed is not None:
            changed.set()
        if self.on_change is not None:
            self.on_change()


async def write_replay(core: Core, sock: Socket, items: Sequence[Mapping[str, Any]]) -> set[str]:
    """Write replay ``items`` on ``sock``; the ``event_id`` each was stamped with."""
    ours: set[str] = set()
    for payload in items:
        stamped = core.brain.stamp(dict(payload))
        ours.add(stamped["event_id"])
        await sock.send(encode(stamped))
    core.stats.items_replayed += len(items)
    return ours


class Primed:
    """A rotation's early replay: the settled start of the history, written on the next session while the old one
    still runs (:meth:`prime`), and the next session's answers to it, read meanwhile and kept (``stash``) for the
    take-over — where the echoes of the early items are skipped, so the swap costs only the rest of the replay."""

    __slots__ = ("added", "early", "ids", "refused", "stash")

    def __init__(self) -> None:
        self.early: tuple[dict[str, Any], ...] = ()
        self.ids: frozenset[str] = _NO_IDS
        self.added = self.refused = 0
        self.stash: list[str | bytes | SocketEnd] = []

    async def prime(self, core: Core, sock: Socket, early: tuple[dict[str, Any], ...]) -> None:
        """Write ``early`` on ``sock`` and read its answers (bounded by ``REPLAY_WAIT``); the frames are kept."""
        self.ids = frozenset(await write_replay(core, sock, early))
        self.early = early
        with trio.move_on_after(REPLAY_WAIT):
            while self.added + self.refused < len(early):
                message = await sock.receive()
                self.stash.append(message)
                if isinstance(message, SocketEnd):
                    return
                event = parse_server_event(message, core.brain.output_format)
                if isinstance(event, ItemAdded):
                    self.added += 1
                elif isinstance(event, ServerErrorEvent) and event.error_event_id in self.ids:
                    self.refused += 1


async def replay_into(
    core: Core, sock: Socket, replay: Replay, primed: Primed | None = None, *, named: bool = False
) -> tuple[int, int] | SocketEnd | None:
    """Write ``replay`` on ``sock`` (less the early replay ``primed`` wrote) and read until the server added or
    refused each item (see the module docstring) — with ``named``, also until the session's ``session.created``
    was read (a websocket session: its clock's id): ``(added, refused)`` — an early replay that is no longer the
    start of the replay counts as one refusal; the ``SocketEnd`` when the socket ended meanwhile; None once the
    conversation ended (a fatal server error)."""
    primed = primed or Primed()
    stats = core.stats
    early = primed.early
    diverged = replay.items[: len(early)] != early
    rest = [p for p in replay.items if p not in early] if diverged else replay.items[len(early) :]
    ours = primed.ids | await write_replay(core, sock, rest)
    total = len(early) + len(rest)
    answers = _Answers(core, sock, ours)
    if diverged:
        log.warning("realtime history changed under a rotation's early replay; the new session may differ")
        answers.refused += 1
        stats.replay_refused += 1
    for message in primed.stash:  # the answers to the early replay (counted already in primed.added)
        if (ended := await answers.take(message, count=False)) is not _GOING:
            return ended
    answers.added += primed.added
    answers.refused += primed.refused
    clock = core.follow.clock if core.follow is not None and named else None
    with trio.move_on_after(REPLAY_WAIT) as waited:
        # Until each item was answered, and the new session named itself (``session.created``: the clock's id).
        while answers.added + answers.refused < total + diverged or (clock is not None and clock.session_id is None):
            if (ended := await answers.take(await sock.receive())) is not _GOING:
                return ended
    if waited.cancelled_caught and answers.added + answers.refused < total + diverged:
        log.warning("realtime replay not confirmed within %.0f s (%d of %d items)", REPLAY_WAIT, answers.added, total)
        answers.refused = total + diverged - answers.added
    return answers.added, answers.refused


#: :meth:`_Answers.take`: go on reading.
_GOING: Final = SocketEnd(clean=True, reason="going on")


class _Answers:
    """The new session's answers to a replay, handled one frame at a time (see the module docstring)."""

    __slots__ = ("added", "core", "ours", "refused", "sock")

    def __init__(self, core: Core, sock: Socket, ours: Set[str]) -> None:
        self.core, self.sock, self.ours = core, sock, ours
        self.added = self.refused = 0

    async def take(self, message: str | bytes | SocketEnd, *, count: bool = True) -> SocketEnd | None:
        """One frame: ``_GOING``; the ``SocketEnd`` when the socket ended; None once the conversation ended.
        ``count``: count the items added and refused (False for the early replay's answers, counted already)."""
        core = self.core
        brain, follow, stats = core.brain, core.follow, core.stats
        assert follow is not None
        if isinstance(message, SocketEnd):
            return message
        stats.frames_received += 1
        event = parse_server_event(message, brain.output_format)
        if isinstance(event, ServerErrorEvent) and event.error_event_id in self.ours:
            self.refused += count
            stats.replay_refused += 1
            log.warning("realtime server refused a replayed item: %s", event.message)
            refusal = Error(event.message, event.code, False, "conversation.item.create", event.error_event_id)
            await core.outlet.forward(refusal)
            return _GOING
        if isinstance(event, ItemAdded | ItemDone):
            self.added += count and isinstance(event, ItemAdded)
            if event.item_id is None or event.item_id not in follow.history:
                follow.observe(event)  # an item replayed without an id (a text the server never echoed)
            return _GOING  # the echo of an item the app has seen already: not delivered again
        follow.observe(event)
        reaction = brain.server_event(event)
        if reaction.end is not None:
            error, closed = reaction.end
            core.end(closed, error)
            return None
        for payload in reaction.send:  # nothing to answer during a replay, but never drop what the brain says
            await self.sock.send(encode(brain.stamp(payload)))
        if reaction.undo is not None:  # a refused update_session: not kept, not replayed
            core.session = undo_update(core.session, reaction.undo)
        if reaction.deliver is not None:
            await core.outlet.forward(reaction.deliver)
        return _GOING
