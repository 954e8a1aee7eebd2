"""The conversation engine: one generation of a realtime conversation, as trio tasks, channels and cancel scopes.

Theory of operation::

    caller ── async with open_conversation(client, session, offer_sdp=…) as conv
    ├─ inline: POST /realtime/calls ─► conv.answer_sdp, conv.call_id           (websocket: connect + session.update)
    └─ conversation nursery
       └─ generation scope (cancelled by close() before the join completed, by a replace, …)
          └─ sideband task: join with retry/backoff ─► session.update ─► socket (reader alive)
                └─ loop scope (cancelled first by close(), a fatal error, a transport end)
                      ├─ reader: frames ─► parse ─► side effects ─► conv.events (awaited: backpressure)
                      └─ pumps: text (64, awaited) · tools/requests (64, awaited) · audio (256, drop + count)

Invariants, and what makes each one hold:

* **Answer first.** In ``background`` mode nothing of the join is on the path to ``answer_sdp``.
* **Inputs queue from the first moment.** The channels exist before ``open_conversation`` returns; the pumps
  start only after ``session.update`` was written, so it is frame #0 and each channel goes out FIFO.
* **One end, decided atomically.** :class:`~rtengine._state.EndClaim` is claimed with no checkpoint in between by
  whichever path ends the conversation first: the caller's :meth:`Conversation.close` (→ ``Closed("requested")``)
  or the conversation itself (→ one ``Error`` then ``Closed("error")``, or ``Closed("transport_closed")``). The
  losing path does nothing. The failing work runs inside the generation's cancel scopes, so after ``close()``
  it is cancelled before it can even reach the claim.
* **The end is never held up.** ``Error`` and ``Closed`` are pushed synchronously; if the caller stopped reading,
  the oldest undelivered events are dropped (counted in ``stats.events_dropped``) through a private clone of the
  receive channel. The events channel is closed right after ``Closed``: nothing follows it.
* **Bounded teardown.** A joined socket is closed after the loop scope ends and before its reader is
  cancelled, so the close handshake completes promptly; ``close_timeout`` bounds it (shielded). A pending join
  is cancelled outright; its TCP stream is closed by the websocket adapter.
* **Nothing outlives the nursery.** Every task lives in the conversation's nursery (or the manager's).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Final, Literal

import trio

from .._client import RealtimeClient
from ..adapters._http import create_call
from ..adapters._ws import RealtimeSocket, open_socket
from ..protocol import _events as ev
from ..protocol._backoff import retry_delays
from ..protocol._calls import check_sdp, multipart_body, raw_sdp_body
from ..protocol._errors import ConfigError, ConnectionLost, ConversationNotRunning, ErrorClass, TransportError
from ..protocol._lifecycle import Closed, ConversationStats, Error, SocketEnd, Started
from ..protocol._parse import parse_server_event
from ..protocol._payloads import (
    encode,
    function_call_output,
    input_audio_append,
    item_truncate,
    response_cancel,
    response_create,
    session_update,
    user_text,
)
from ..protocol._session import SessionConfig
from ..protocol._state import EndClaim, ResponseSequencer, ToolCallDedupe, TruncationTracker, audio_duration_ms
from ..protocol._urls import realtime_ws_url, sideband_url
from ..protocol._util import collapse_single_group
from ._media import MediaCall

if TYPE_CHECKING:
    from ..adapters._peer import PcmTrack, Peer
    from ..webrtc import Media

__all__ = ["Capacities", "Conversation", "ConversationEvent", "open_conversation", "start_conversation"]

log = logging.getLogger("rtengine")

ConversationEvent = Started | Error | Closed | ev.ServerEvent
SidebandMode = Literal["background", "inline"]
#: Extra time ``close()`` waits for the tasks beyond ``close_timeout`` (the socket close handshake).
_TEARDOWN_MARGIN: Final = 1.0


@dataclass(frozen=True, slots=True)
class Capacities:
    """Buffer sizes: text and tool outputs are awaited when full, audio is dropped (and counted)."""

    text: int = 64
    tools: int = 64
    audio: int = 256
    events: int = 256
    audio_out: int = 500

    def __post_init__(self) -> None:
        if min(self.text, self.tools, self.audio, self.events, self.audio_out) < 1:
            raise ConfigError("every channel capacity must be >= 1")


@dataclass(frozen=True, slots=True)
class _ToolOutput:
    call_id: str
    output: str
    respond: bool
    after_texts: int  # its response.create waits until this many texts were written


@dataclass(frozen=True, slots=True)
class _RequestResponse:
    after_texts: int  # texts queued before the request: the response must see them


@dataclass(frozen=True, slots=True)
class _CancelResponse:
    response_id: str | None


_ToolItem = _ToolOutput | _RequestResponse | _CancelResponse
_DEFAULT_CAPACITIES: Final = Capacities()


class Conversation:
    """One running conversation. Obtain it from :func:`open_conversation` or ``ConversationManager.start``.

    ``answer_sdp``/``call_id`` are set for WebRTC (``None`` for a websocket); ``active`` is True from ``Started``
    until the conversation ends; ``timeline`` maps phases to seconds since ``started_at`` (``trio.current_time()``
    when the conversation began): ``answer`` or ``connected``, ``sideband_joined``, ``session_update_sent``,
    ``session_updated``, ``first_response_done``, ``closed``; ``stats`` is a snapshot of
    the counters; ``events`` is the trio receive channel of events (``Started`` first, ``Closed`` last).
    """

    def __init__(
        self,
        client: RealtimeClient,
        session: SessionConfig,
        *,
        transport: Literal["websocket", "webrtc"],
        capacities: Capacities,
        started_at: float | None = None,
    ) -> None:
        self._client = client
        self.session = session
        self.transport = transport
        self._capacities = capacities
        self.answer_sdp: str | None = None
        self.call_id: str | None = None
        self._claim = EndClaim()
        self._gen_scope = trio.CancelScope()
        self._loop_scope: trio.CancelScope | None = None
        self._done = trio.Event()
        self._running = 0  # generation tasks still running; _done is set when the last one finishes
        self._media_scope = trio.CancelScope()
        #: The media side when rtengine is the WebRTC peer (``media=`` given), else ``None``.
        self.media: MediaCall | None = None
        self._counts = ConversationStats()
        self._sequencer = ResponseSequencer()
        self._tracker = TruncationTracker()
        self._dedupe = ToolCallDedupe()
        # (plain calls, not ``open_memory_channel[T]``: subscripting builds a generic alias on every call)
        self._text_tx: trio.MemorySendChannel[str]
        self._text_rx: trio.MemoryReceiveChannel[str]
        self._tool_tx: trio.MemorySendChannel[_ToolItem]
        self._tool_rx: trio.MemoryReceiveChannel[_ToolItem]
        self._audio_tx: trio.MemorySendChannel[bytes]
        self._audio_rx: trio.MemoryReceiveChannel[bytes]
        self._events_tx: trio.MemorySendChannel[ConversationEvent]
        #: The events, in order: ``Started`` first, ``Closed`` last; the channel ends right after ``Closed``.
        self.events: trio.MemoryReceiveChannel[ConversationEvent]
        self._text_tx, self._text_rx = trio.open_memory_channel(capacities.text)
        # Texts and requests travel on different channels; a response.create waits for the texts queued before it.
        self._texts_queued = 0
        self._texts_written = 0
        self._text_progress = trio.Event()
        self._tool_tx, self._tool_rx = trio.open_memory_channel(capacities.tools)
        self._audio_tx, self._audio_rx = trio.open_memory_channel(capacities.audio)
        self._events_tx, self.events = trio.open_memory_channel(capacities.events)
        self._events_spill = self.events.clone()
        self._start = self.started_at = trio.current_time() if started_at is None else started_at
        self._last_mark = self._start
        self._timeline: dict[str, float] = {}
        self.timeline: Mapping[str, float] = MappingProxyType(self._timeline)

    def __repr__(self) -> str:
        state = "active" if self.active else "ended"
        call = f" {self.call_id}" if self.call_id else ""
        return f"<Conversation {self.transport}{call} {state}>"

    # --- public state ----------------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """True from ``Started`` until the conversation ends (closed, failed or replaced)."""
        return self._claim.active

    @property
    def stats(self) -> ConversationStats:
        """A snapshot of the counters."""
        return replace(self._counts)

    # --- sending ---------------------------------------------------------------------------------------------

    def _check_running(self) -> None:
        if not self._claim.active:
            raise ConversationNotRunning

    async def send_text(self, text: str) -> None:
        """Queue a user text (``conversation.item.create``; no response is requested).

        Waits while the text buffer is full. Raises :class:`~rtengine.ConversationNotRunning` once the
        conversation has ended, including for a sender that was waiting when it ended.
        Cancellation: either the text is queued or ``Cancelled`` is raised with nothing queued.
        """
        self._check_running()
        try:
            await self._text_tx.send(text)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ConversationNotRunning from None
        self._texts_queued += 1

    def send_audio(self, pcm16: bytes) -> bool:
        """Queue a PCM16 audio frame; never blocks. Returns False (and counts it) when the buffer was full.

        Raises :class:`~rtengine.ConversationNotRunning` once the conversation has ended.
        """
        self._check_running()
        try:
            self._audio_tx.send_nowait(pcm16)
        except trio.WouldBlock:
            self._counts.audio_frames_dropped += 1
            log.warning("dropping input audio frame due to full queue (dropped=%d)", self._counts.audio_frames_dropped)
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ConversationNotRunning from None
        self._counts.audio_frames_queued += 1
        return True

    async def _send_tool_item(self, item: _ToolItem) -> None:
        self._check_running()
        try:
            await self._tool_tx.send(item)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ConversationNotRunning from None

    async def send_tool_output(self, call_id: str, output: str, *, respond: bool = True) -> None:
        """Queue a ``function_call_output`` for ``call_id`` (the handoff output), followed by a sequenced
        ``response.create`` unless ``respond=False``.

        Waits while the tool buffer is full; raises :class:`~rtengine.ConversationNotRunning` once ended.
        Cancellation: either the output is queued or ``Cancelled`` is raised with nothing queued.
        """
        await self._send_tool_item(_ToolOutput(call_id, output, respond, self._texts_queued))

    async def request_response(self) -> None:
        """Queue a ``response.create``; it never overlaps an active response (it waits for ``response.done``).

        It goes out after every text and tool output queued before it, so ``send_text`` then ``request_response``
        answers that text. Cancellation: as :meth:`send_tool_output`.
        """
        await self._send_tool_item(_RequestResponse(self._texts_queued))

    async def cancel_response(self, response_id: str | None = None) -> None:
        """Queue a ``response.cancel`` (the server answers ``response.done`` with status ``cancelled``, or the benign
        ``response_cancel_not_active`` error). Cancellation: as :meth:`send_tool_output`."""
        await self._send_tool_item(_CancelResponse(response_id))

    # --- ending ----------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """End the conversation: exactly one ``Closed("requested")``, unless it had already ended. Idempotent.

        Returns after the sockets are closed and ``Closed`` is in ``events``. Shielded and bounded by the
        client's ``close_timeout`` (plus a margin), so cancellation cannot interrupt it half way.
        """
        if self._claim.claim():
            self._stop_tasks()
            self._close_inputs()
            await self._wait_done()
            self._mark("closed")
            log.info("realtime conversation closed reason=requested total_elapsed_ms=%.0f", self._total_ms())
            self._push_now(Closed("requested"))
            self._events_tx.close()
        else:
            await self._wait_done()

    async def _replace(self) -> None:
        """End without any ``Closed`` (a restart replaced this conversation); ``events`` just ends."""
        if self._claim.claim():
            self._stop_tasks()
            self._close_inputs()
            await self._wait_done()
            self._mark("replaced")
            self._events_tx.close()
        else:
            await self._wait_done()

    def _stop_tasks(self) -> None:
        # A joined socket: stop the loop only, so the close handshake runs with the reader alive.
        # A join still pending: cancel it outright.
        self._media_scope.cancel()
        if self._loop_scope is not None:
            self._loop_scope.cancel()
        else:
            self._gen_scope.cancel()

    def _close_inputs(self) -> None:
        # Wakes any sender blocked on a full buffer with ConversationNotRunning.
        self._text_tx.close()
        self._tool_tx.close()
        self._audio_tx.close()

    async def _wait_done(self) -> None:
        with trio.CancelScope(shield=True):
            with trio.move_on_after(self._client.close_timeout + _TEARDOWN_MARGIN):
                await self._done.wait()
            self._gen_scope.cancel()
            self._media_scope.cancel()

    def _end_inside(self, *, closed: Closed, error: Error | None = None) -> None:
        """The conversation ended on its own. Synchronous: no checkpoint between the claim and the delivery."""
        if not self._claim.claim():
            return
        self._stop_tasks()
        self._close_inputs()
        self._mark("closed")
        if error is not None:
            log.warning("realtime conversation error: %s", error.message)
            self._push_now(error)
        log.info("realtime conversation closed reason=%s total_elapsed_ms=%.0f", closed.reason, self._total_ms())
        self._push_now(closed)
        self._events_tx.close()

    def _push_now(self, event: ConversationEvent) -> None:
        """Deliver without waiting: drop the oldest undelivered events while the channel is full."""
        while True:
            try:
                self._events_tx.send_nowait(event)
            except trio.WouldBlock:
                try:
                    self._events_spill.receive_nowait()
                except trio.WouldBlock:  # pragma: no cover - a full channel always has an item
                    return
                self._counts.events_dropped += 1
                continue
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return
            self._counts.events_forwarded += 1
            return

    async def _forward(self, event: ConversationEvent) -> None:
        await self._events_tx.send(event)
        self._counts.events_forwarded += 1

    # --- timeline and logs -----------------------------------------------------------------------------------

    def _total_ms(self) -> float:
        return (trio.current_time() - self._start) * 1000

    def _mark_at(self, phase: str, when: float | None) -> None:
        """Record ``phase`` at trio time ``when`` (first time only; nothing when ``when`` is None)."""
        if when is not None and phase not in self._timeline:
            self._timeline[phase] = when - self._start
            log.info(
                "realtime phase %s call_id=%s total_elapsed_ms=%.0f", phase, self.call_id, self._timeline[phase] * 1000
            )

    def _mark(self, phase: str) -> float:
        """Record ``phase`` (first time only); returns ms since the previous phase."""
        now = trio.current_time()
        elapsed = (now - self._last_mark) * 1000
        self._last_mark = now
        if phase not in self._timeline:
            self._timeline[phase] = now - self._start
            log.debug(
                "realtime phase %s call_id=%s total_elapsed_ms=%.0f", phase, self.call_id, (now - self._start) * 1000
            )
        return elapsed

    # --- the generation tasks --------------------------------------------------------------------------------

    def _open(self, url: str, headers: Mapping[str, str]) -> AbstractAsyncContextManager[RealtimeSocket]:
        client = self._client
        return open_socket(
            url,
            headers,
            connect_timeout=client.connect_timeout,
            close_timeout=client.close_timeout,
            ssl_context=client.ssl_context if url.startswith("wss:") else None,
            max_message_size=client.max_message_size,
            open_stream=client.open_stream,
        )

    async def _run_websocket(
        self, url: str, headers: Mapping[str, str], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect and send ``session.update`` (inline: failures raise from ``nursery.start``), then run."""
        try:
            with self._gen_scope:
                async with self._open(url, headers) as sock:
                    self._loop_scope = scope = trio.CancelScope()
                    elapsed = self._mark("connected")
                    with scope:
                        await sock.send(encode(session_update(self.session)))
                        self._mark("session_update_sent")
                        log.info(
                            "connected realtime websocket elapsed_ms=%.0f total_elapsed_ms=%.0f",
                            elapsed,
                            self._total_ms(),
                        )
                        self._push_now(Started("websocket"))
                        log.info("realtime conversation started transport=websocket")
                        task_status.started()
                        await self._loop(sock)
        finally:
            self._task_finished()

    def _task_started(self) -> None:
        self._running += 1

    def _task_finished(self) -> None:
        self._running -= 1
        if self._running == 0:
            self._done.set()

    async def _run_sideband(
        self,
        headers: Mapping[str, str],
        inline: bool,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Join the sideband, then run the input loop on it.

        A join attempt is the handshake plus ``session.update``; every failure of an attempt is retried with
        backoff (realtime-protocol §3.4), the whole join inside the generation scope. Once the handshake has
        completed, ``close()`` stops only the loop scope, so the socket still closes with a handshake. After the
        last attempt: inline, the error raises from ``nursery.start``; background, it becomes one ``Error`` and
        ``Closed("error")`` — only if the conversation is still active (the claim decides).
        """
        client = self._client
        try:
            with self._gen_scope:
                if not self._claim.active:
                    return
                assert self.call_id is not None
                url = sideband_url(client.realtime_base_url, self.call_id)  # off the answer path
                delays = retry_delays(client.sideband_retries, client.backoff_base, client.rand)
                log.info("connecting realtime sideband websocket call_id=%s", self.call_id)
                for attempt in range(len(delays) + 1):
                    self._counts.join_attempts += 1
                    try:
                        await self._sideband_attempt(url, headers, inline, task_status)
                        return
                    except TransportError as exc:
                        self._loop_scope = None
                        if attempt == len(delays):
                            if inline:
                                raise
                            log.warning("failed to connect realtime sideband call_id=%s: %s", self.call_id, exc)
                            message = f"failed to connect realtime sideband: {exc}"
                            self._end_inside(error=Error(message), closed=Closed("error"))
                            return
                        log.warning(
                            "realtime sideband join attempt %d failed call_id=%s; retrying in %.0f ms: %s",
                            attempt + 1,
                            self.call_id,
                            delays[attempt] * 1000,
                            exc,
                        )
                        await trio.sleep(delays[attempt])
        finally:
            self._task_finished()

    async def _sideband_attempt(
        self, url: str, headers: Mapping[str, str], inline: bool, task_status: trio.TaskStatus[None]
    ) -> None:
        """One join attempt, then (on success) the whole conversation. Raises ``TransportError`` only for a
        failed attempt: after ``session.update`` went out, the loop reports its own ends."""
        async with self._open(url, headers) as sock:
            self._loop_scope = scope = trio.CancelScope()  # joined: from here close() stops only this scope
            self._mark("sideband_joined")
            with scope:
                await sock.send(encode(session_update(self.session)))
                self._mark("session_update_sent")
                log.info(
                    "connected realtime sideband websocket call_id=%s elapsed_ms=%.0f total_elapsed_ms=%.0f",
                    self.call_id,
                    (self._timeline["sideband_joined"] - self._timeline["answer"]) * 1000,
                    self._total_ms(),
                )
                if inline:
                    self._push_now(Started("webrtc", self.call_id))
                    task_status.started()
                await self._loop(sock)

    async def _loop(self, sock: RealtimeSocket) -> None:
        """The input loop: pumps and the reader, until the conversation ends (the loop scope is cancelled)."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump_text, sock)
                nursery.start_soon(self._pump_tools, sock)
                nursery.start_soon(self._pump_audio, sock)
                await self._read(sock)
                nursery.cancel_scope.cancel()
        except* TransportError as group:
            # Writes and reads report their own ends; this is a last line so a transport failure that slips
            # through still ends the conversation with an error instead of being taken for a failed join.
            first = group.exceptions[0]
            self._end_inside(error=Error(f"realtime transport failed: {first}"), closed=Closed("error"))

    async def _run_media(self, media: MediaCall, options: Media) -> None:
        """Apply the answer, reach "connected" within ``connect_timeout``, then feed and drain audio until the
        conversation ends. Failing to connect, or the connection failing later, ends the conversation with one
        ``Error``. The peer connection is closed on the way out, shielded and bounded."""
        peer = media.peer
        media.track.on_first_audio = lambda when: self._mark_at("first_audio_sent", when)
        try:
            with self._media_scope:
                assert self.answer_sdp is not None
                await peer.apply_answer(self.answer_sdp)
                self._mark("answer_applied")
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(peer.receive_audio, self._received_audio)
                    with trio.move_on_after(options.connect_timeout):
                        await peer.connected.wait()
                    if not peer.connected.is_set():
                        message = (
                            f"the WebRTC connection did not reach 'connected' within {options.connect_timeout:g} s "
                            f"(ICE/DTLS never completed; state {peer.connection_state!r}: is there a usable network "
                            "interface, and can the peer reach it?)"
                        )
                        self._end_inside(error=Error(message, "webrtc_connect_timeout"), closed=Closed("error"))
                        return
                    self._mark_at("ice_connected", peer.times.get("ice_connected"))
                    self._mark_at("dtls_connected", peer.times.get("dtls_connected"))
                    log.info("webrtc connected call_id=%s total_elapsed_ms=%.0f", self.call_id, self._total_ms())
                    if options.source is not None:
                        nursery.start_soon(media.feed, options.source)
                    nursery.start_soon(self._watch_channel, media, options.data_channel)
                    await peer.failed.wait()
                    self._end_inside(
                        error=Error(f"the WebRTC connection failed (state {peer.connection_state!r})", "webrtc_failed"),
                        closed=Closed("error"),
                    )
        finally:
            media.end()
            await peer.aclose()
            self._task_finished()

    async def _watch_channel(self, media: MediaCall, keep: bool) -> None:
        """Mark the data channel open; unless the app keeps its messages, read them off and count them (they
        repeat the sideband's events, and unread they would pile up for the whole call)."""
        peer = media.peer
        await peer.channel_open.wait()
        self._mark_at("data_channel_open", peer.times.get("data_channel_open"))
        if not keep:
            async for _ in peer.messages:
                media.data_messages += 1

    def _received_audio(self, pcm16: bytes) -> None:
        if "first_audio_received" not in self._timeline:
            self._mark("first_audio_received")
        assert self.media is not None
        self.media.deliver(pcm16)

    # --- the input loop --------------------------------------------------------------------------------------

    async def _write(self, sock: RealtimeSocket, event: Mapping[str, object]) -> bool:
        """Write one event; False when the socket has ended (the reader reports the end, the input is counted)."""
        try:
            await sock.send(encode(event))
        except ConnectionLost as exc:
            self._counts.inputs_lost += 1
            log.warning("realtime input not sent, the socket has ended: %s", exc)
            return False
        return True

    async def _pump_text(self, sock: RealtimeSocket) -> None:
        async for text in self._text_rx:
            if not await self._write(sock, user_text(text)):
                return
            self._counts.texts_sent += 1
            self._texts_written += 1
            progress, self._text_progress = self._text_progress, trio.Event()
            progress.set()

    async def _texts_written_up_to(self, count: int) -> None:
        while self._texts_written < count:
            await self._text_progress.wait()

    async def _pump_audio(self, sock: RealtimeSocket) -> None:
        async for pcm in self._audio_rx:
            if not await self._write(sock, input_audio_append(pcm)):
                return
            self._counts.audio_frames_sent += 1

    async def _pump_tools(self, sock: RealtimeSocket) -> None:
        async for item in self._tool_rx:
            match item:
                case _ToolOutput(call_id=call_id, output=output, respond=respond, after_texts=after):
                    if not await self._write(sock, function_call_output(call_id, output)):
                        return
                    self._counts.tool_outputs_sent += 1
                    if respond:
                        await self._texts_written_up_to(after)
                        if not await self._request(sock):
                            return
                case _RequestResponse(after_texts=after):
                    await self._texts_written_up_to(after)
                    if not await self._request(sock):
                        return
                case _CancelResponse(response_id=response_id):
                    if not await self._write(sock, response_cancel(response_id)):
                        return

    async def _request(self, sock: RealtimeSocket) -> bool:
        if self._sequencer.request():
            return await self._send_create(sock)
        self._counts.responses_deferred += 1
        return True

    async def _send_create(self, sock: RealtimeSocket) -> bool:
        if not await self._write(sock, response_create()):
            return False
        self._counts.responses_requested += 1
        return True

    async def _read(self, sock: RealtimeSocket) -> None:
        """Read, type and forward server events until the socket ends or the conversation ends."""
        while True:
            frame = await sock.receive()
            if isinstance(frame, SocketEnd):
                # An end without a close frame is reported as 1006, as the websocket RFC names it.
                code = 1006 if frame.code is None and not frame.clean else frame.code
                if code == 1009:
                    message = "the server sent a frame larger than max_message_size (closed with 1009)"
                    self._end_inside(error=Error(message), closed=Closed("error", 1009, frame.reason))
                else:
                    self._end_inside(closed=Closed("transport_closed", code, frame.reason))
                return
            self._counts.frames_received += 1
            await self._handle(sock, parse_server_event(frame))

    async def _handle(self, sock: RealtimeSocket, event: ev.ServerEvent | ev.ProtocolWarning) -> None:
        match event:
            case ev.ProtocolWarning(detail=detail):
                self._counts.protocol_warnings += 1
                log.warning("ignoring realtime frame: %s", detail)
                return
            case ev.ServerErrorEvent(error_class=ErrorClass.DEFERRAL):
                self._sequencer.on_conflict()
                self._counts.responses_deferred += 1
                log.info("response.create deferred: %s", event.message)
                return
            case ev.ServerErrorEvent(error_class=ErrorClass.BENIGN):
                log.info("benign realtime server error: %s", event.message)
                await self._forward(Error(event.message, event.code, fatal=False))
                return
            case ev.ServerErrorEvent():
                self._end_inside(error=Error(event.message, event.code, fatal=True), closed=Closed("error"))
                return
            case ev.UnknownEvent():
                self._counts.unknown_events += 1
            case ev.AudioOut():
                duration = audio_duration_ms(
                    event.audio,
                    sample_rate=event.sample_rate,
                    num_channels=event.num_channels,
                    samples_per_channel=event.samples_per_channel,
                )
                self._tracker.on_audio(event.item_id, duration)
            case ev.SpeechStarted():
                cut = self._tracker.take()
                if cut is not None:
                    try:
                        await sock.send(encode(item_truncate(cut[0], cut[1])))
                        self._counts.truncations_sent += 1
                    except ConnectionLost as exc:
                        log.warning("barge-in truncate not sent: %s", exc)
            case ev.ResponseCreated(response_id=response_id):
                self._sequencer.on_created(response_id)
            case ev.ResponseDone(response_id=response_id) | ev.ResponseCancelled(response_id=response_id):
                if "first_response_done" not in self._timeline:
                    self._mark("first_response_done")
                self._tracker.clear()
                if self._sequencer.on_done(response_id):
                    await self._send_create(sock)
            case ev.ToolCall(call_id=call_id):
                if not self._dedupe.first(call_id):
                    self._counts.duplicate_tool_calls += 1
                    return
                self._tracker.clear()
            case ev.SessionUpdated(session_id=session_id):
                if "session_updated" not in self._timeline:
                    elapsed = self._mark("session_updated")
                    log.info(
                        "realtime session updated realtime_session_id=%s elapsed_ms=%.0f total_elapsed_ms=%.0f",
                        session_id,
                        elapsed,
                        self._total_ms(),
                    )
            case _:
                pass
        await self._forward(event)


def _check_arguments(sideband: str, offer_sdp: str | None, media: Media | None) -> None:
    if sideband not in ("background", "inline"):
        raise ConfigError(f"sideband must be 'background' or 'inline', got {sideband!r}")
    if media is not None and offer_sdp is not None:
        raise ConfigError("pass either offer_sdp (someone else is the media peer) or media (rtengine is), not both")


@dataclass(slots=True)
class _CreatedCall:
    """A WebRTC call that exists (``conv.answer_sdp``/``call_id`` set) and has no task yet."""

    conv: Conversation
    peer: Peer | None = None
    track: PcmTrack | None = None


async def _create_call(
    client: RealtimeClient,
    session: SessionConfig,
    headers: Mapping[str, str],
    offer_sdp: str | None,
    *,
    raw_sdp: bool,
    capacities: Capacities,
    media: Media | None,
) -> _CreatedCall:
    """The inline step of a WebRTC conversation: the offer (made here when ``media`` is given), then the POST.

    Nothing but the request body is built before the POST: the :class:`Conversation` is built while the request
    is in flight (``on_sent``), so its setup is off the time to answer. Raises the call-creation errors; the
    peer made here is closed on any failure. Cancellation: the request is abandoned, the peer closed.
    """
    started_at = trio.current_time()
    log.info("starting realtime conversation; creating realtime call transport=webrtc")
    built: list[Conversation] = []

    def build() -> None:
        built.append(Conversation(client, session, transport="webrtc", capacities=capacities, started_at=started_at))

    peer: Peer | None = None
    track: PcmTrack | None = None
    offer_marks: list[tuple[str, float | None]] = []
    if media is not None:
        spare = media.pool.take() if media.pool is not None else None
        if spare is not None:
            peer, track = spare  # pre-gathered: the offer costs nothing
            offer_marks.append(("offer_from_pool", trio.current_time()))
        else:
            track = media.engine.new_track()
            peer = await media.engine.create_offer(ice_servers=media.ice_servers, source=track)
            offer_marks.append(("offer_created", peer.times.get("offer_created")))
            offer_marks.append(("ice_gathered", peer.times.get("ice_gathered")))
        offer_sdp = peer.local_sdp
        offer_marks.append(("call_posted", trio.current_time()))
    assert offer_sdp is not None
    try:
        check_sdp(offer_sdp, what="the SDP offer")
        body = raw_sdp_body(offer_sdp) if raw_sdp else multipart_body(offer_sdp, client.session_json(session))
        limiter = client.call_limiter
        try:
            limiter.acquire_nowait()  # no scheduler round trip on the answer path unless at capacity
        except trio.WouldBlock:
            await limiter.acquire()
        try:
            answer = await create_call(
                client.http(),
                client.calls_url,
                body,
                headers,
                retries=client.call_retries,
                backoff_base=client.backoff_base,
                rand=client.rand,
                on_sent=build,
            )
        finally:
            limiter.release()
    except BaseException:
        if peer is not None:
            with trio.CancelScope(shield=True):
                await peer.aclose()
        raise
    finally:
        if media is not None and media.pool is not None:
            media.pool.refill()  # after the POST: gathering the next spare must not compete with it
    if not built:  # a transport that never read the body (custom http_client)
        build()
    conv = built[0]
    for phase, when in offer_marks:
        conv._mark_at(phase, when)
    conv.answer_sdp, conv.call_id = answer.sdp, answer.call_id
    elapsed = conv._mark("answer")
    log.info(
        "realtime call created; sdp answer ready transport=webrtc call_id=%s elapsed_ms=%.0f total_elapsed_ms=%.0f",
        answer.call_id,
        elapsed,
        conv._total_ms(),
    )
    return _CreatedCall(conv, peer, track)


async def _launch_call(
    call: _CreatedCall,
    nursery: trio.Nursery,
    headers: Mapping[str, str],
    *,
    sideband: SidebandMode,
    media: Media | None,
) -> Conversation:
    """Start the tasks of a created call in ``nursery``: the media task (which owns the peer from here) and the
    sideband join — in the background (``Started`` first) or inline (raises when the join fails, after stopping
    the media task)."""
    conv = call.conv
    if media is not None:
        assert call.peer is not None
        assert call.track is not None
        conv.media = MediaCall(call.peer, call.track, media.sink, conv._capacities.audio_out)
        conv._task_started()
        nursery.start_soon(conv._run_media, conv.media, media)
    conv._task_started()
    if sideband == "inline":
        try:
            await nursery.start(conv._run_sideband, headers, True)
        except BaseException:
            # The join failed (or was cancelled): no conversation; stop what already runs (the media task).
            if conv._claim.claim():
                conv._stop_tasks()
                conv._media_scope.cancel()
            raise
    else:
        conv._push_now(Started("webrtc", conv.call_id))
        nursery.start_soon(conv._run_sideband, headers, False)
        log.info("spawned realtime sideband connection task; realtime conversation started call_id=%s", conv.call_id)
    return conv


async def _start_websocket(
    client: RealtimeClient,
    session: SessionConfig,
    nursery: trio.Nursery,
    headers: Mapping[str, str],
    capacities: Capacities,
) -> Conversation:
    conv = Conversation(client, session, transport="websocket", capacities=capacities)
    log.info("starting realtime conversation transport=websocket")
    url = realtime_ws_url(client.realtime_base_url, model=session.model)
    conv._task_started()
    await nursery.start(conv._run_websocket, url, headers)
    return conv


async def start_conversation(
    client: RealtimeClient,
    session: SessionConfig,
    nursery: trio.Nursery,
    offer_sdp: str | None = None,
    *,
    sideband: SidebandMode = "background",
    raw_sdp: bool = False,
    capacities: Capacities | None = None,
    media: Media | None = None,
) -> Conversation:
    """Start a conversation whose tasks live in ``nursery``; return once it runs (see :func:`open_conversation`)."""
    _check_arguments(sideband, offer_sdp, media)
    headers = client.auth_headers()
    capacities = capacities or _DEFAULT_CAPACITIES
    if offer_sdp is None and media is None:
        return await _start_websocket(client, session, nursery, headers, capacities)
    call = await _create_call(client, session, headers, offer_sdp, raw_sdp=raw_sdp, capacities=capacities, media=media)
    return await _launch_call(call, nursery, headers, sideband=sideband, media=media)


class _ConversationBlock:
    """The async context manager :func:`open_conversation` returns (single use).

    A class rather than ``@asynccontextmanager``: entering it is on the time to answer, and the generator
    machinery cost more there than the work it wraps. It enters and leaves the conversation's nursery by hand,
    exactly as ``async with`` would, and a group of exactly one exception comes out as that exception.
    """

    __slots__ = ("_args", "_conv", "_nursery")

    def __init__(
        self,
        client: RealtimeClient,
        session: SessionConfig,
        offer_sdp: str | None,
        sideband: SidebandMode,
        raw_sdp: bool,
        capacities: Capacities | None,
        media: Media | None,
    ) -> None:
        self._args = (client, session, offer_sdp, sideband, raw_sdp, capacities, media)
        self._nursery: AbstractAsyncContextManager[trio.Nursery] | None = None
        self._conv: Conversation | None = None

    async def __aenter__(self) -> Conversation:
        if self._nursery is not None:
            raise RuntimeError("open_conversation(...) can be entered only once")
        client, session, offer_sdp, sideband, raw_sdp, capacities, media = self._args
        _check_arguments(sideband, offer_sdp, media)
        headers = client.auth_headers()
        capacities = capacities or _DEFAULT_CAPACITIES
        call = None
        if offer_sdp is not None or media is not None:
            call = await _create_call(
                client, session, headers, offer_sdp, raw_sdp=raw_sdp, capacities=capacities, media=media
            )
        # No checkpoint from here until _launch_call hands the peer to the media task, so a created peer cannot
        # leak (entering a nursery does not checkpoint).
        self._nursery = manager = trio.open_nursery()
        nursery = await manager.__aenter__()
        try:
            if call is None:
                conv = await _start_websocket(client, session, nursery, headers, capacities)
            else:
                conv = await _launch_call(call, nursery, headers, sideband=sideband, media=media)
        except BaseException as exc:
            await _leave_nursery(manager, exc)
            raise
        self._conv = conv
        return conv

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        assert self._nursery is not None
        assert self._conv is not None
        try:
            with trio.CancelScope(shield=True):
                await self._conv.close()
        except BaseException as close_exc:  # pragma: no cover - close() does not raise; never lose it if it did
            await _leave_nursery(self._nursery, close_exc)
            raise  # as a generator context manager would: the close error, chained to the block's
        return await _leave_nursery(self._nursery, exc)


async def _leave_nursery(manager: AbstractAsyncContextManager[trio.Nursery], exc: BaseException | None) -> bool:
    """Leave a nursery entered by hand, as ``async with`` would: True when ``exc`` is absorbed, False to let
    ``exc`` itself propagate; any other error (or a group holding several) raises. A group of exactly one
    exception is unwrapped, so callers get their own exception back."""
    try:
        with collapse_single_group():
            if exc is None:
                return bool(await manager.__aexit__(None, None, None))
            return bool(await manager.__aexit__(type(exc), exc, exc.__traceback__))
    except BaseException as raised:
        if raised is exc:
            return False
        raise


def open_conversation(
    client: RealtimeClient,
    session: SessionConfig,
    offer_sdp: str | None = None,
    *,
    sideband: SidebandMode = "background",
    raw_sdp: bool = False,
    capacities: Capacities | None = None,
    media: Media | None = None,
) -> AbstractAsyncContextManager[Conversation]:
    """Run one realtime conversation for the duration of an ``async with`` block.

    Without ``offer_sdp``: a plain websocket conversation; the socket is connected and ``session.update`` sent
    before the block starts. With ``offer_sdp``: a WebRTC call; the block starts as soon as the call exists
    (``conv.answer_sdp``, ``conv.call_id``) and the sideband joins in the background (``sideband="inline"``
    joins first, the pre-#20715 behaviour). ``raw_sdp=True`` posts the offer alone (``application/sdp``).
    With ``media=rtengine.webrtc.Media(engine, …)``: rtengine is the media peer — it creates the offer, and after
    the block starts it applies the answer, connects (bounded by ``media.connect_timeout``) and carries audio both
    ways (``conv.media``), in the conversation's nursery like the sideband join.

    The call is created first and the conversation's nursery opened after it, so nothing but the request body
    precedes the POST; the conversation itself is built while the request is in flight.

    Raises, before the block: :class:`~rtengine.ConfigError` (no API key, bad arguments),
    :class:`~rtengine.CallError` subclasses (call creation), :class:`~rtengine.ConnectFailed` (connect, or an
    inline join). Leaving the block — normally, by exception or by cancellation — closes the conversation
    (``Closed("requested")`` unless it had ended) and ends every task and socket, bounded by ``close_timeout``;
    the block's own exception comes out as itself.
    """
    return _ConversationBlock(client, session, offer_sdp, sideband, raw_sdp, capacities, media)
