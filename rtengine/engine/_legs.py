"""One call of a re-dialing conversation (a *leg*): its media peer and its sideband, each stoppable on its own.

A conversation in which rtengine is the media peer lives on one call at a time; a rotation
(:mod:`~rtengine.engine._redial`) dials the next call, connects it and joins its sideband *before* the old one is
let go (make before break). A leg's tasks run in the re-dialing job's nursery, in the conversation's work scope:

* the **media leg** applies the answer, reaches "connected" within ``connect_timeout`` and drains the remote audio
  (delivered to the app only while the leg is the current one); once connected, its peer failing or closing ends
  the conversation (``Closed("call_ended")``) — unless the leg was retired by a rotation. Its peer is closed on the
  way out (shielded, bounded by the peer adapter).
* the **sideband leg** joins (handshake plus ``session.update``, with the join retries), then waits for ``go`` (a
  new leg, until the handoff) and runs the input loop — re-joining after a loss, as any call's sideband. A handoff
  (:meth:`Leg.hand_off`) stops its reader at once and ends its loop like a loss: the pumps take nothing more, the
  writes in flight finish, and what was taken but not written stays in the conversation's :class:`Carry` for the
  next leg. Nothing is written twice, nothing is lost.

The conversation's history and session clock are the loop's :class:`~rtengine.engine._follow.Follow`
(``core.follow``). A new leg writes the history's replay right after its ``session.update``, before its loop runs
(:func:`~rtengine.engine._follow.replay_into`: the new session's echoes of the replayed items are not delivered
again; a refused item is a non-fatal ``Error``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import trio

from ..protocol._backoff import retry_delays
from ..protocol._errors import ConnectFailed, TransportError
from ..protocol._lifecycle import Closed, Error, SocketEnd, Started
from ..protocol._payloads import encode, session_update
from ..protocol._reattach import join_refused_ending, sideband_ending, sideband_rejoinable
from ..protocol._urls import sideband_url
from ._legreplay import replay_owed
from ._rejoin import Budget, Carry, rejoin
from ._sideband import run_loop

if TYPE_CHECKING:
    from ..protocol._replaying import ReplayProgress
    from ._conversation import Core
    from ._seams import Endpoint, PeerLike, Socket, TrackLike

__all__ = ["HANDOFF", "Leg", "LegFailed", "run_sideband_leg", "wait_connected"]

log = logging.getLogger("rtengine")

#: How a leg's loop ends at a handoff (an "abnormal" end, so the loop carries what it had taken).
HANDOFF: Final = SocketEnd(clean=False, detail="handed over to the next call")


class LegFailed(Exception):
    """A new leg could not be brought up (a rotation then fails; the conversation goes on on the old call)."""


class Leg:
    """One call: its id, its peer and outbound track, its answer, and the events of its handoff."""

    __slots__ = (
        "answer_sdp",
        "call_id",
        "go",
        "handed_off",
        "heard",
        "media_scope",
        "peer",
        "reader",
        "replay",
        "running",
        "stop",
        "track",
    )

    def __init__(self, call_id: str, peer: PeerLike, track: TrackLike, answer_sdp: str) -> None:
        self.call_id, self.peer, self.track, self.answer_sdp = call_id, peer, track, answer_sdp
        #: What a new leg writes right after its ``session.update``, before its loop runs: the history's replay.
        #: Kept until the server answered each item (the items owed are written again after a re-join).
        self.replay: ReplayProgress | None = None
        #: Set when the leg's input loop runs (after the replay).
        self.running = trio.Event()
        #: Cancelled to retire the leg's media (its peer is then closed).
        self.media_scope = trio.CancelScope()
        #: Set when this leg's sideband may run its loop (the first leg at once; a new one at the handoff).
        self.go = trio.Event()
        #: Set by :meth:`hand_off`; ``handed_off`` once the loop returned, the carry complete.
        self.stop = trio.Event()
        self.handed_off = trio.Event()
        self.reader: trio.CancelScope | None = None
        #: Set on the first audio frame received from this call.
        self.heard = trio.Event()

    def __repr__(self) -> str:
        return f"<Leg {self.call_id}>"

    def hand_off(self) -> None:
        """Stop this leg's input loop (see the module docstring); a leg that never ran its loop never will."""
        self.stop.set()
        self.go.set()
        if self.reader is not None:
            self.reader.cancel()


class LegSocket:
    """A leg's socket, as its loop sees it: a handoff ends it (``receive`` returns :data:`HANDOFF`)."""

    __slots__ = ("_leg", "_sock")

    def __init__(self, sock: Socket, leg: Leg) -> None:
        self._sock, self._leg = sock, leg

    async def send(self, text: str) -> None:
        await self._sock.send(text)

    async def receive(self) -> str | bytes | SocketEnd:
        leg = self._leg
        with trio.CancelScope() as scope:
            leg.reader = scope
            try:
                if not leg.stop.is_set():
                    return await self._sock.receive()  # cancellation loses nothing (the Socket contract)
            finally:
                leg.reader = None
        return HANDOFF

    def receive_nowait(self) -> str | bytes | None:
        """A message already at hand (None after a handoff: :meth:`receive` then returns :data:`HANDOFF`)."""
        return None if self._leg.stop.is_set() else self._sock.receive_nowait()


