"""``Conversation``: the caller's handle, and the one task that owns the conversation's work.

The task tree (see the engine package docstring for the whole picture)::

    owner's nursery (the open_conversation block's own, or the one given to start_conversation)
    └─ runner: Conversation._run, in the root nursery (its scope is cancelled only as the last resort of an
       │  overrunning teardown)
       ├─ owner watch, started the first time the alarm is set: keeps the alarm (_alarm); cancelled with the
       │  owner's scope, it ends the conversation as close() does
       └─ in the runner's task:
          ├─ work nursery (its scope cancelled by every end, unconditionally) ── jobs: sideband/websocket, media;
          │  one job runs in the runner's own task (the inline one, else the last), the others are tasks of the
          │  work nursery, and so are the tasks a job starts that may outlive its own (a websocket's next session)
          └─ then, shielded and bounded: hang up the call; then Closed is delivered

The work sits in the owner's scope, so the owner's cancellation reaches it at once (at its next checkpoint), exactly
like ``close()`` cancelling the work nursery's scope; every teardown step shields itself and has a bound (the
socket's close handshake, the audio source, the peer, the hang-up), so no cancellation can cut one short or stretch
it.

A job never ends the conversation by returning: it calls ``core.end(closed, error)``, or raises. A
:class:`~rtengine.RealtimeError` raised by a job ends the conversation with one ``Error`` then ``Closed("error")``
and goes no further; any other exception (a bug) does the same for readers, then propagates out of the block.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Final, Literal

import trio

from ..protocol._brain import Brain, CancelResponse, RequestResponse, SendText, SendToolOutput
from ..protocol._errors import CallNotFound, ConfigError, ConversationNotRunning, RealtimeError
from ..protocol._lifecycle import Closed, ConversationStats, Error
from ..protocol._session import SessionConfig
from ..protocol._util import sole_leaf
from ._capacities import Capacities
from ._commands import Commands
from ._core import Core, Job
from ._inputs import Inputs
from ._otel import observe
from ._outlet import EventStream, Outlet
from ._scrub import endpoint_scrubber
from ._timeline import Timeline

if TYPE_CHECKING:
    from ._media import MediaCall
    from ._seams import Endpoint

__all__ = ["Capacities", "Conversation", "Core", "Job"]

log = logging.getLogger("rtengine")

#: Time ``close()`` allows beyond ``close_timeout`` for the rest of the teardown (source, peer, hang-up: each bounded).
_TEARDOWN_MARGIN: Final = 5.0
#: Bound on hanging up a call when its conversation ends.
HANGUP_TIMEOUT: Final = 2.0


class Conversation(Commands):
    """One running conversation. Obtain it from :func:`~rtengine.open_conversation` or ``ConversationManager.start``.

    ``answer_sdp``/``call_id`` are set for WebRTC (``None`` for a websocket); ``active`` is True from ``Started``
    until the end is claimed; ``timeline`` maps phases to seconds since ``started_at``; ``stats`` is a snapshot of
    the counters; ``events`` is the receive channel of events (``Started`` first, ``Closed`` last).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        session: SessionConfig,
        *,
        transport: Literal["websocket", "webrtc", "sip"],
        capacities: Capacities,
        started_at: float | None = None,
    ) -> None:
        self._endpoint = endpoint
        self.transport = transport
        self.answer_sdp: str | None = None
        self.call_id: str | None = None
        #: The media side when rtengine is the WebRTC peer (``media=`` given), else ``None``.
        self.media: MediaCall | None = None
        #: Hang the call up when the conversation ends (WebRTC calls this conversation created).
        self.hangup = False
        self._capacities = capacities
        self._stats = ConversationStats()
        self._outlet = Outlet(capacities.events, self._stats, max_bytes=capacities.events_bytes)
        #: The events, in order: ``Started`` first, ``Closed`` last; the stream ends right after ``Closed``.
        self.events: EventStream = self._outlet.stream
        self._inputs = Inputs(
            text=capacities.text,
            tools=capacities.tools,
            audio=capacities.audio,
            stats=self._stats,
            text_bytes=capacities.text_bytes,
            tool_bytes=capacities.tool_bytes,
            audio_bytes=capacities.audio_bytes,
            max_audio_age=capacities.max_input_audio_age,
        )
        self._timeline = Timeline(trio.current_time() if started_at is None else started_at)
        self.started_at = self._timeline.started_at
        self.timeline = self._timeline.view
        self._timeline.observer = observe(self)  # OpenTelemetry spans and metrics, with the otel extra only
        self._core = Core(
            session,
            self._stats,
            Brain(
                self._stats,
                truncate=transport == "websocket",
                output_format=session.output_format.type if session.output_format is not None else "audio/pcm",
                scrub=endpoint_scrubber(endpoint),
            ),
            self._inputs,
            self._outlet,
            self._timeline,
            self._job_end,
        )
        self._work: trio.CancelScope | None = None  # the work nursery's scope, once the runner entered it
        self._root: trio.CancelScope | None = None  # the root nursery's scope, once the runner entered it
        self._closing: Closed | None = None

    def __repr__(self) -> str:
        call = f" {self.call_id}" if self.call_id else ""
        return f"<Conversation {self.transport}{call} {'active' if self.active else 'ended'}>"

    @property
    def active(self) -> bool:
        """True from ``Started`` until the conversation's end is claimed (closed, failed or replaced)."""
        return self._outlet.open

    @property
    def stats(self) -> ConversationStats:
        """A snapshot of the counters."""
        return replace(self._stats)

    # --- inputs ------------------------------------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        """Queue a user text (``conversation.item.create``; no response is requested).

        Waits while the text buffer is full. Raises :class:`~rtengine.ConversationNotRunning` once the
        conversation has ended, including for a sender that was waiting when it ended.
        Cancellation: either the text is queued or ``Cancelled`` is raised with nothing queued.
        """
        await self._inputs.put(SendText(text))

    def send_audio(self, pcm16: bytes) -> bool:
        """Queue a PCM16 audio frame; never blocks. Returns False (and counts it) when the buffer was full.

        Overload policy: frames waiting together are written as one ``input_audio_buffer.append``; a frame that
        waited longer than ``Capacities.max_input_audio_age`` (0.5 s by default) is dropped and counted
        (``stats.audio_frames_expired``) instead of being sent late; ``stats.input_audio_lag`` shows the wait.
        Raises :class:`~rtengine.ConversationNotRunning` once the conversation has ended.
        """
        return self._inputs.put_audio(pcm16)

    async def send_tool_output(self, call_id: str, output: str, *, respond: bool = True) -> None:
        """Queue a ``function_call_output`` for ``call_id``, followed by a sequenced ``response.create`` unless
        ``respond=False``. Waits while the tool buffer is full; raises :class:`~rtengine.ConversationNotRunning`
        once ended. Cancellation: either queued or ``Cancelled`` with nothing queued.
        """
        await self._inputs.put(SendToolOutput(call_id, output, respond))

    async def request_response(self) -> None:
        """Queue a ``response.create``; it never overlaps an active response (it waits for ``response.done``).

        It goes out after every input queued before it, so ``send_text`` then ``request_response`` answers that
        text. Cancellation: as :meth:`send_tool_output`.
        """
        await self._inputs.put(RequestResponse())

    async def cancel_response(self, response_id: str | None = None) -> None:
        """Queue a ``response.cancel`` (the server answers ``response.done`` with status ``cancelled``, or the benign
        ``response_cancel_not_active`` error). Cancellation: as :meth:`send_tool_output`."""
        await self._inputs.put(CancelResponse(response_id))

    # --- the end -----------------------------------------------------------------------------------------------

    async def refer(self, target_uri: str) -> None:
        """Transfer this SIP call (``transport == "sip"``) to ``target_uri`` (``tel:…``/``sip:…``): the API sends the
        caller a SIP REFER, and the call ends once the transfer is taken. Raises :class:`~rtengine.ConfigError` on
        another transport or a bad URI, :class:`~rtengine.ConversationNotRunning` once ended, and the call errors
        (:class:`~rtengine.CallNotFound`, :class:`~rtengine.CallRejected`, :class:`~rtengine.ConnectFailed`)."""
        if self.transport != "sip" or self.call_id is None:
            raise ConfigError("refer() transfers SIP calls only (open_conversation(..., accept_call_id=...))")
        if not self.active:
            raise ConversationNotRunning()
        await self._endpoint.calls.refer(self.call_id, target_uri, self._endpoint.auth_headers())

    async def close(self) -> None:
        """End the conversation: exactly one ``Closed("requested")``, unless it had already ended. Idempotent.

        Returns only once ``Closed`` is in ``events`` (also for a second, concurrent caller): the call is hung up
        by then, and the sockets are closed — or, with a ``RealtimeClient`` entered as ``async with``, a close
        handshake the server has not answered within 50 ms goes on in the client's nursery (bounded by
        ``close_timeout``; leaving the client waits for it). Shielded and bounded (``close_timeout`` plus a
        margin), so cancellation cannot interrupt it half way.
        """
        with trio.CancelScope(shield=True):
            self._end(Closed("requested"), None)
            await self._wait_finished()

    async def _replace(self) -> None:
        """End without any ``Closed`` (a restart replaced this conversation); ``events`` just ends."""
        with trio.CancelScope(shield=True):
            self._end(None, None)
            await self._wait_finished()

    @trio.lowlevel.enable_ki_protection  # a Ctrl-C here is deferred: the end path always delivers Closed
    def _end(self, closed: Closed | None, error: Error | None) -> bool:
        """Claim the end (True for exactly one caller). Synchronous: nothing runs between the claim and its
        effects — ordinary events refused, the ``Error`` delivered, inputs closed, the work scope cancelled."""
        if not self._outlet.claim():
            return False
        self._closing = closed
        if error is not None:
            log.warning("realtime conversation error: %s", error.message)
            self._outlet.put_final(error)
        self._inputs.close()
        if self._work is not None:  # else the runner, entering the work nursery, finds the end claimed
            self._work.cancel()
        return True

    @trio.lowlevel.enable_ki_protection  # a Ctrl-C here is deferred: the end path always delivers Closed
    def _job_end(self, closed: Closed | None, error: Error | None) -> bool:
        """``core.end``: a job ends the conversation. A job whose task is cancelled while the end is unclaimed was
        cancelled by its owner (the work scope is cancelled only by a claim): that is the owner's end, as ``close()``
        — a failure the job met after the owner's ``cancel()`` (resumed with it at the same checkpoint) is not an
        ``Error``."""
        if trio.current_effective_deadline() == -math.inf:
            return self._end(Closed("requested"), None)
        return self._end(closed, error)

    async def _wait_finished(self) -> None:
        with trio.move_on_after(self._endpoint.close_timeout + _TEARDOWN_MARGIN):
            await self._outlet.wait_finished()
        if not self._outlet.finished:  # a teardown step overran its own bound: cancel everything
            log.warning("realtime conversation teardown overran; cancelling it call_id=%s", self.call_id)
            if self._root is not None:
                self._root.cancel()
            with trio.move_on_after(_TEARDOWN_MARGIN):
                await self._outlet.wait_finished()

    # --- the runner --------------------------------------------------------------------------------------------

    @trio.lowlevel.enable_ki_protection  # a Ctrl-C here is deferred: the end path always delivers Closed
    async def _run(
        self,
        jobs: Sequence[Job],
        inline: Job | None = None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """The conversation's one task in its owner's nursery (see the module docstring).

        With ``inline``, ``task_status.started()`` is called once that job started; an error it raises before
        then propagates (no conversation started). Cancellation of the owner: ends the conversation like
        :meth:`close`."""
        # One job runs in this task (the inline one, else the last): the others are tasks of their own.
        own, others = (inline, jobs) if inline is not None else (jobs[-1], jobs[:-1])
        status = _Status(task_status)
        try:
            async with trio.open_nursery() as root:
                self._root = root.cancel_scope
                self._core.alarm.keep(functools.partial(root.start_soon, self._watch_owner))
                try:
                    async with trio.open_nursery() as work:
                        self._work, self._core.nursery = work.cancel_scope, work
                        if not self._outlet.open:  # ended before it ran (no checkpoint since the claim was made)
                            work.cancel_scope.cancel()
                        for job in others:
                            work.start_soon(self._guard, job, False)
                        await self._guard(own, inline is not None, task_status=status)
                    self._end(Closed("error"), Error("the conversation's tasks ended on their own", "internal_error"))
                finally:
                    try:
                        # Unclaimed here: a failed inline start (no conversation, no events), or the owner's
                        # cancellation unwinding the work before the owner watch ran (the same end as close()).
                        self._end(None if inline is not None and not status.done else Closed("requested"), None)
                        await self._hang_up()
                    finally:
                        self._core.alarm.keep(None)
                        root.cancel_scope.cancel()  # the owner watch, if started: its job is done
        except BaseExceptionGroup as group:
            leaf = sole_leaf(group)
            if inline is not None and not status.done and leaf is not None:
                raise leaf from leaf.__cause__  # the start's own error, as the starter expects it
            raise
        finally:
            self._inputs.discard()
            if self._core.carry is not None:
                self._core.carry.discard(self._stats)
            if self._core.brain.owes_response:  # a deferred request_response the end overtook
                self._stats.tool_items_discarded += 1
            self._timeline.mark("closed")
            reason = self._closing.reason if self._closing is not None else "replaced"
            log.info("realtime conversation closed reason=%s total_elapsed_ms=%.0f", reason, self._timeline.total_ms())
            self._outlet.finish(self._closing)

    @trio.lowlevel.enable_ki_protection  # a Ctrl-C here is deferred: the end path always delivers Closed
    async def _abandon(self) -> None:
        """Never started (its owner's nursery was closed): end silently, hang the call up. Shielded, bounded."""
        self._end(None, None)
        self._timeline.never_ran(failed=True)
        with trio.CancelScope(shield=True):
            await self._hang_up()
            if self.media is not None:
                await self.media.peer.aclose()
        self._inputs.discard()
        self._outlet.finish(None)

    async def _watch_owner(self) -> None:
        """Keeps the conversation's alarm (:mod:`~rtengine.engine._alarm`) until cancelled."""
        try:
            await self._core.alarm.run()
        finally:
            self._end(Closed("requested"), None)  # a no-op unless the owner's scope was cancelled

    async def _guard(
        self, job: Job, inline: bool, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        status = task_status if isinstance(task_status, _Status) else _Status(task_status)
        try:
            await job(self._core, status)
        except RealtimeError as exc:
            if inline and not status.done:
                self._timeline.mark("start_failed")  # the runner's end marks ``closed``
                raise
            self._job_end(Closed("error"), Error(str(exc), _code(exc)))
        except Exception as exc:
            if inline and not status.done:
                self._timeline.mark("start_failed")
            else:
                bug = sole_leaf(exc) if isinstance(exc, BaseExceptionGroup) else exc
                self._end(Closed("error"), Error(f"internal error: {bug or exc!r}", "internal_error"))
            raise

    async def _hang_up(self) -> None:
        """Hang up the call this conversation created (unless ``hangup=False``): shielded, bounded, never raised."""
        if not self.hangup or self.call_id is None:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(HANGUP_TIMEOUT) as scope:
            try:
                await self._endpoint.calls.hangup(self.call_id, self._endpoint.auth_headers())
            except CallNotFound:
                log.info("realtime call had already ended call_id=%s", self.call_id)  # over either way
            except RealtimeError as exc:
                self._stats.hangup_failures += 1
                log.warning("hanging up realtime call failed call_id=%s: %s", self.call_id, exc)
                return
            self._stats.hangups += 1
            log.info("realtime call hung up call_id=%s", self.call_id)
        if scope.cancelled_caught:
            self._stats.hangup_failures += 1
            log.warning("hanging up realtime call timed out call_id=%s", self.call_id)


class _Status:
    """A task status that remembers whether ``started()`` was called."""

    __slots__ = ("_inner", "done")

    def __init__(self, inner: trio.TaskStatus[None]) -> None:
        self._inner = inner
        self.done = False

    def started(self, value: None = None) -> None:
        self.done = True
        self._inner.started(value)


def _code(exc: RealtimeError) -> str:
    """``InvalidSdp`` → ``invalid_sdp``: the ``Error`` code of an exception that ended a conversation."""
    name = type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
