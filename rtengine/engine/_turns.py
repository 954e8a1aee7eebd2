"""The small parts of a websocket conversation's session chain (:mod:`~rtengine.engine._wsession`): a session waiting
for its turn, and the first session's start."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from ..protocol._lifecycle import Started
from ._follow import Primed

if TYPE_CHECKING:
    from ._conversation import Core
    from ._seams import Socket

__all__ = ["_First", "_Turn"]

log = logging.getLogger("rtengine")


class _Turn:
    """A ready session waiting for its turn: how it takes over (``None`` first, or a restore, or a rotation)."""

    __slots__ = ("_go", "_primed", "attempts", "given", "kind", "lost_at", "old_session_id", "sock")

    def __init__(self, sock: Socket) -> None:
        self.sock = sock
        self._primed: Primed | None = None  # made when first asked for (the first session has no replay)
        self.given = False
        self._go: trio.Event | None = None  # made by a wait before the turn is given (the first session has none)
        self.kind = "first"
        self.lost_at = 0.0
        self.attempts = 0
        self.old_session_id: str | None = None

    @property
    def primed(self) -> Primed:
        """Replay items written early (a rotation writes the settled history while the old session runs)."""
        if self._primed is None:
            self._primed = Primed()
        return self._primed

    def give(self, kind: str, lost_at: float, attempts: int = 0, old_session_id: str | None = None) -> None:
        self.kind, self.lost_at, self.attempts, self.old_session_id = kind, lost_at, attempts, old_session_id
        self.given = True
        if self._go is not None:
            self._go.set()

    async def wait(self) -> None:
        """Return once the turn is given. Cancellation: returns nothing, changes nothing."""
        if self.given:
            await trio.lowlevel.checkpoint()
            return
        if self._go is None:
            self._go = trio.Event()
        await self._go.wait()


class _First:
    """The first session's task status: once it is ready, ``Started`` and the conversation's own start, then its
    turn at once."""

    __slots__ = ("_core", "_outer", "_reconnect")

    def __init__(self, core: Core, reconnect: bool, outer: trio.TaskStatus[None]) -> None:
        self._core, self._reconnect, self._outer = core, reconnect, outer

    def started(self, turn: _Turn) -> None:
        core = self._core
        core.timeline.mark("connected")
        core.timeline.mark("session_update_sent")
        log.info("connected realtime websocket total_elapsed_ms=%.0f", core.timeline.total_ms())
        core.outlet.put_now(Started("websocket"))
        log.info("realtime conversation started transport=websocket reconnect=%s", self._reconnect)
        self._outer.started()
        turn.give("first", trio.current_time())
