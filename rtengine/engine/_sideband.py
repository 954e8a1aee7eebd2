"""The socket jobs: a plain websocket conversation, a call's sideband (join with retries, re-join after a loss),
and the input loop.

Each runs in the conversation's work scope, so the end (``close()``, a failure, the owner's cancellation) cancels
it unconditionally: after that no connection can be opened and nothing can be written but the close, which the
socket adapter runs by itself (shielded, bounded) when the ``open`` block is left. The decisions — what a server
event means, what a command sends — come from :class:`~rtengine.protocol.Brain`; this module only does the I/O.

The loop: the reader (this task) and one writer (:func:`_pump`: texts, tool outputs, response requests in call
order, and the audio; one task, not one per kind: a task and its scopes are most of an idle conversation's memory).
A write that fails ends the conversation with ``Error("connection_lost")``; so does a read that ends without a close
frame — except on a call's sideband that may be joined again (:mod:`~rtengine.engine._rejoin`): the loop then
returns the loss, and what was taken from the buffers but not written is carried
(:class:`~rtengine.engine._rejoin.Carry`) to the next socket.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

import trio

from ..protocol._backoff import retry_delays
from ..protocol._brain import socket_end
from ..protocol._errors import ConnectFailed, ConnectionLost, TransportError
from ..protocol._lifecycle import Closed, Error, SocketEnd, Started
from ..protocol._payloads import encode, input_audio_append, session_update
from ..protocol._reattach import join_refused_ending, sideband_ending, sideband_rejoinable
from ..protocol._urls import sideband_url
from ._commands import decide
from ._frame import handle_frame
from ._rejoin import Budget, Carry, rejoin

if TYPE_CHECKING:
    from ._conversation import Core
    from ._seams import Endpoint, Socket

__all__ = ["WRITE_GRACE", "run_loop", "run_sideband", "run_websocket"]

log = logging.getLogger("rtengine")

Payload = dict[str, Any]
Ending = Callable[[SocketEnd], tuple[Error | None, Closed]]
#: After a loss worth a re-join, how long the writes in flight may take to finish (or fail) before they are cut.
WRITE_GRACE: Final = 1.0


async def run_websocket(
    endpoint: Endpoint, url: str, headers: Mapping[str, str], core: Core, task_status: trio.TaskStatus[None]
) -> None:
    """A plain websocket conversation: connect and send ``session.update`` (inline: a failure raises to the
    starter), deliver ``Started``, then run the loop."""
    async with endpoint.sockets.open(url, headers) as sock:
        elapsed = core.timeline.mark("connected")
        await sock.send(encode(core.brain.stamp(session_update(core.session))))
        core.timeline.mark("session_update_sent")
        log.info(
            "connected realtime websocket elapsed_ms=%.0f total_elapsed_ms=%.0f", elapsed, core.timeline.total_ms()
        )
        core.outlet.put_now(Started("websocket"))
        log.info("realtime conversation started transport=websocket")
        task_status.started()
        await run_loop(core, sock)


async def run_sideband(
    endpoint: Endpoint,
    call_id: str,
    headers: Mapping[str, str],
    inline: bool,
    core: Core,
    task_status: trio.TaskStatus[None],
) -> None:
    """Join the call's sideband, then run the loop on it; after a loss worth it, join it again (as long as
    ``endpoint.sideband_rejoin_attempts`` is not 0).

    A join attempt is the handshake plus ``session.update``; a failed attempt is retried with backoff
    (:func:`~rtengine.protocol.backoff`). When the attempts run out: inline, the error raises to the starter; in the
    background, one ``Error("sideband_join_failed")`` then ``Closed("error")`` — unless the conversation already ended,
    which then cancelled this job before it could get here. A join answered 404 is not retried: the call is over
    (``Closed("call_ended")`` in the background, the error raised inline). A clean close (1000) of the sideband is the
    end of the call: ``Closed("call_ended")``.
    """
    url = sideband_url(endpoint.realtime_base_url, call_id)  # off the answer path
    carry = Carry() if endpoint.sideband_rejoin_attempts > 0 else None
    try:
        lost = await _join(endpoint, url, call_id, headers, inline, core, task_status, carry)
        budget: Budget | None = None
        while lost is not None and carry is not None:
            lost, budget = await rejoin(endpoint, url, headers, core, carry, lost, _run_rejoined, budget)
    finally:
        if carry is not None:
            carry.discard(core.stats)


async def _run_rejoined(core: Core, sock: Socket, carry: Carry) -> SocketEnd | None:
    return await run_loop(core, sock, carry, ending=sideband_ending)


async def _join(
    endpoint: Endpoint,
    url: str,
    call_id: str,
    headers: Mapping[str, str],
    inline: bool,
    core: Core,
    task_status: trio.TaskStatus[None],
    carry: Carry | None,
) -> SocketEnd | None:
    """The first join (with retries), then the loop: how the socket was lost, or None once the conversation ended."""
    delays = retry_delays(endpoint.sideband_retries, endpoint.backoff_base, endpoint.rand)
    update = session_update(core.session)  # built once; each attempt stamps a fresh event_id on it
    log.info("connecting realtime sideband websocket call_id=%s", call_id)
    for attempt in range(len(delays) + 1):
        core.stats.join_attempts += 1
        joined = False
        try:
            async with endpoint.sockets.open(url, headers) as sock:
                core.timeline.mark("sideband_joined")
                await sock.send(encode(core.brain.stamp(update)))
                joined = True
                core.timeline.mark("session_update_sent")
                log.info(
                    "connected realtime sideband websocket call_id=%s total_elapsed_ms=%.0f",
                    call_id,
                    core.timeline.total_ms(),
                )
                if inline:
                    core.outlet.put_now(Started("webrtc", call_id))
                task_status.started()
                return await run_loop(core, sock, carry, ending=sideband_ending)
        except TransportError as exc:
            if joined:
                raise
            ended = join_refused_ending(exc.status) if isinstance(exc, ConnectFailed) else None
            if ended is not None and not inline:  # 404: the call is over (a caller who hung up first): no retry
                log.info("realtime call ended before its sideband joined call_id=%s", call_id)
                core.end(ended, None)
                return None
            if attempt == len(delays) or ended is not None:
                if inline:
                    raise
                log.warning("failed to connect realtime sideband call_id=%s: %s", call_id, exc)
                core.end(Closed("error"), Error(f"failed to connect realtime sideband: {exc}", "sideband_join_failed"))
                return None
            log.warning(
                "realtime sideband join attempt %d failed call_id=%s; retrying in %.0f ms: %s",
                attempt + 1,
                call_id,
                delays[attempt] * 1000,
                exc,
            )
        await trio.sleep(delays[attempt])
    return None  # pragma: no cover - the last attempt returns or raises


async def run_loop(
    core: Core, sock: Socket, carry: Carry | None = None, *, ending: Ending = socket_end
) -> SocketEnd | None:
    """Pumps and reader until the conversation ends (the work scope is cancelled) or the socket does.

    Without ``carry`` every end of the socket ends the conversation (a plain websocket, or a sideband with
    re-attach off), and so does a failed write. With ``carry`` (a call's sideband that may be joined again) the
    reader's verdict decides: a failed write only stops the pumps, and the reader reads on to learn how the socket
    ended (a clean close frame, or a loss; none within ``WRITE_GRACE`` is a loss). A loss that
    :func:`~rtengine.protocol._reattach.sideband_rejoinable` accepts does not end the conversation: the pumps stop
    taking inputs, the writes in flight finish (bounded by ``WRITE_GRACE``), what was taken and not written is left
    in ``carry``, and the loss is returned. ``ending`` says how the conversation ends otherwise."""
    link = _Link(core, sock, carry, ending)
    async with trio.open_nursery() as nursery:
        link.scope = nursery.cancel_scope
        nursery.start_soon(_pump, link)
        await _read(link)
        if link.lost is None:
            nursery.cancel_scope.cancel()
    if link.lost is None and link.suspect is not None:
        link.lose(link.suspect)  # a write failed and the reader saw no end within the grace
    return link.lost


class Bounded(Protocol):
    """What the write grace bounds: a cancel scope, or a group of them cancelled together."""

    deadline: float


class _Link:
    """One socket's run of the loop: how it was lost (``lost``; ``suspect``: a write failed), the scope that
    bounds the writes in flight once stopped (``scope``), and what is carried over to the next socket. A stopped
    writer waiting for an input is woken and takes nothing (:meth:`stopped`): no cancel scope per wait."""

    __slots__ = ("carry", "core", "ending", "lost", "renews", "scope", "sock", "suspect")

    def __init__(self, core: Core, sock: Socket, carry: Carry | None, ending: Ending) -> None:
        self.core, self.sock, self.carry, self.ending = core, sock, carry, ending
        #: The next socket is a new session rebuilt from the history (a websocket's reconnect), not the same
        #: session joined again: an item cut mid-write goes into the history, so the replay writes it there once.
        self.renews = False
        self.lost: SocketEnd | None = None
        self.suspect: SocketEnd | None = None
        self.scope: Bounded | None = None

    @property
    def stopping(self) -> bool:
        """The socket is lost or suspected lost (a re-join may follow): the pumps take nothing more."""
        return self.lost is not None or self.suspect is not None

    def lose(self, end: SocketEnd) -> None:
        """The socket ended: a loss worth a re-join stops the pumps; any other end ends the conversation."""
        if self.lost is not None:
            return
        if self.carry is None or not sideband_rejoinable(end):
            error, closed = self.ending(end)
            self.core.end(closed, error)
            return
        self.lost = end
        self._stop_pumps()

    def hand_over(self, end: SocketEnd) -> None:
        """A planned move to another socket (a rotation): the pumps stop as after a loss worth a re-join, and what
        they took and did not write is carried; ``end`` is what the loop returns."""
        if self.lost is None:
            self.lost = end
            self._stop_pumps()

    def write_failed(self, exc: ConnectionLost) -> None:
        end = SocketEnd(clean=False, detail=str(exc))
        if self.carry is None:
            self.lose(end)
            return
        if self.suspect is None:
            self.suspect = end
        self._stop_pumps()

    def _stop_pumps(self) -> None:
        self.core.inputs.wake()  # a writer waiting for an input sees ``stopping`` and takes nothing
        if self.scope is not None:
            self.scope.deadline = min(self.scope.deadline, trio.current_time() + WRITE_GRACE)

    def stopped(self) -> bool:
        """For :meth:`Inputs.next_input`: the writer takes nothing more (``_stop_pumps`` wakes it to ask).
        :attr:`stopping`, asked before every take."""
        return self.lost is not None or self.suspect is not None

    async def write(self, payload: Payload, rest: Sequence[Payload] = ()) -> bool:
        """Write one payload; ``rest`` is what was to follow it. False when the socket is gone: the conversation
        ended, or (a call's sideband) ``payload`` — unless part of it may be on the wire — and ``rest`` are
        carried to the next socket."""
        core = self.core
        try:
            await self.sock.send(encode(core.brain.stamp(payload)))
        except trio.Cancelled:
            self._unwritten(payload, rest, partial=True)
            raise
        except ConnectionLost as exc:
            self.write_failed(exc)
            if exc.partial and self._replays(payload):
                assert self.carry is not None
                self.carry.control.extend(rest)
            else:
                self._unwritten(payload, rest, partial=exc.partial)
            return False
        core.brain.wrote(payload)
        if core.follow is not None:
            core.follow.sent(payload)
        return True

    def _replays(self, payload: Payload) -> bool:
        """An item cut mid-write when the next socket is a new session (:attr:`renews`): whether or not the old
        session got it, that session is gone, so the item is recorded as written — the history's replay gives it
        to the new session, once (an echo that came before the loss is the same history entry). True if so."""
        follow = self.core.follow
        if not self.renews or follow is None or payload.get("type") != "conversation.item.create":
            return False
        self.core.brain.wrote(payload)
        follow.sent(payload)
        log.info("realtime websocket lost during a write; the item goes to the next session in the replay")
        return True

    def _unwritten(self, payload: Payload, rest: Sequence[Payload], *, partial: bool) -> None:
        stats = self.core.stats
        if self.carry is None or not self.stopping:  # the conversation is ending: counted, never sent
            stats.inputs_lost += 1 + len(rest)
            return
        if partial and payload.get("type") != "response.create":  # the brain reconciles creates after a re-join
            stats.inputs_interrupted += 1  # the server may or may not have it: never repeated
            log.warning("realtime sideband lost during a write; %s not repeated", payload.get("type"))
        else:
            self.carry.control.append(payload)
        self.carry.control.extend(rest)


async def _pump(link: _Link) -> None:
    """The socket's one writer: the carried inputs first (control, then audio), then whatever the buffers give
    (:meth:`Inputs.next_input`: a control command that may go, else every audio frame waiting, in one
    ``input_audio_buffer.append``; frames too old are dropped there — the overload policy). Writes are in call order
    per kind, and a commit follows its audio (the audio barrier). Returns once the socket is gone or the pumps are
    stopped (nothing taken then)."""
    inputs, carry = link.core.inputs, link.carry
    since = trio.current_time()  # the socket is writable from now: waits before this are not overload
    take = functools.partial(inputs.next_input, since, stopped=link.stopped)
    while True:
        if carry is not None and carry.control:
            payloads = tuple(carry.control)  # taken before a loss: they go first, in order
            carry.control.clear()
            if not await _write_control(link, payloads):
                return
            continue
        if carry is not None and carry.audio:
            frames = list(carry.audio)
            carry.audio.clear()
        else:
            taken = await take()
            if taken is None:
                return
            if not isinstance(taken, list):
                if not await _write_control(link, await decide(link.core, taken)):
                    return
                continue
            frames = taken
        if not await _write_audio(link, frames):
            return


async def _write_control(link: _Link, payloads: Sequence[Payload]) -> bool:
    for index, payload in enumerate(payloads):
        if not await link.write(payload, payloads[index + 1 :]):
            return False
    return True


async def _write_audio(link: _Link, frames: list[bytes]) -> bool:
    """Write ``frames`` in one ``input_audio_buffer.append`` (False when the socket is gone). The counters are per
    frame: a write that fails or is cut counts each of its frames."""
    inputs, stats, carry, sock, brain = link.core.inputs, link.core.stats, link.carry, link.sock, link.core.brain
    try:
        await sock.send(encode(brain.stamp(input_audio_append(b"".join(frames) if len(frames) > 1 else frames[0]))))
    except trio.Cancelled:
        inputs.audio_handled(len(frames))
        if link.stopping and carry is not None:
            stats.inputs_interrupted += len(frames)  # part of it may be on the wire: never repeated
        else:
            stats.inputs_lost += len(frames)  # taken from the buffer, never written
        raise
    except ConnectionLost as exc:
        link.write_failed(exc)
        if carry is None:
            stats.inputs_lost += len(frames)
        elif exc.partial:
            stats.inputs_interrupted += len(frames)
        else:
            carry.audio[:0] = frames  # handled when written on the next socket
            return False
        inputs.audio_handled(len(frames))
        return False
    inputs.audio_handled(len(frames))
    stats.audio_frames_sent += len(frames)
    stats.audio_appends_sent += 1
    if link.core.follow is not None:
        for pcm in frames:
            link.core.follow.audio.wrote(pcm)
    return True


async def _read(link: _Link) -> None:
    """Read and deliver until the socket or the conversation ends. Every message one read brought is handled in one
    wake-up (``receive_nowait``, ``Outlet.offer``): the reader yields to the scheduler once per read, not once per
    event, unless it has to wait for room or write.

    A read that completed just before the owner's scope was cancelled is not delivered: the reader may be resumed
    with it after the ``cancel()`` (trio delivers a cancellation at the next checkpoint), so it checks for one
    before handling what it read — within one wake-up no other task can cancel it. Cancellation: raises
    ``Cancelled``; what was read and not handled is dropped with the conversation."""
    sock, outlet = link.sock, link.core.outlet
    message: str | bytes | SocketEnd | None = None
    while True:
        if message is None:
            message = await sock.receive()
            await trio.lowlevel.checkpoint_if_cancelled()
        if isinstance(message, SocketEnd):
            link.lose(message)
            return
        if not await handle_frame(link, message):
            return
        # Once the end is claimed the work scope is being cancelled: the next receive() is the checkpoint that
        # takes it, instead of draining (and dropping) what the socket already holds.
        message = sock.receive_nowait() if outlet.open else None
