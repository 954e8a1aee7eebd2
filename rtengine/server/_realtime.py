"""One realtime conversation as the local server plays it (GA event shapes).

A :class:`RealtimeSession` is one conversation. A plain websocket has its own; a WebRTC call has one for its
lifetime, and its views — the ``oai-events`` data channel and every sideband websocket that joins (a
:class:`Link` each) — all feed it client events and all receive its server events (``session.created`` only to
a view as it opens; an ``error`` only to the view whose event caused it). It answers each client event the way
the API does, streams scripted responses from a child task (so readers keep reading and a second
``response.create`` meets the API's active-response error), and applies the faults: injections after the first
``session.updated``, and per connection, close after N events. Every server event carries ``type`` and
``event_id``. Client events are parsed with rtengine's own sans-IO parser, so the server and the engine agree on
shapes by construction.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import trio

from ..adapters._serving import WebSocket, WsClosed
from ..protocol._audio import rms, tone
from ..protocol._events import ProtocolWarning
from ..protocol._payloads import (
    FunctionCallOutput,
    InputAudioAppend,
    ItemCreate,
    ItemTruncate,
    OutputAudioBufferClear,
    ResponseCancel,
    ResponseCreate,
    SessionUpdate,
    UnknownClientEvent,
    UserText,
    parse_client_event,
)
from ._options import ServerOptions
from ._record import ConnectionRecord, ServerRecord

if TYPE_CHECKING:
    from ..adapters._peer import PcmTrack, Peer

__all__ = ["Call", "RealtimeSession", "default_session", "error_event", "new_id"]

log = logging.getLogger("rtengine.server")

AUDIO_CHUNK_MS: Final = 50
CLOSE_REPLY_TIMEOUT: Final = 2.0
#: Data-channel client events waiting for a sideband session (beyond this they are refused with an error event).
INBOX_SIZE: Final = 64
#: Input audio louder than this (RMS, fraction of full scale) starts speech; quieter than SILENCE_LEVEL ends it.
SPEECH_LEVEL: Final = 0.05
SILENCE_LEVEL: Final = 0.01

_ERROR_MESSAGES: Final = {
    "invalid_api_key": "Incorrect API key provided.",
    "insufficient_quota": "You exceeded your current quota, please check your plan and billing details.",
    "session_expired": "Your session hit the maximum duration of 60 minutes.",
    "response_cancel_not_active": "Cancellation failed: no active response found",
    "conversation_already_has_active_response": (
        "Conversation already has an active response in progress: resp_injected. "
        "Wait until the response is finished before creating a new one."
    ),
    "server_error": "The server had an error while processing your request.",
}
_SUPPORTED_CLIENT_EVENTS: Final = (
    "session.update, input_audio_buffer.append, input_audio_buffer.commit, input_audio_buffer.clear, "
    "conversation.item.create, conversation.item.truncate, conversation.item.delete, response.create, "
    "response.cancel, output_audio_buffer.clear"
)


def new_id(prefix: str) -> str:
    """A fresh id such as ``item_…`` (URL-safe characters only)."""
    return f"{prefix}_{secrets.token_urlsafe(12)}"


def error_event(
    message: str,
    *,
    code: str | None,
    type: str = "invalid_request_error",
    param: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A GA server ``error`` event."""
    return {
        "type": "error",
        "error": {"type": type, "code": code, "message": message, "param": param, "event_id": event_id},
    }


def injected_error(code: str) -> dict[str, Any]:
    return error_event(_ERROR_MESSAGES.get(code, f"Injected error '{code}'."), code=code)


def default_session(model: str) -> dict[str, Any]:
    """The session a new connection starts with (what ``session.created`` shows)."""
    pcm = {"type": "audio/pcm", "rate": 24000}
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": new_id("sess"),
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "You are a helpful assistant (rtengine local server).",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "prompt": None,
        "include": None,
        "expires_at": int(time.time()) + 3600,
        "audio": {
            "input": {
                "format": dict(pcm),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 200,
                    "idle_timeout_ms": None,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {"format": dict(pcm), "voice": "alloy", "speed": 1.0},
        },
    }


