"""The idle timeout of server VAD, on wall time (trio's clock), as the API plays it.

``idle_timeout_ms`` "is applied after the last model response's audio has finished playing, i.e. it's set to the
``response.done`` time plus audio playback duration" (the ``openai`` SDK's docs of ``turn_detection``). So it
counts time, not input audio: a client that stops sending audio after a response still gets
``input_audio_buffer.timeout_triggered``. :class:`IdleTimer` is that one pending timer: armed at ``response.done``
(:meth:`IdleTimer.arm`, a task in the conversation's nursery), cancelled by speech, a new turn or a new response
(:meth:`IdleTimer.disarm`), re-armed by the next ``response.done``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

__all__ = ["IdleTimer"]


class IdleTimer:
    """At most one pending idle timeout: ``fire`` runs once ``delay`` seconds after :meth:`arm` unless
    :meth:`disarm` (or a later :meth:`arm`) comes first."""

    def __init__(self, fire: Callable[[], Awaitable[None]]) -> None:
        self._fire = fire
        self._scope: trio.CancelScope | None = None

    @property
    def armed(self) -> bool:
        return self._scope is not None

    def arm(self, nursery: trio.Nursery, delay: float) -> None:
        """(Re)start the countdown: ``fire`` after ``delay`` seconds, in ``nursery``."""
        self.disarm()
        scope = self._scope = trio.CancelScope()
        nursery.start_soon(self._run, scope, delay)

    def disarm(self) -> None:
        """Cancel the pending countdown, if any (the fire itself, once begun, is not cancelled by this)."""
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None

    async def _run(self, scope: trio.CancelScope, delay: float) -> None:
        with scope:
            await trio.sleep(delay)
        if scope.cancelled_caught or self._scope is not scope:
            return
        self._scope = None
        await self._fire()
