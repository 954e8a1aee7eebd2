"""A conversation's one timer: :class:`Alarm`, kept by the conversation's owner watch (no task of its own).

Theory of operation. Timed work that happens once in a long while — a websocket session's rotation, the warning
before a browser-held call's cap — is not a task sleeping for most of an hour beside every idle conversation: its
job sets the alarm (:meth:`Alarm.set`: a time and a synchronous ``fire``), and the conversation's owner watch —
started the first time the alarm is set (:meth:`Alarm.keep`), so a conversation that never sets it has no such
task — sleeps until that time (a deadline on its sleep) and calls ``fire``. ``fire`` starts the timed work as
a task in the nursery of the job that owns it (so that task lives and dies with its owner, as any other), or does
something that never waits. One alarm per conversation: a new :meth:`Alarm.set` replaces the one set before, and
the job clears it (:meth:`Alarm.clear`) before its nursery closes, so ``fire`` never finds it closed.

Cancellation: :meth:`Alarm.run` runs until cancelled (the owner's cancellation, or the end of the conversation's
runner); a cancelled alarm fires nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NoReturn

import trio

__all__ = ["Alarm"]


def _abort(_raise_cancel: object) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.SUCCEEDED


class Alarm:
    """When to call what (see the module docstring)."""

    __slots__ = ("_at", "_fire", "_keeper", "_scope")

    def __init__(self) -> None:
        self._at = math.inf
        self._fire: Callable[[], None] | None = None
        self._scope: trio.CancelScope | None = None
        self._keeper: Callable[[], None] | None = None

    def keep(self, start: Callable[[], None] | None) -> None:
        """``start()`` starts the task that keeps this alarm (it calls :meth:`run`): at once when the alarm is set
        already, else the first time it is (a conversation that never sets it runs no such task). ``None``: start
        nothing any more (the nursery is closing)."""
        self._keeper = None
        if start is not None and self._fire is not None:
            start()
        else:
            self._keeper = start

    def set(self, at: float, fire: Callable[[], None]) -> None:
        """Call ``fire()`` at ``trio`` time ``at`` (at once if past), instead of what was set before."""
        self._at, self._fire = at, fire
        if self._scope is not None:
            self._scope.deadline = at
        elif self._keeper is not None:
            start, self._keeper = self._keeper, None
            start()

    def clear(self) -> None:
        """Fire nothing (until set again)."""
        self._at, self._fire = math.inf, None
        if self._scope is not None:
            self._scope.deadline = math.inf

    async def run(self) -> NoReturn:
        """Sleep until the alarm's time, call its ``fire``, and again; forever (until cancelled)."""
        while True:
            with trio.CancelScope(deadline=self._at) as scope:
                self._scope = scope
                try:
                    # ``trio.sleep_forever()`` enters a scope of its own (``sleep_until(inf)``): this one is enough.
                    await trio.lowlevel.wait_task_rescheduled(_abort)
                finally:
                    self._scope = None
            fire, self._at, self._fire = self._fire, math.inf, None
            if fire is not None:
                fire()
