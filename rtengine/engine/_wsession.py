"""A websocket conversation that outlives its sessions: reconnect after a drop (``reconnect=True``) and rotation
before the session cap (``rotate_margin``, on by default).

Theory of operation. Each session is one task of the job's nursery holding one socket (``_Chain.session``): it
opens the socket and writes ``session.update``, reports itself ready (``nursery.start``), waits for its turn, writes
the replay of the history (:func:`~rtengine.engine._follow.replay_into`), then runs the loop with the inputs carried
from the session before. All of it runs in the conversation's work scope, so every end guarantee of a plain
websocket holds (one ``Closed``, no ``Error`` after ``close()`` began, nothing outlives the block).

* **Rotation** (:class:`~rtengine.engine._handover.Rotation`). Beside the loop, no task: the conversation's alarm
  is set for the session's rotation time (:class:`~rtengine.protocol._rotation.SessionClock`: ``rotate_margin``
  before ``expires_at``); once due, the rotation (a task of the session's nursery) waits for a quiet
  moment (no response in flight, or waited ``RESPONSE_WAIT``). It opens the next session while this one still runs
  (a failure is one non-fatal ``Error("rotation_failed")``, and the conversation goes on here; it retries until
  ``SPARE`` seconds before the cap), then stops this session's pumps (what they took and did not write is carried),
  stops its reader (once a response in flight ended — the rotation waits for one at most ``RESPONSE_WAIT`` from
  when it was due, never past ``SPARE`` before the cap; one cut is ended for the app by
  ``ResponseDone(status="cancelled")``, counted in ``responses_cut`` and requested again on the new session), and
  gives the next session its turn: the replay (and an utterance cut, written again), ``SessionRotated(None, None,
  gap_ms, old, new, state_restored)``, then the carried inputs and the buffers, in order. This session's socket is
  closed with 1000 meanwhile.
* **Reconnect.** A loss worth it (:func:`~rtengine.protocol._reattach.sideband_rejoinable`: a reset, an EOF
  without a close frame, 1001/1006/1011/1012/1013 other than the cap) with ``reconnect=True``:
  ``ConnectionDropped(code, reason)``, then new sessions are tried with the re-join budget of the client
  (``sideband_rejoin_attempts`` and ``sideband_rejoin_deadline``, the backoff between attempts; a loss soon after a
  restore continues the same attempts budget; each loss gets its own deadline), and the first that opens gets the
  replay: ``SessionRestored(items_replayed, state_restored, attempts, gap_ms)`` — then, when a response was
  streaming at the drop, its end: ``ResponseDone(status="cancelled")`` (counted in ``responses_cut``; a response
  owed and never acknowledged is requested again instead). A session lost while the history is replayed is a loss
  like any other. Exhausted: ``Error("connection_lost")`` then ``Closed("error")``. Without ``reconnect`` a loss
  ends the conversation as on a plain websocket.
* **Nothing sent twice.** Inputs written on a session are in its history, hence in the replay, never re-sent as
  inputs; those taken and not written are carried; one cut mid-frame is not repeated (``inputs_interrupted``).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Final, Literal

import trio

from ..protocol._brain import socket_end
from ..protocol._continuity import ConnectionDropped, SessionRestored
from ..protocol._cut import cut_response
from ..protocol._errors import TransportError
from ..protocol._lifecycle import Closed, Error, SessionRotated, SocketEnd
from ..protocol._payloads import encode, input_audio_append, response_create, session_update
from ..protocol._reattach import rejoin_delays
from ..protocol._rotation import SessionClock
from ._follow import replay_into
from ._handover import Rotation
from ._rejoin import Budget, Carry
from ._sideband import _Link, _pump, _read
from ._turns import _First, _Turn

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from ._conversation import Core
    from ._seams import Endpoint, Socket

__all__ = ["run_websocket_sessions"]

log = logging.getLogger("rtengine")

#: A new session took over (the replay written and answered).
_TAKEN: Final = SocketEnd(clean=True, code=None, reason="taken over")


class _Chain:
    """The sessions of one websocket conversation (see the module docstring)."""

    def __init__(
        self,
        endpoint: Endpoint,
        url: str,
        headers: Mapping[str, str],
        core: Core,
        nursery: trio.Nursery,
        reconnect: bool,
    ) -> None:
        self.endpoint, self.url, self.headers, self.core, self.nursery = endpoint, url, headers, core, nursery
        self.reconnect = reconnect
        self.carry = Carry()
        self.budget: Budget | None = None
        #: When the last session stopped taking inputs (the start of a rotation's gap).
        self.stopped_at = 0.0
        #: The response streaming when the socket was lost (ended for the app once a session is restored).
        self._dropped_response: str | None = None
        #: The audio of an utterance a rotation cut (written again on the next session).
        self._unheard: tuple[bytes, ...] = ()

    async def session(self, *, task_status: trio.TaskStatus[_Turn] | _First) -> None:
        core = self.core
        assert core.follow is not None
        lost: SocketEnd | None = None
        async with self.endpoint.sockets.open(self.url, self.headers) as sock:
            await sock.send(encode(core.brain.stamp(session_update(core.session))))
            turn = _Turn(sock)
            task_status.started(turn)
            await turn.wait()
            clock = core.follow.new_session()
            taken = _TAKEN if turn.kind == "first" else await self._take_over(sock, turn, clock)
            if taken is None:
                return  # the conversation ended
            if taken is _TAKEN:
                lost, following = await self._run(sock, clock)
                if following is not None:  # rotated: the next session goes on while this socket closes with 1000
                    _reconcile(core, self.carry)
                    unheard = core.follow.audio.take()  # the old session's input buffer, lost with it
                    self._unheard = unheard if clock.user_speaking else ()  # an utterance cut: said again
                    following.give("rotate", self.stopped_at, 0, clock.session_id)
                    return
            else:
                lost = taken
        await self._after(lost)

    async def _take_over(self, sock: Socket, turn: _Turn, clock: SessionClock) -> SocketEnd | None:
        """Replay the history on the new session, then announce it: ``_TAKEN``; the ``SocketEnd`` when it was lost
        meanwhile; None once the conversation ended."""
        core = self.core
        assert core.follow is not None
        replay = core.follow.history.replay()
        try:
            answered = await replay_into(core, sock, replay, turn.primed, named=True)
        except TransportError as exc:  # lost while the history was written: a loss like any other
            log.warning("realtime session lost during the replay: %s", exc)
            return SocketEnd(clean=False, detail=str(exc))
        if isinstance(answered, SocketEnd):
            return answered
        if answered is None:
            return None
        added, refused = answered
        gap_ms = (trio.current_time() - turn.lost_at) * 1000
        if turn.kind == "restore":
            core.timeline.mark(_nth(core, "session_restored", core.stats.reconnects))
            log.info("realtime session restored attempts=%d items=%d gap_ms=%.0f", turn.attempts, added, gap_ms)
            restored = replay.complete and refused == 0
            await core.outlet.forward(SessionRestored(len(replay.items), restored, turn.attempts, gap_ms))
            dropped, self._dropped_response = self._dropped_response, None
            await self._cut(dropped, "connection_lost")  # a response streaming at the drop: it ends here
        else:
            unheard, self._unheard = self._unheard, ()
            for pcm in unheard:  # the utterance the rotation cut, before anything said since
                await sock.send(encode(core.brain.stamp(input_audio_append(pcm))))
                core.follow.audio.wrote(pcm)
            if unheard:
                log.info("realtime rotation cut the user mid-utterance; %d audio frames written again", len(unheard))
            core.stats.rotations += 1
            core.timeline.mark(_nth(core, "session_rotated", core.stats.rotations))
            log.info("realtime session rotated items=%d gap_ms=%.0f", added, gap_ms)
            complete = replay.complete and refused == 0
            core.stats.rotations_incomplete += not complete
            rotated = SessionRotated(None, None, gap_ms, turn.old_session_id, clock.session_id, complete)
            await core.outlet.forward(rotated)
        return _TAKEN

    async def _run(self, sock: Socket, clock: SessionClock) -> tuple[SocketEnd | None, _Turn | None]:
        """The loop on ``sock``, with the session's rotation beside it: how the socket was lost (None once the
        conversation ended), and the next session when this one handed over to it.

        The session's own task is the reader, in the body of the session's nursery (``run``: the rotation ends the
        reader by cancelling it, once the writer and the rotation itself are done); the writer (in its own scope,
        ``writer.scope``) and the rotation, once due (:class:`~rtengine.engine._handover.Rotation`), are tasks of
        that nursery."""
        link = _Link(self.core, sock, self.carry, socket_end)
        link.renews = self.reconnect  # a loss opens a new session, rebuilt from the history
        # A loss (or a failed write) bounds the whole run by the write grace; a rotation only the writer (its scope):
        # the reader goes on while a response in flight plays to its end.
        writer = _Writer()
        follow = self.core.follow
        assert follow is not None
        async with trio.open_nursery() as run:
            link.scope = run.cancel_scope
            run.start_soon(writer.run, _pump, link)
            rotation = Rotation(self, link, clock, writer, run)
            follow.on_change = rotation.arm
            try:
                rotation.arm()
                await _read(link)
                rotation.reader_ended()
            finally:
                rotation.disarm()
            # The reader ended (or the rotation ended it): the rotation, when under way, finishes in the nursery.
            if link.lost is None:
                run.cancel_scope.cancel()
        if link.lost is None and link.suspect is not None:
            link.lose(link.suspect)
        following = rotation.following
        if following is not None and link.lost is not None:  # handed over (or lost while handing over)
            if clock.response_active:  # cut by the rotation: the new session answers it again
                log.warning("realtime rotation cut a response in flight; it is requested again on the new session")
                self.carry.control.append(response_create())
                await self._cut(clock.response_id, "session_rotated")
            return None, following
        return link.lost, None

    async def _cut(self, response_id: str | None, reason: Literal["session_rotated", "connection_lost"]) -> None:
        """Response ``response_id`` was cut mid-stream: counted, and ended for the app (which saw it begin) by a
        ``ResponseDone(status="cancelled")`` (:func:`~rtengine.protocol._cut.cut_response`)."""
        if response_id is None:
            return  # never acknowledged: the app saw nothing of it (the brain asks for it again when owed)
        self.core.stats.responses_cut += 1
        await self.core.outlet.forward(cut_response(response_id, reason))

    async def _after(self, lost: SocketEnd | None) -> None:
        """After a session's socket ended: reconnect when worth it and wanted, else end the conversation."""
        core = self.core
        if lost is None:
            return
        if not self.reconnect:
            error, closed = socket_end(lost)
            core.end(closed, error)
            return
        await self._reconnect(lost)

    async def _reconnect(self, lost: SocketEnd) -> None:
        core, endpoint = self.core, self.endpoint
        stats = core.stats
        stats.reconnects += 1
        lost_at = trio.current_time()
        reason = lost.reason if lost.clean else (lost.detail or "the connection ended without a close frame")
        core.timeline.mark(_nth(core, "connection_dropped", stats.reconnects))
        log.warning("realtime websocket lost code=%s reason=%s; reconnecting", lost.code, reason)
        await core.outlet.forward(ConnectionDropped(lost.code, reason))
        assert core.follow is not None
        clock = core.follow.clock
        if clock.response_active and clock.response_id is not None:  # ended for the app once the new session is in
            self._dropped_response = clock.response_id
        budget = (self.budget or Budget(lost_at)).current(lost_at, endpoint.sideband_rejoin_deadline)
        self.budget = budget
        delays = rejoin_delays(endpoint.sideband_rejoin_attempts, endpoint.backoff_base, endpoint.rand)[budget.used :]
        failure: TransportError | None = None
        with trio.CancelScope(deadline=budget.deadline(lost_at, endpoint.sideband_rejoin_deadline)) as bounded:
            for attempt, delay in enumerate(delays, 1):
                await trio.sleep(delay)
                budget.used += 1
                stats.reconnect_attempts += 1
                try:
                    turn = await self.nursery.start(self.session)
                except TransportError as exc:
                    failure = exc
                    log.warning("realtime reconnect attempt %d failed: %s", attempt, exc)
                    continue
                bounded.deadline = math.inf
                budget.restored = trio.current_time()
                _reconcile(core, self.carry)
                turn.give("restore", lost_at, attempt)
                return
        why = (
            f"not back within {endpoint.sideband_rejoin_deadline:g} s"
            if bounded.cancelled_caught
            else (f"{budget.used} reconnect attempts failed or dropped at once")
        )
        await trio.lowlevel.checkpoint_if_cancelled()  # an end that began meanwhile wins (no Error after close())
        core.end(Closed("error"), Error(f"realtime websocket lost and not reconnected ({why}): {failure or reason}",
                                        "connection_lost"))  # fmt: skip


