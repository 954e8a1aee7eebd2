"""Server-event parser: one websocket frame in, one typed event (or a :class:`ProtocolWarning`) out.

Theory of operation: a bad frame must never end a conversation, so
:func:`parse_server_event` never raises. Invalid JSON, a non-object, a missing or non-string ``type``, a binary
frame, and a known type that lacks a required field all come back as a :class:`ProtocolWarning` the caller
counts and logs. A wrongly typed optional field is treated as absent. Types rtengine does not model come back
as :class:`UnknownEvent` with the raw dict.

Dispatch is a table from ``type`` to a small builder (the MCP, ``conversation.created`` and DTMF builders live in
:mod:`._parse_more`); a builder raises ``Missing`` for a missing required field, which the table turns into a
warning. Audio deltas never state their format, so the caller passes the session's (``output_format``; the engine
passes :attr:`Brain.output_format <rtengine.protocol.Brain.output_format>`) and :class:`AudioOut` carries it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from ._classify import classify_error
from ._events import (
    AudioOut,
    InputTranscriptDelta,
    InputTranscriptDone,
    ItemAdded,
    ItemDone,
    OutputAudioCleared,
    OutputAudioStarted,
    OutputAudioStopped,
    OutputTranscriptDelta,
    OutputTranscriptDone,
    ProtocolWarning,
    RateLimit,
    RateLimits,
    ResponseCancelled,
    ResponseCreated,
    ResponseDone,
    ServerErrorEvent,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    UnknownEvent,
    WarningKind,
)
from ._fields import Missing as _Missing
from ._fields import int_field as _int
from ._fields import num_field as _num
from ._fields import obj_field as _obj
from ._fields import req_obj as _req_obj
from ._fields import req_str as _req_str
from ._fields import str_field as _str
from ._g711 import PCM_FORMAT, format_geometry
from ._parse_more import MORE_BUILDERS

__all__ = ["DOCUMENTED_UNMAPPED_TYPES", "parse_server_event", "parse_server_message"]

#: GA server event types rtengine deliberately does not map (returned as ``UnknownEvent(documented=True)``).
DOCUMENTED_UNMAPPED_TYPES: Final[frozenset[str]] = frozenset(
    {
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "input_audio_buffer.timeout_triggered",
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_audio.done",
        "response.audio.done",
        "response.function_call_arguments.delta",
        "conversation.item.truncated",
        "conversation.item.deleted",
        "conversation.item.retrieved",
        "conversation.item.input_audio_transcription.failed",
        "conversation.item.input_audio_transcription.segment",
    }
)


def _session_created(e: Mapping[str, Any]) -> ServerEvent:
    session = _req_obj(e, "session")
    return SessionCreated(
        session_id=_req_str(session, "id"),
        expires_at=_int(session, "expires_at"),
        session=session,
        event_id=_str(e, "event_id"),
    )


def _session_updated(e: Mapping[str, Any]) -> ServerEvent:
    session = _req_obj(e, "session")
    return SessionUpdated(
        session_id=_req_str(session, "id"),
        instructions=_str(session, "instructions"),
        session=session,
        event_id=_str(e, "event_id"),
    )


def _speech_started(e: Mapping[str, Any]) -> ServerEvent:
    return SpeechStarted(_str(e, "item_id"), _int(e, "audio_start_ms"), _str(e, "event_id"))


def _speech_stopped(e: Mapping[str, Any]) -> ServerEvent:
    return SpeechStopped(_str(e, "item_id"), _int(e, "audio_end_ms"), _str(e, "event_id"))


def _item_added(e: Mapping[str, Any]) -> ServerEvent:
    item = _req_obj(e, "item")
    ids = _str(e, "previous_item_id"), _str(e, "event_id")
    return ItemAdded(_str(item, "id"), item, *ids, _str(item, "phase"), wire_type=e["type"])


def _item_done(e: Mapping[str, Any]) -> ServerEvent:
    item = _req_obj(e, "item")
    if item.get("type") == "function_call":
        return ToolCall(
            call_id=_req_str(item, "call_id"),
            name=_str(item, "name"),
            arguments=_str(item, "arguments") or "",
            item_id=_str(item, "id"),
            event_id=_str(e, "event_id"),
            wire_type=e["type"],
        )
    return ItemDone(_str(item, "id"), item, _str(e, "event_id"), _str(item, "phase"))


def _arguments_done(e: Mapping[str, Any]) -> ServerEvent:
    return ToolCall(
        call_id=_req_str(e, "call_id"),
        name=_str(e, "name"),
        arguments=_str(e, "arguments") or "",
        item_id=_str(e, "item_id"),
        event_id=_str(e, "event_id"),
        wire_type=e["type"],
    )


def _input_delta(e: Mapping[str, Any]) -> ServerEvent:
    return InputTranscriptDelta(_req_str(e, "delta"), _str(e, "item_id"), _str(e, "event_id"))


def _input_done(e: Mapping[str, Any]) -> ServerEvent:
    return InputTranscriptDone(_req_str(e, "transcript"), _str(e, "item_id"), _str(e, "event_id"))


def _response_id(e: Mapping[str, Any]) -> str | None:
    response = _obj(e, "response")
    if response is not None and (rid := _str(response, "id")) is not None:
        return rid
    return _str(e, "response_id")


def _response_created(e: Mapping[str, Any]) -> ServerEvent:
    return ResponseCreated(_response_id(e), _str(e, "event_id"))


def _response_done(e: Mapping[str, Any]) -> ServerEvent:
    response = _obj(e, "response") or {}
    return ResponseDone(_response_id(e), _str(response, "status"), response, _str(e, "event_id"))


def _response_cancelled(e: Mapping[str, Any]) -> ServerEvent:
    return ResponseCancelled(_response_id(e), _str(e, "event_id"))


#: Fields of an audio delta that state its geometry (the GA API sends none: the session's format says it).
_GEOMETRY_FIELDS: Final = ("sample_rate", "channels", "num_channels", "samples_per_channel")


def _audio_delta(e: Mapping[str, Any], output_format: str) -> AudioOut:
    """The hot path (50 deltas a second per conversation): the common shape is read inline, with the ``_fields``
    rules (a wrongly typed optional field reads as absent); a delta that states its geometry takes the long way."""
    get = e.get
    audio, item_id, response_id, event_id = get("delta"), get("item_id"), get("response_id"), get("event_id")
    if not isinstance(audio, str) or not e.keys().isdisjoint(_GEOMETRY_FIELDS):
        return _audio_delta_geometry(e, output_format)
    return AudioOut(
        audio,
        item_id if isinstance(item_id, str) else None,
        response_id if isinstance(response_id, str) else None,
        format_geometry(output_format)[0],
        1,
        None,
        event_id if isinstance(event_id, str) else None,
        output_format,
        wire_type=e["type"],
    )


def _audio_delta_geometry(e: Mapping[str, Any], output_format: str) -> AudioOut:
    rate, _ = format_geometry(output_format)
    channels = _int(e, "channels") or _int(e, "num_channels") or 1
    return AudioOut(
        audio=_req_str(e, "delta"),
        item_id=_str(e, "item_id"),
        response_id=_str(e, "response_id"),
        sample_rate=_int(e, "sample_rate") or rate,
        num_channels=channels,
        samples_per_channel=_int(e, "samples_per_channel"),
        event_id=_str(e, "event_id"),
        format=output_format,
        wire_type=e["type"],
    )


def _output_delta(e: Mapping[str, Any]) -> ServerEvent:
    ids = _str(e, "item_id"), _str(e, "response_id"), _str(e, "event_id")
    return OutputTranscriptDelta(_req_str(e, "delta"), *ids, wire_type=e["type"])


def _transcript_done(e: Mapping[str, Any]) -> ServerEvent:
    ids = _str(e, "item_id"), _str(e, "response_id"), _str(e, "event_id")
    return OutputTranscriptDone(_req_str(e, "transcript"), *ids, wire_type=e["type"])


def _text_done(e: Mapping[str, Any]) -> ServerEvent:
    ids = _str(e, "item_id"), _str(e, "response_id"), _str(e, "event_id")
    return OutputTranscriptDone(_req_str(e, "text"), *ids, wire_type=e["type"])


def error_message(e: Mapping[str, Any]) -> str | None:
    """The error text of an ``error`` frame: ``message``, else ``error.message``, else ``error`` as JSON."""
    if (top := _str(e, "message")) is not None:
        return top
    error = e.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if error is None:
        return None
    return json.dumps(error, separators=(",", ":"), sort_keys=True)


def _error(e: Mapping[str, Any]) -> ServerEvent:
    message = error_message(e)
    if message is None:
        raise _Missing("error")
    detail = _obj(e, "error") or {}
    code = _str(detail, "code")
    return ServerErrorEvent(
        message=message,
        code=code,
        type=_str(detail, "type"),
        param=_str(detail, "param"),
        error_event_id=_str(detail, "event_id"),
        error_class=classify_error(code, message),
        event_id=_str(e, "event_id"),
    )


def _rate_limits(e: Mapping[str, Any]) -> ServerEvent:
    raw = e.get("rate_limits")
    if not isinstance(raw, list):
        raise _Missing("rate_limits")
    limits = tuple(
        RateLimit(
            name=_str(entry, "name") or "",
            limit=_int(entry, "limit"),
            remaining=_int(entry, "remaining"),
            reset_seconds=_num(entry, "reset_seconds"),
        )
        for entry in raw
        if isinstance(entry, dict)
    )
    return RateLimits(limits, _str(e, "event_id"))


def _playback(cls: type[OutputAudioStarted | OutputAudioStopped | OutputAudioCleared]) -> Callable[..., ServerEvent]:
    def build(e: Mapping[str, Any]) -> ServerEvent:
        return cls(_str(e, "response_id"), _str(e, "event_id"))

    return build


_BUILDERS: Final[dict[str, Callable[[Mapping[str, Any]], ServerEvent]]] = {
    "session.created": _session_created,
    "session.updated": _session_updated,
    "input_audio_buffer.speech_started": _speech_started,
    "input_audio_buffer.speech_stopped": _speech_stopped,
    "conversation.item.added": _item_added,
    "conversation.item.created": _item_added,
    "conversation.item.done": _item_done,
    "conversation.item.input_audio_transcription.delta": _input_delta,
    "conversation.item.input_audio_transcription.completed": _input_done,
    "response.created": _response_created,
    "response.done": _response_done,
    "response.cancelled": _response_cancelled,
    "response.output_audio_transcript.delta": _output_delta,
    "response.output_audio_transcript.done": _transcript_done,
    "response.output_text.delta": _output_delta,
    "response.output_text.done": _text_done,
    "response.function_call_arguments.done": _arguments_done,
    "error": _error,
    "rate_limits.updated": _rate_limits,
    "output_audio_buffer.started": _playback(OutputAudioStarted),
    "output_audio_buffer.stopped": _playback(OutputAudioStopped),
    "output_audio_buffer.cleared": _playback(OutputAudioCleared),
    **MORE_BUILDERS,
}
#: The audio deltas: their format is the session's, which the caller passes (the delta never states it).
_AUDIO_DELTAS: Final = frozenset({"response.output_audio.delta", "response.audio.delta"})


def parse_server_message(message: Mapping[str, Any], output_format: str = PCM_FORMAT) -> ServerEvent | ProtocolWarning:
    """Type an already-decoded JSON object; audio deltas are in ``output_format`` (the session's). Never raises."""
    event_type = message.get("type")
    if not isinstance(event_type, str):
        return ProtocolWarning(WarningKind.MISSING_TYPE, "event has no string 'type'")
    try:
        if event_type in _AUDIO_DELTAS:
            return _audio_delta(message, output_format)
        builder = _BUILDERS.get(event_type)
        if builder is None:
            return UnknownEvent(event_type, message, documented=event_type in DOCUMENTED_UNMAPPED_TYPES)
        return builder(message)
    except _Missing as missing:
        return ProtocolWarning(
            WarningKind.MISSING_FIELD, f"{event_type} lacks required field {missing.args[0]!r}", event_type
        )


_DECODER: Final = json.JSONDecoder()


def _loads(frame: str) -> Any:
    """``json.loads(frame)``, with one call and two whitespace scans less for the usual frame (a document with no
    whitespace around it): anything else — whitespace, trailing data, invalid JSON — is left to ``json.loads``."""
    try:
        value, end = _DECODER.raw_decode(frame)
    except ValueError:
        return json.loads(frame)
    return value if end == len(frame) else json.loads(frame)


def parse_server_event(
    frame: str | bytes | bytearray, output_format: str = PCM_FORMAT
) -> ServerEvent | ProtocolWarning:
    """Parse one websocket frame. Text frames are JSON events; a binary frame is a protocol warning. Audio deltas
    are taken to be in ``output_format`` (``audio/pcm``, ``audio/pcmu`` or ``audio/pcma``: the session's output
    format, which the deltas never state). Never raises."""
    if not isinstance(frame, str):
        return ProtocolWarning(
            WarningKind.BINARY_FRAME, f"unexpected binary realtime websocket event ({len(frame)} bytes)"
        )
    try:
        message = _loads(frame)
    except (ValueError, RecursionError) as exc:
        return ProtocolWarning(WarningKind.INVALID_JSON, f"invalid JSON: {exc}"[:200])
    if not isinstance(message, dict):
        return ProtocolWarning(WarningKind.NOT_AN_OBJECT, f"event is a JSON {type(message).__name__}, not an object")
    return parse_server_message(message, output_format)