async def _replay(core: Core, sock: Socket, leg: Leg) -> SocketEnd | None:
    """A new leg's replay (none for the first leg), or what it still owes after a re-join: the ``SocketEnd`` if the
    socket ended meanwhile (the rest stays owed), else None."""
    progress = leg.replay
    if progress is None or progress.done or leg.stop.is_set():
        return None
    lost = await replay_owed(core, sock, progress)
    if lost is None:
        log.info(
            "history replayed into call_id=%s added=%d refused=%d unconfirmed=%d",
            leg.call_id,
            progress.added,
            progress.refused,
            progress.unconfirmed,
        )
    return lost


async def _loop(core: Core, sock: Socket, carry: Carry, leg: Leg) -> SocketEnd | None:
    leg.running.set()
    if leg.stop.is_set():
        lost: SocketEnd | None = HANDOFF
    else:
        lost = await run_loop(core, LegSocket(sock, leg), carry, ending=sideband_ending)
    if lost is HANDOFF:
        leg.handed_off.set()  # before the close handshake: the next leg need not wait for it
    return lost


async def run_sideband_leg(
    endpoint: Endpoint,
    leg: Leg,
    carry: Carry,
    core: Core,
    *,
    first: bool,
    inline: bool,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Join ``leg``'s sideband (``task_status.started()`` once ``session.update`` is written), wait for ``go``, run
    the loop, re-join after a loss, until the conversation ends or the leg is handed off.

    A join that fails after the retries: the first leg in the background ends the conversation with
    ``Error("sideband_join_failed")``; otherwise the error is raised (to the starter, or to the rotation). A join
    answered 404 is not retried: the call is over — the first leg in the background ends with
    ``Closed("call_ended")``, no ``Error``."""
    url = sideband_url(endpoint.realtime_base_url, leg.call_id)
    headers = endpoint.auth_headers()
    delays = retry_delays(endpoint.sideband_retries, endpoint.backoff_base, endpoint.rand)
    lost: SocketEnd | None = None
    for attempt in range(len(delays) + 1):
        core.stats.join_attempts += 1
        joined = False
        try:
            async with endpoint.sockets.open(url, headers) as sock:
                await sock.send(encode(core.brain.stamp(session_update(core.session))))
                joined = True
                if first:
                    core.timeline.mark("sideband_joined")
                    core.timeline.mark("session_update_sent")
                    if inline:
                        core.outlet.put_now(Started("webrtc", leg.call_id))
                log.info("connected realtime sideband websocket call_id=%s", leg.call_id)
                task_status.started()
                await leg.go.wait()
                lost = await _replay(core, sock, leg)
                if lost is None:
                    lost = await _loop(core, sock, carry, leg)
                elif not sideband_rejoinable(lost):
                    error, closed = sideband_ending(lost)
                    core.end(closed, error)
                    return
                break
        except TransportError as exc:
            if joined:
                raise
            ended = join_refused_ending(exc.status) if isinstance(exc, ConnectFailed) else None
            if ended is not None and first and not inline:  # 404: the call is over: no retry, no Error
                log.info("realtime call ended before its sideband joined call_id=%s", leg.call_id)
                core.end(ended, None)
                return
            if ended is not None:
                raise  # to the starter, or to the rotation: no retry of a call that is gone
            if attempt == len(delays):
                if first and not inline:
                    log.warning("failed to connect realtime sideband call_id=%s: %s", leg.call_id, exc)
                    message = f"failed to connect realtime sideband: {exc}"
                    core.end(Closed("error"), Error(message, "sideband_join_failed"))
                    return
                raise
        await trio.sleep(delays[attempt])

    async def rejoined(core: Core, sock: Socket, carry: Carry) -> SocketEnd | None:
        lost = await _replay(core, sock, leg)  # a replay cut by the loss goes on first
        if lost is None:
            return await _loop(core, sock, carry, leg)
        if sideband_rejoinable(lost):
            return lost
        error, closed = sideband_ending(lost)
        core.end(closed, error)
        return None

    budget: Budget | None = None
    while lost is not None and lost is not HANDOFF:
        lost, budget = await rejoin(endpoint, url, headers, core, carry, lost, rejoined, budget)


async def wait_connected(peer: PeerLike, within: float) -> str | None:
    """Wait for ``peer`` to reach "connected": None, or why it did not within ``within`` seconds."""
    with trio.move_on_after(within):
        await peer.connected.wait()
    if peer.connected.is_set():
        return None
    return (
        f"the WebRTC connection did not reach 'connected' within {within:g} s "
        f"(ICE/DTLS never completed; state {peer.connection_state!r}: is there a usable network "
        "interface, and can the peer reach it?)"
    )


def only_current(leg: Leg, current: Callable[[], Leg], deliver: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """A leg's audio callback: frames reach the app only while ``leg`` is the current one (the others are
    drained, never delivered: the app hears one call at a time)."""

    def received(pcm16: bytes) -> None:
        leg.heard.set()
        if current() is leg:
            deliver(pcm16)

    return received