def _with_id(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with a fresh ``event_id`` right after its ``type`` (every server event has both)."""
    return {"type": event["type"], "event_id": new_id("event"), **{k: v for k, v in event.items() if k != "type"}}


def _encode(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``update`` into a copy of ``base`` (objects merge, everything else replaces)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(eq=False)
class Call:
    """A WebRTC call the server created: its answering peer (with its outbound ``source`` track), its one
    ``conversation`` (shared by the call's data channel and every sideband that joins), and ``scope``, which holds
    the call's media and conversation tasks."""

    call_id: str
    peer: Peer
    source: PcmTrack
    model: str
    session: dict[str, Any] | None
    conversation: RealtimeSession = field(init=False)
    ended: bool = False
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


@dataclass
class _Response:
    response_id: str
    scope: trio.CancelScope


@dataclass(eq=False)
class Link:
    """One websocket attached to a conversation: its record, what it was sent (for ``close_after_events``), and
    its scope (cancelled to drop it)."""

    ws: WebSocket
    record: ConnectionRecord
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    sent: int = 0
    closing: bool = False


class RealtimeSession:
    """One conversation as the realtime API plays it.

    A plain websocket has a conversation of its own (:meth:`serve_alone`). A WebRTC call has one conversation for
    its lifetime (:meth:`run`, in the call's scope): its ``oai-events`` data channel and every sideband websocket
    that joins (:meth:`serve`) are views of it — client events from any of them go into it, and its server events
    go out on all of them (``session.created`` only to the view that just opened; an ``error`` only to the view
    whose client event caused it).
    """

    def __init__(
        self,
        server_record: ServerRecord,
        options: ServerOptions,
        *,
        model: str,
        call: Call | None,
        faults_getter: Callable[[], Any],
    ) -> None:
        self._records = server_record
        self._options = options
        self._faults = faults_getter
        self.call = call
        base = default_session(model)
        if call is not None and call.session:
            base = merge(base, {k: v for k, v in call.session.items() if k != "model"})
        self.session = base
        self.links: list[Link] = []
        self._injected = False
        self._response: _Response | None = None
        self._last_item_id: str | None = None
        self._last_user_text: str | None = None
        self._tool_outputs: list[tuple[str, str]] = []
        self._pending_tools: dict[str, str] = {}
        self._tool_used = False
        self._audio_items: dict[str, int] = {}
        self.audio_bytes_in = 0
        self._speaking = False
        self._speech_item: str | None = None
        self._nursery: trio.Nursery | None = None
        self._running = trio.Event()
        self.ended = False
        # Client events from the call's data channel, handled like frames from a websocket.
        self._inbox_tx, self._inbox_rx = trio.open_memory_channel[str](INBOX_SIZE)

    # --- sending ---------------------------------------------------------------------------------------------

    async def send(self, event: dict[str, Any]) -> None:
        """Send one server event (adds ``event_id``) to every view of the conversation."""
        full = _with_id(event)
        await self._broadcast(_encode(full), full)

    async def _reply(self, origin: Link | None, event: dict[str, Any]) -> None:
        """Send an event that answers one client event (an ``error``) to the view that sent it only: the
        websocket ``origin``, or the call's data channel when ``origin`` is None."""
        full = _with_id(event)
        if origin is not None:
            await self._send_link(origin, _encode(full), full)
        elif self.call is not None:
            self.call.peer.send_data(_encode(full))

    async def _broadcast(self, text: str | None, recorded: Any, data: bytes | None = None) -> None:
        for link in list(self.links):
            await self._send_link(link, text, recorded, data)
        if self.call is not None and text is not None:
            self.call.peer.send_data(text)  # the same events on the call's oai-events data channel

    async def _send_link(self, link: Link, text: str | None, recorded: Any, data: bytes | None = None) -> None:
        """Send on one websocket, honouring ``close_after_events``. A client that vanished is not an error of
        the conversation: the link stops being written to, and its reader records how it ended."""
        if link.closing:
            return
        try:
            if data is not None:
                await link.ws.send_bytes(data)
            else:
                assert text is not None
                await link.ws.send_text(text)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            link.closing = True
            return
        link.record.frames_out.append(recorded)
        self._records.changed()
        link.sent += 1
        limit = self._faults().close_after_events
        if limit is not None and link.sent >= limit:
            await self._close_by_fault(link)

    async def _close_by_fault(self, link: Link) -> None:
        link.closing = True
        if self._faults().close_mode == "abrupt":
            link.ws.drop()
            link.record.end = "abrupt"
            self._records.changed()
            link.scope.cancel()
            return
        link.record.end = "server_close"
        link.record.close_code = 1000
        self._records.changed()
        try:
            await link.ws.send_close(1000, "rtengine local server: close_after_events")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    # --- running ---------------------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host the conversation's tasks (streamed responses, data-channel client events) until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._serve_inbox)
                self._running.set()
                task_status.started()
                await trio.sleep_forever()
        finally:
            self.ended = True
            self._nursery = None
            self._inbox_tx.close()
            self._running.set()  # a view still waiting to attach sees the end
            self.drop_all("call_ended")

    async def serve_alone(self, ws: WebSocket, record: ConnectionRecord) -> None:
        """A plain websocket's conversation: it lives exactly as long as the connection."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.run)
            await self.serve(ws, record)
            nursery.cancel_scope.cancel()

    async def serve(self, ws: WebSocket, record: ConnectionRecord) -> None:
        """Attach one accepted websocket (``session.created`` first) until the client ends it, a fault ends it
        or :meth:`drop_all` cancels it."""
        link = Link(ws, record)
        self.links.append(link)
        try:
            with link.scope:
                await self._running.wait()
                if self.ended:
                    record.end = record.end or "call_ended"
                    return
                created = _with_id({"type": "session.created", "session": self.session})
                await self._send_link(link, _encode(created), created)
                await self._read_loop(link)
        finally:
            self.links.remove(link)

    def drop_all(self, end: str) -> None:
        """Cancel every attached websocket, recording ``end`` for those that had not ended."""
        for link in self.links:
            if link.record.end is None:
                link.record.end = end
            link.scope.cancel()

    def greet_data_channel(self) -> None:
        """``session.created`` on the call's data channel, once it opens."""
        assert self.call is not None
        self.call.peer.send_data(_encode(_with_id({"type": "session.created", "session": self.session})))

    def deliver(self, text: str) -> bool:
        """Queue a client event that arrived on the call's data channel; it is handled like a websocket frame.
        False when the conversation has ended or its inbox is full (nothing was queued)."""
        try:
            self._inbox_tx.send_nowait(text)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True

    async def _serve_inbox(self) -> None:
        async for text in self._inbox_rx:
            await self._handle(text, None)

    async def _read_loop(self, link: Link) -> None:
        ws, record = link.ws, link.record
        while True:
            if record.end == "server_close":
                with trio.move_on_after(CLOSE_REPLY_TIMEOUT):
                    outcome = await ws.receive()
                    while not isinstance(outcome, WsClosed):
                        outcome = await ws.receive()
                    record.close_answered = outcome.kind == "close"
                    self._records.changed()
                return
            outcome = await ws.receive()
            if isinstance(outcome, WsClosed):
                link.closing = True
                await self._client_ended(link, outcome)
                return
            if outcome.data is not None:
                record.binary_in += 1
                self._records.changed()
                await self._reply(
                    link, error_event("Binary frames are not supported; send JSON text.", code="invalid_json")
                )
                continue
            assert outcome.text is not None
            self._records.frame_in(record, outcome.text)
            await self._handle(outcome.text, link)

    async def _client_ended(self, link: Link, outcome: WsClosed) -> None:
        ws, record = link.ws, link.record
        if record.end is None:
            record.end = {"close": "client_close", "eof": "eof"}.get(outcome.kind, outcome.kind)
            record.close_code = outcome.code
        if outcome.kind == "close":
            record.close_answered = ws.answer_close
            if not ws.answer_close:
                # A dead peer: never answer, keep the TCP open until the client drops it.
                while True:
                    again = await ws.receive()
                    if isinstance(again, WsClosed) and again.kind == "eof":
                        break
        elif outcome.kind in ("protocol_error", "too_big") and outcome.code is not None:
            await ws.send_close(outcome.code, outcome.reason or "")
        self._records.changed()

    # --- client events ---------------------------------------------------------------------------------------

    async def _handle(self, text: str, origin: Link | None) -> None:
        """One client event from ``origin`` (a websocket, or None for the call's data channel). State changes go
        to every view; an ``error`` goes back to ``origin`` only, as a reply to the event that caused it."""
        event = parse_client_event(text)
        match event:
            case ProtocolWarning(detail=detail):
                await self._reply(origin, error_event(f"Invalid client event: {detail}", code="invalid_event"))
            case SessionUpdate(session=session, event_id=eid):
                await self._session_update(session, eid, origin)
            case InputAudioAppend(audio=audio):
                await self._input_audio(audio)
            case UserText(text=user_text):
                self._last_user_text = user_text
                await self._add_item(
                    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": user_text}]}
                )
            case FunctionCallOutput(call_id=call_id, output=output):
                name = self._pending_tools.pop(call_id, None)
                if name is not None:
                    self._tool_outputs.append((name, output))
                await self._add_item({"type": "function_call_output", "call_id": call_id, "output": output})
            case ItemCreate(item=item):
                await self._add_item(dict(item))
            case ResponseCreate(event_id=eid):
                await self._response_create(eid, origin)
            case ResponseCancel(event_id=eid):
                if self._response is None:
                    await self._reply(
                        origin,
                        error_event(
                            _ERROR_MESSAGES["response_cancel_not_active"],
                            code="response_cancel_not_active",
                            event_id=eid,
                        ),
                    )
                else:
                    self._response.scope.cancel()
            case ItemTruncate():
                await self._truncate(event, origin)
            case OutputAudioBufferClear(event_id=eid):
                if self.call is None:
                    await self._reply(
                        origin,
                        error_event(
                            "output_audio_buffer.clear is only supported for WebRTC calls.",
                            code="invalid_value",
                            param="type",
                            event_id=eid,
                        ),
                    )
                else:
                    await self.send({"type": "output_audio_buffer.cleared", "response_id": None})
            case UnknownClientEvent(type=unknown, raw=raw):
                await self._reply(
                    origin,
                    error_event(
                        f"Invalid value: '{unknown}'. Supported values are: {_SUPPORTED_CLIENT_EVENTS}.",
                        code="invalid_value",
                        param="type",
                        event_id=raw.get("event_id") if isinstance(raw.get("event_id"), str) else None,
                    ),
                )

    async def _input_audio(self, pcm: bytes) -> None:
        """A tiny energy VAD standing in for server VAD: loud audio starts speech (interrupting an active
        response when ``interrupt_response`` allows), silence after speech stops it."""
        start_ms = self.audio_bytes_in // 48  # PCM16 mono 24 kHz: 48 bytes per ms
        self.audio_bytes_in += len(pcm)
        detection = (self.session.get("audio") or {}).get("input", {}).get("turn_detection")
        if not isinstance(detection, dict):
            return
        level = rms(pcm)
        if not self._speaking and level >= SPEECH_LEVEL:
            self._speaking = True
            self._speech_item = new_id("item")
            await self.send(
                {"type": "input_audio_buffer.speech_started", "audio_start_ms": start_ms, "item_id": self._speech_item}
            )
            if self._response is not None and detection.get("interrupt_response", True):
                self._response.scope.cancel()
        elif self._speaking and level < SILENCE_LEVEL:
            self._speaking = False
            await self.send(
                {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": start_ms, "item_id": self._speech_item}
            )

    async def _session_update(self, session: Any, eid: str | None, origin: Link | None) -> None:
        for forbidden in ("id", "model"):
            if forbidden in session:
                await self._reply(
                    origin,
                    error_event(
                        f"Unknown parameter: 'session.{forbidden}'.",
                        code="unknown_parameter",
                        param=f"session.{forbidden}",
                        event_id=eid,
                    ),
                )
                return
        if session.get("type") not in ("realtime", "transcription"):
            await self._reply(
                origin,
                error_event(
                    "Missing required parameter: 'session.type'.",
                    code="missing_required_parameter",
                    param="session.type",
                    event_id=eid,
                ),
            )
            return
        self.session = merge(self.session, dict(session))
        await self.send({"type": "session.updated", "session": self.session})
        if not self._injected:
            self._injected = True
            await self._inject()

    async def _inject(self) -> None:
        faults = self._faults()
        for name in faults.inject:
            if name == "malformed_json":
                await self._broadcast('{"type": "response.created", "event_id": ', "<malformed>")
            elif name == "binary":
                await self._broadcast(None, "<binary>", data=b"\x00rtengine-binary-frame")
            elif name == "oversized":
                padding = "x" * faults.oversized_bytes
                await self.send({"type": "rtengine.oversized", "padding": padding})
            elif name == "unknown_event":
                await self.send({"type": "rtengine.unknown_event", "detail": "injected by the local server"})
            else:
                await self.send(injected_error(name.split(":", 1)[1]))

    async def _add_item(self, item: dict[str, Any]) -> None:
        item = {"id": new_id("item"), "object": "realtime.item", "status": "completed", **item}
        previous, self._last_item_id = self._last_item_id, item["id"]
        await self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        await self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})

    async def _truncate(self, event: ItemTruncate, origin: Link | None) -> None:
        received = self._audio_items.get(event.item_id)
        if received is None:
            await self._reply(
                origin,
                error_event("Only model output audio messages can be truncated.", code=None, event_id=event.event_id),
            )
        elif event.audio_end_ms > received:
            await self._reply(
                origin,
                error_event(
                    f"Audio content of {received}ms is already shorter than {event.audio_end_ms}ms.", code=None
                ),
            )
        else:
            await self.send(
                {
                    "type": "conversation.item.truncated",
                    "item_id": event.item_id,
                    "content_index": event.content_index,
                    "audio_end_ms": event.audio_end_ms,
                }
            )

    async def _response_create(self, eid: str | None, origin: Link | None) -> None:
        if self._response is not None:
            await self._reply(
                origin,
                error_event(
                    f"Conversation already has an active response in progress: {self._response.response_id}. "
                    "Wait until the response is finished before creating a new one.",
                    code="conversation_already_has_active_response",
                    event_id=eid,
                ),
            )
            return
        if self._nursery is None:  # the conversation has ended; its views are being dropped
            return
        response = _Response(new_id("resp"), trio.CancelScope())
        self._response = response
        self._nursery.start_soon(self._respond, response)

    # --- scripted responses ----------------------------------------------------------------------------------

    def _response_object(self, response_id: str, status: str, output: list[Any], modality: str) -> dict[str, Any]:
        return {
            "object": "realtime.response",
            "id": response_id,
            "status": status,
            "status_details": None if status != "cancelled" else {"type": "cancelled", "reason": "client_cancelled"},
            "output": output,
            "conversation_id": "conv_local",
            "output_modalities": [modality],
            "max_output_tokens": "inf",
            "usage": None if status == "in_progress" else {"total_tokens": 0, "input_tokens": 0, "output_tokens": 0},
            "metadata": None,
        }

    async def _respond(self, response: _Response) -> None:
        modality = (self.session.get("output_modalities") or ["audio"])[0]
        rid = response.response_id
        output: list[Any] = []
        with response.scope:
            await self.send(
                {"type": "response.created", "response": self._response_object(rid, "in_progress", [], modality)}
            )
            if self._options.tool_call is not None and not self._tool_used:
                self._tool_used = True
                output = await self._tool_response(rid)
            else:
                output = await self._message_response(rid, modality)
        status = "cancelled" if response.scope.cancelled_caught else "completed"
        if status == "cancelled" and self.call is not None:
            self.call.source.clear()
        self._response = None
        await self.send({"type": "response.done", "response": self._response_object(rid, status, output, modality)})
        if self.call is not None and modality == "audio":
            kind = "output_audio_buffer.cleared" if status == "cancelled" else "output_audio_buffer.stopped"
            await self.send({"type": kind, "response_id": rid})

    def _reply_text(self) -> str:
        if self._tool_outputs:
            name, output = self._tool_outputs[-1]
            self._tool_outputs.clear()
            return f"The {name} tool returned: {output}"
        if self._options.reply_text is not None:
            return self._options.reply_text
        if self._last_user_text is not None:
            return f"You said: {self._last_user_text}"
        return "Hello from the rtengine local server."

    async def _message_response(self, rid: str, modality: str) -> list[Any]:
        text = self._reply_text()
        iid = new_id("item")
        previous, self._last_item_id = self._last_item_id, iid
        item: dict[str, Any] = {
            "id": iid,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        where = {"response_id": rid, "item_id": iid, "output_index": 0, "content_index": 0}
        output: list[Any] = [item]
        await self.send({"type": "response.output_item.added", "response_id": rid, "output_index": 0, "item": item})
        await self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        audio = modality == "audio"
        part: dict[str, Any] = (
            {"type": "output_audio", "transcript": ""} if audio else {"type": "output_text", "text": ""}
        )
        await self.send({"type": "response.content_part.added", **where, "part": part})
        if audio and self.call is not None:
            self.call.source.push(tone(440.0, self._options.audio_ms))  # the answer is heard over RTP
            await self.send({"type": "output_audio_buffer.started", "response_id": rid})
        chunks = self._audio_chunks() if audio and self.call is None else []
        words = text.split(" ")
        delta_type = "response.output_audio_transcript.delta" if audio else "response.output_text.delta"
        for index in range(max(len(words), len(chunks))):
            if index < len(chunks):
                await self.send({"type": "response.output_audio.delta", **where, "delta": chunks[index]})
                self._audio_items[iid] = self._audio_items.get(iid, 0) + AUDIO_CHUNK_MS
            if index < len(words):
                await self.send(
                    {"type": delta_type, **where, "delta": words[index] + (" " if index < len(words) - 1 else "")}
                )
            if self._options.delta_interval:
                await trio.sleep(self._options.delta_interval)
        if audio:
            if chunks:
                await self.send({"type": "response.output_audio.done", **where})
            await self.send({"type": "response.output_audio_transcript.done", **where, "transcript": text})
            done_part = {"type": "output_audio", "transcript": text}
        else:
            await self.send({"type": "response.output_text.done", **where, "text": text})
            done_part = {"type": "output_text", "text": text}
        await self.send({"type": "response.content_part.done", **where, "part": done_part})
        item = {**item, "status": "completed", "content": [done_part]}
        output[0] = item
        await self.send({"type": "response.output_item.done", "response_id": rid, "output_index": 0, "item": item})
        await self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})
        return output

    def _audio_chunks(self) -> list[str]:
        pcm = tone(440.0, self._options.audio_ms)
        size = 24000 * AUDIO_CHUNK_MS // 1000 * 2
        return [base64.b64encode(pcm[i : i + size]).decode("ascii") for i in range(0, len(pcm), size)]

    async def _tool_response(self, rid: str) -> list[Any]:
        script = self._options.tool_call
        assert script is not None
        iid, call_id = new_id("item"), new_id("call")
        previous, self._last_item_id = self._last_item_id, iid
        item: dict[str, Any] = {
            "id": iid,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": script.name,
            "call_id": call_id,
            "arguments": "",
        }
        await self.send({"type": "response.output_item.added", "response_id": rid, "output_index": 0, "item": item})
        await self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        where = {"response_id": rid, "item_id": iid, "output_index": 0, "call_id": call_id}
        await self.send({"type": "response.function_call_arguments.delta", **where, "delta": script.arguments})
        await self.send(
            {
                "type": "response.function_call_arguments.done",
                **where,
                "name": script.name,
                "arguments": script.arguments,
            }
        )
        item = {**item, "status": "completed", "arguments": script.arguments}
        self._pending_tools[call_id] = script.name
        await self.send({"type": "response.output_item.done", "response_id": rid, "output_index": 0, "item": item})
        await self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})
        return [item]
