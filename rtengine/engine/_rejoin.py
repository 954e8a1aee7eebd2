"""Sideband re-attach: after a loss worth it, join the same call again and carry on (WebRTC calls).

Theory of operation. The call outlives its sideband (the provider ends a call on hang-up, when its media goes, or
at the session cap), so when the sideband is lost abnormally while the call lives
(:func:`~rtengine.protocol._reattach.sideband_rejoinable`), the sideband job does not end the conversation: the
loop returns the loss and :func:`rejoin` runs, still inside the conversation's work scope — ``close()``, a failure
or the owner's cancellation end it exactly as they end a first join (nothing opened or written after the end,
no ``Error`` after ``close()`` began, one ``Closed``).

* ``SidebandLost(code, reason)`` is delivered, then the joins: the first at once, the next ones after the backoff
  sleeps, at most ``sideband_rejoin_attempts`` of them, all within ``sideband_rejoin_deadline`` seconds of the loss.
* A join is the handshake plus ``session.update`` — always the first frame on the new socket. It carries only
  what rtengine applied and the server never confirmed (usually nothing but the session ``type``), so it cannot
  undo what another view of the call (its data channel, a second sideband) changed meanwhile; a refusal of it is a
  non-fatal ``Error`` (:mod:`~rtengine.protocol._resync`). Then ``SidebandRestored(attempts, gap_ms)``, and the
  loop runs on the new socket: first what the old one was about to write (the :class:`Carry`), then the inputs
  still buffered, in order.
* The owed response is reconciled: a ``response.create`` owed, or written (or taken) but never acknowledged by
  ``response.created``, may have died with the socket; it goes out again in its place among the carried inputs (a
  repeat the server refuses because that response is active adopts it: nothing is requested twice). If the
  sideband does not come back, it is counted in ``stats.inputs_lost`` and named in the ``Error``.
* The inputs kept buffering meanwhile (same capacities, same drop policy). Nothing is sent twice: a payload whose
  write completed is never repeated; one taken but not written goes out after the re-join, in order; one whose
  write was interrupted mid-frame (part of it may be on the wire) is not repeated either and is counted in
  ``stats.inputs_interrupted``.
* A sideband that keeps dropping right after each re-join cannot loop: a loss within
  ``sideband_rejoin_deadline`` of the last restore continues the same budget (the attempts already used, the
  backoff where it was), so a flapping sideband ends the conversation too; each loss gets its own deadline (a
  streak of quick restores is not given up for the time they add up to).
* A re-join answered 404 means the call is gone: ``Closed("call_ended")``. The attempts or the deadline running
  out while the call lives: one ``Error("sideband_lost")`` then ``Closed("error")``, and the call is hung up (the
  conversation's usual hang-up, unless ``hangup=False``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import trio

from ..protocol._errors import ConnectFailed, TransportError
from ..protocol._lifecycle import Closed, ConversationStats, Error, SidebandLost, SidebandRestored, SocketEnd
from ..protocol._payloads import encode, session_update
from ..protocol._reattach import join_refused_ending, rejoin_delays

if TYPE_CHECKING:
    from ._conversation import Core
    from ._seams import Endpoint, Socket

__all__ = ["Budget", "Carry", "rejoin"]

log = logging.getLogger("rtengine")

#: Runs the loop on a re-joined socket: how it was lost again, or None once the conversation ended.
RunLoop = Callable[["Core", "Socket", "Carry"], Awaitable[SocketEnd | None]]


class Budget:
    """The re-join budget of a streak of losses: when the streak began, the joins made, the last restore. The
    attempts are counted over the streak; the deadline runs from each loss (:meth:`deadline`)."""

    __slots__ = ("began", "restored", "used")

    def __init__(self, began: float) -> None:
        self.began = began
        self.used = 0
        self.restored: float | None = None

    def current(self, now: float, deadline: float) -> Budget:
        """This budget if the sideband was restored less than ``deadline`` ago (the streak goes on), else a new one."""
        if self.restored is not None and now - self.restored < deadline:
            return self
        return Budget(now)

    @staticmethod
    def deadline(lost_at: float, deadline: float) -> float:
        """When re-joining after the loss at ``lost_at`` is given up: ``deadline`` seconds after that loss."""
        return lost_at + deadline


class Carry:
    """What a lost socket had taken from the input buffers and not written: control payloads (already decided by
    the brain) and audio frames, in order. They go out first on the next socket."""

    __slots__ = ("audio", "control")

    def __init__(self) -> None:
        self.control: list[dict[str, Any]] = []  # lists: an empty deque costs ~760 bytes, an empty list 56
        self.audio: list[bytes] = []

    def discard(self, stats: ConversationStats) -> None:
        """The conversation ended: what is still carried was never sent (counted as ``inputs_lost``)."""
        stats.inputs_lost += len(self.control) + len(self.audio)
        self.control.clear()
        self.audio.clear()


async def rejoin(
    endpoint: Endpoint,
    url: str,
    headers: Mapping[str, str],
    core: Core,
    carry: Carry,
    lost: SocketEnd,
    run: RunLoop,
    budget: Budget | None,
) -> tuple[SocketEnd | None, Budget]:
    """Join the call's sideband again after ``lost`` and run the loop on it (see the module docstring): how the new
    socket was lost in turn (None once the conversation ended), and the budget the next loss continues."""
    stats, timeline = core.stats, core.timeline
    stats.sideband_losses += 1
    losses = stats.sideband_losses
    lost_at = trio.current_time()
    reason = lost.reason if lost.clean else (lost.detail or "the connection ended without a close frame")
    timeline.mark("sideband_lost" if losses == 1 else f"sideband_lost_{losses}")
    log.warning("realtime sideband lost call_id=%s code=%s reason=%s; re-joining", timeline.call_id, lost.code, reason)
    await core.outlet.forward(SidebandLost(lost.code, reason))
    if budget is None:
        budget = Budget(lost_at)
    budget = budget.current(lost_at, endpoint.sideband_rejoin_deadline)
    delays = rejoin_delays(endpoint.sideband_rejoin_attempts, endpoint.backoff_base, endpoint.rand)[budget.used :]
    failure: TransportError | None = None
    with trio.CancelScope(deadline=budget.deadline(lost_at, endpoint.sideband_rejoin_deadline)) as bounded:
        for attempt, delay in enumerate(delays, 1):
            await trio.sleep(delay)
            budget.used += 1
            stats.sideband_rejoin_attempts += 1
            joined = False
            try:
                async with endpoint.sockets.open(url, headers) as sock:
                    update = core.brain.rejoin_update(session_update(core.session))
                    await sock.send(encode(core.brain.stamp(update)))
                    joined = True
                    bounded.deadline = math.inf  # back: the deadline was for the re-join only
                    budget.restored = trio.current_time()
                    gap_ms = (trio.current_time() - lost_at) * 1000
                    timeline.mark("sideband_restored" if losses == 1 else f"sideband_restored_{losses}")
                    log.info(
                        "realtime sideband restored call_id=%s attempts=%d gap_ms=%.0f",
                        timeline.call_id,
                        attempt,
                        gap_ms,
                    )
                    control = core.brain.rejoined(tuple(carry.control))
                    carry.control.clear()
                    carry.control.extend(control)
                    await core.outlet.forward(SidebandRestored(attempt, gap_ms))
                    return await run(core, sock, carry), budget
            except ConnectFailed as exc:
                ended = join_refused_ending(exc.status, rejoin=True)
                if ended is not None:  # call_id_not_found: the call is over
                    log.info("realtime call ended during a sideband re-join call_id=%s", timeline.call_id)
                    await trio.lowlevel.checkpoint_if_cancelled()
                    _abandon(core, carry)
                    core.end(ended, None)
                    return None, budget
                failure = exc
            except TransportError as exc:  # session.update could not be written: the next attempt
                if joined:
                    raise
                failure = exc
            log.warning(
                "realtime sideband re-join attempt %d failed call_id=%s: %s", attempt, timeline.call_id, failure
            )
    if bounded.cancelled_caught:
        why = f"not back within {endpoint.sideband_rejoin_deadline:g} s"
    else:
        why = f"{budget.used} re-join attempts failed or dropped at once"
    message = f"realtime sideband lost and not re-joined ({why}): {failure or reason}"
    await trio.lowlevel.checkpoint_if_cancelled()  # an end that began meanwhile wins (no Error after close())
    if _abandon(core, carry):
        message += "; a requested response was never sent"
    core.end(Closed("error"), Error(message, "sideband_lost"))
    return None, budget


def _abandon(core: Core, carry: Carry) -> int:
    """The sideband will not be back: a response still owed or unacknowledged is counted as lost
    (``stats.inputs_lost``); returns how many (0 or 1)."""
    control, lost = core.brain.rejoin_failed(tuple(carry.control))
    carry.control.clear()
    carry.control.extend(control)
    if lost:
        core.stats.inputs_lost += lost
        log.warning(
            "realtime sideband not re-joined call_id=%s: a requested response was never sent", core.timeline.call_id
        )
    return lost
