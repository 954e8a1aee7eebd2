"""The timeline of a conversation: phase → seconds since it began, first occurrence only, mirrored in the logs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import MappingProxyType

import trio

__all__ = ["Timeline"]

log = logging.getLogger("rtengine")


class Timeline:
    """Phases of one conversation, relative to ``started_at`` (trio time). ``view`` is a read-only mapping."""

    __slots__ = ("_last", "_phases", "call_id", "observer", "started_at", "view")

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self._last = started_at
        self._phases: dict[str, float] = {}
        self.view: Mapping[str, float] = MappingProxyType(self._phases)
        #: Named in the log lines once known.
        self.call_id: str | None = None
        #: Told ``(phase, trio time)`` of every phase recorded (the telemetry, when OpenTelemetry is installed).
        self.observer: Callable[[str, float], None] | None = None

    def __contains__(self, phase: str) -> bool:
        return phase in self._phases

    def total_ms(self) -> float:
        """Milliseconds since the conversation began."""
        return (trio.current_time() - self.started_at) * 1000

    def mark(self, phase: str) -> float:
        """Record ``phase`` now (first time only); returns the ms since the previous mark."""
        now = trio.current_time()
        elapsed = (now - self._last) * 1000
        self._last = now
        if phase not in self._phases:
            self._phases[phase] = now - self.started_at
            if self.observer is not None:
                self.observer(phase, now)
            total_ms = (now - self.started_at) * 1000
            log.debug("realtime phase %s call_id=%s total_elapsed_ms=%.0f", phase, self.call_id, total_ms)
        return elapsed

    def never_ran(self, *, failed: bool) -> None:
        """The conversation ends before its runner started (its call's creation or accept failed, or was
        cancelled): ``start_failed`` when it failed, then ``closed``, so the telemetry ends its span."""
        if failed:
            self.mark("start_failed")
        self.mark("closed")

    def mark_at(self, phase: str, when: float | None) -> None:
        """Record ``phase`` at trio time ``when`` (first time only; nothing when ``when`` is None)."""
        if when is not None and phase not in self._phases:
            self._phases[phase] = when - self.started_at
            if self.observer is not None:
                self.observer(phase, when)
            log.info(
                "realtime phase %s call_id=%s total_elapsed_ms=%.0f", phase, self.call_id, self._phases[phase] * 1000
            )