class _Writer:
    """The session's writer, in its own cancel scope (``scope``: the rotation bounds the writes in flight by it, not
    the reader); :meth:`wait` returns once it ended."""

    __slots__ = ("_done", "_running", "scope")

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self._running = True
        self._done: trio.Event | None = None  # made by the first wait (a rotation): most sessions never rotate

    async def run(self, pump: Callable[[_Link], Awaitable[None]], link: _Link) -> None:
        try:
            with self.scope:
                await pump(link)
        finally:
            self._running = False
            if self._done is not None:
                self._done.set()

    async def wait(self) -> None:
        """Return once the writer ended. Cancellation: returns nothing, changes nothing."""
        if not self._running:
            await trio.lowlevel.checkpoint()
            return
        if self._done is None:
            self._done = trio.Event()
        await self._done.wait()


def _reconcile(core: Core, carry: Carry) -> None:
    """A new session takes over: the carried control payloads with the response reconciled by the brain (a
    ``response.create`` owed or never acknowledged goes out again; see ``Brain.rejoined``)."""
    control = core.brain.rejoined(tuple(carry.control))
    carry.control.clear()
    carry.control.extend(control)


def _nth(core: Core, phase: str, n: int) -> str:
    return phase if n <= 1 else f"{phase}_{n}"


async def run_websocket_sessions(
    endpoint: Endpoint,
    url: str,
    headers: Mapping[str, str],
    reconnect: bool,
    core: Core,
    task_status: trio.TaskStatus[None],
) -> None:
    """A websocket conversation over a chain of sessions: the first opened inline (a failure raises to the
    starter), ``Started``, then the sessions as the module docstring says. The first session runs in this task;
    the next ones are tasks of the conversation's work nursery (``core.nursery``: a rotation opens one while the old
    one still runs), and the runner discards what is still carried (``core.carry``) once every task has ended."""
    assert core.nursery is not None
    chain = _Chain(endpoint, url, headers, core, core.nursery, reconnect)
    core.carry = chain.carry
    await chain.session(task_status=_First(core, reconnect, task_status))
