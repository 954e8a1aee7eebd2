"""A websocket session's rotation (:mod:`~rtengine.engine._wsession` states what it does): :class:`Rotation`.

Theory of operation. A session's loop makes one :class:`Rotation`. It is armed once the session's cap is known
(:meth:`Rotation.arm`, as ``Follow.on_change``: the conversation's alarm is set for the rotation time), and becomes
due when the alarm fires: only then are its two scopes made (most sessions never rotate) and the rotation started as
a task of the session's nursery, so it lives and dies with that session. ``rotating`` bounds the whole rotation (it
is cancelled when the reader ends first: the session is over, nothing to rotate); ``playing`` bounds the wait for a
response in flight to play to its end (cancelled when the old socket ends while handing over).

Cancellation: the rotation task is cancelled with the session's nursery; a cancelled rotation hands nothing over
(a next session it opened already is a task of the conversation's work nursery and ends with it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import trio

from ..protocol._errors import TransportError
from ..protocol._lifecycle import Error, SocketEnd
from ..protocol._rotation import SPARE, latest_start, may_rotate

if TYPE_CHECKING:
    from ..protocol._rotation import SessionClock
    from ._sideband import _Link
    from ._turns import _Turn
    from ._wsession import _Chain, _Writer

__all__ = ["ROTATED", "Rotation"]

log = logging.getLogger("rtengine")

#: What the loop of a session returns when it handed over to the next one.
ROTATED: Final = SocketEnd(clean=True, code=1000, reason="rotated")
#: Between failed attempts to open the next session.
_RETRY: Final = 2.0


class Rotation:
    """One session's rotation (see the module docstring): ``following`` is the next session once it is ready."""

    __slots__ = ("_chain", "_clock", "_link", "_run", "_writer", "following", "playing", "rotating")

    def __init__(self, chain: _Chain, link: _Link, clock: SessionClock, writer: _Writer, run: trio.Nursery) -> None:
        self._chain, self._link, self._clock, self._writer, self._run = chain, link, clock, writer, run
        self.following: _Turn | None = None
        self.playing: trio.CancelScope | None = None  # made when due, with ``rotating``
        self.rotating: trio.CancelScope | None = None

    def arm(self) -> None:
        """``Follow.on_change`` until the rotation time is known (the session's cap): then the alarm is set for it."""
        core = self._chain.core
        follow = core.follow
        assert follow is not None
        if self._clock.due is not None and follow.on_change == self.arm:
            follow.on_change = None
            core.alarm.set(self._clock.due, self._due)

    def reader_ended(self) -> None:
        """The session's reader ended: a rotation under way stops waiting for the response in flight when the old
        socket ended while handing over (the rotation decides), and is called off otherwise."""
        if self.playing is None or self.rotating is None:
            return  # never due
        if self._link.lost is ROTATED:
            self.playing.cancel()
        else:
            self.rotating.cancel()

    def disarm(self) -> None:
        """No rotation of this session starts from here (its nursery closes)."""
        core = self._chain.core
        assert core.follow is not None
        if core.follow.on_change == self.arm:
            core.follow.on_change = None
        core.alarm.clear()

    def _due(self) -> None:
        """The alarm fired: the rotation is due (a task of the session's nursery, in its scope)."""
        self.playing, self.rotating = trio.CancelScope(), trio.CancelScope()
        self._run.start_soon(self._rotate, self.rotating)

    async def _rotate(self, rotating: trio.CancelScope) -> None:
        with rotating:
            await self._rotation()

    async def _rotation(self) -> None:
        chain, link, clock, playing = self._chain, self._link, self._clock, self.playing
        core = chain.core
        assert core.follow is not None
        assert playing is not None
        due_since = trio.current_time()
        while True:
            while not may_rotate(clock, trio.current_time(), due_since):
                with trio.move_on_at(latest_start(clock, due_since)):
                    await core.follow.changed.wait()
            try:
                turn = await chain.nursery.start(chain.session)
                break
            except TransportError as exc:
                core.stats.rotations_failed += 1
                log.warning("realtime session rotation failed: %s", exc)
                await core.outlet.forward(Error(f"session rotation failed: {exc}", "rotation_failed", fatal=False))
                if clock.expires is not None and trio.current_time() + _RETRY > clock.expires - SPARE:
                    return  # no time left: the cap ends this session
                await trio.sleep(_RETRY)
        self.following = turn
        try:
            await turn.primed.prime(core, turn.sock, core.follow.history.settled())
        except TransportError as exc:  # the next session is lost already: it finds out when it takes over
            log.warning("realtime rotation: writing the early replay failed: %s", exc)
        chain.stopped_at = trio.current_time()
        link.scope = self._writer.scope  # the write grace bounds the writes in flight, not the reader
        link.hand_over(ROTATED)
        await self._writer.wait()  # the writes in flight finished (bounded by the loop's write grace)
        # A response in flight plays to its end here — but the rotation waits for one at most ``RESPONSE_WAIT``
        # from when it was due, never past ``SPARE`` before the cap (or until the old socket ends); one still in
        # flight then is cut, ended for the app and requested again on the new session (``_Chain._run``).
        playing.deadline = min(playing.deadline, latest_start(clock, due_since))
        with playing:
            while not clock.quiet:
                await core.follow.changed.wait()
        self._run.cancel_scope.cancel()  # the session's nursery: the reader ends (the writer has, and this task here)
