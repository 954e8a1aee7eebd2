"""Client events: builders (what rtengine sends) and their parser (what a server reads), in the shapes of the GA API.

Builders return plain dicts; :func:`encode` renders one compactly. :func:`parse_client_event` is the
server-side view of the same events, used by the local realtime server and by the round-trip tests: every
builder's output parses back to the typed value it was built from. Pure: no I/O, no trio.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ._buffer_events import BUFFER_EVENT_TYPES, BufferEvent, parse_buffer_event
from ._events import ProtocolWarning, WarningKind
from ._session import SessionConfig

__all__ = [
    "ClientEvent",
    "FunctionCallOutput",
    "InputAudioAppend",
    "ItemCreate",
    "ItemTruncate",
    "OutputAudioBufferClear",
    "ResponseCancel",
    "ResponseCreate",
    "SessionUpdate",
    "UnknownClientEvent",
    "UserText",
    "encode",
    "function_call_output",
    "input_audio_append",
    "item_truncate",
    "output_audio_buffer_clear",
    "parse_client_event",
    "parse_client_message",
    "response_cancel",
    "response_create",
    "session_update",
    "user_text",
]


_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_ESCAPING: Final = json.JSONEncoder(separators=(",", ":"))
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_APPEND_KEYS: Final = ("type", "audio", "event_id")
_APPEND_HEAD: Final = '{"type":"input_audio_buffer.append","audio":"'


def encode(event: Mapping[str, Any]) -> str:
    """Render a client event as compact JSON (non-ASCII kept as is). A stamped audio append — the event sent 50
    times a second, mostly base64 — is rendered without scanning its audio for characters to escape when it has
    none (the base64 alphabet): the same text, at a fraction of the cost. A lone surrogate, which UTF-8 cannot
    encode, can only come from a server (JSON lets it escape one, ``"\\ud800"``; a caller's is refused where it is
    given): an event holding one — a history item a reconnect replays — is rendered with every non-ASCII character
    escaped, so it goes back as it came instead of failing the socket's write."""
    if event.get("type") == "input_audio_buffer.append" and tuple(event) == _APPEND_KEYS:
        audio, event_id = event["audio"], event["event_id"]
        if type(audio) is str and type(event_id) is str and _plain(audio):
            return f'{_APPEND_HEAD}{audio}","event_id":{_ENCODER.encode(event_id)}}}'
    text = _ENCODER.encode(event)
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _ESCAPING.encode(event)


def _plain(text: str) -> bool:
    """JSON writes ``text`` as it is: printable ASCII with no quote and no backslash."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def session_update(config: SessionConfig) -> dict[str, Any]:
    """``session.update`` carrying ``config`` (never ``id`` or ``model``)."""
    return {"type": "session.update", "session": config.update_payload()}


def input_audio_append(pcm16: bytes) -> dict[str, Any]:
    """``input_audio_buffer.append`` with base64 PCM16 audio."""
    return {"type": "input_audio_buffer.append", "audio": binascii.b2a_base64(pcm16, newline=False).decode("ascii")}


def user_text(text: str) -> dict[str, Any]:
    """``conversation.item.create`` with a user message holding one ``input_text`` part."""
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
    }


def function_call_output(call_id: str, output: str) -> dict[str, Any]:
    """``conversation.item.create`` with a ``function_call_output`` answering ``call_id``."""
    return {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": call_id, "output": output},
    }


def response_create(response: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``response.create``, optionally with per-response overrides."""
    event: dict[str, Any] = {"type": "response.create"}
    if response:
        event["response"] = dict(response)
    return event


def response_cancel(response_id: str | None = None) -> dict[str, Any]:
    """``response.cancel``, optionally naming the response."""
    event: dict[str, Any] = {"type": "response.cancel"}
    if response_id is not None:
        event["response_id"] = response_id
    return event


def item_truncate(item_id: str, audio_end_ms: int, content_index: int = 0) -> dict[str, Any]:
    """``conversation.item.truncate``: cut an assistant audio item at ``audio_end_ms``."""
    if audio_end_ms < 0 or content_index < 0:
        raise ValueError("audio_end_ms and content_index must be non-negative")
    return {
        "type": "conversation.item.truncate",
        "item_id": item_id,
        "content_index": content_index,
        "audio_end_ms": audio_end_ms,
    }


def output_audio_buffer_clear() -> dict[str, Any]:
    """``output_audio_buffer.clear`` (WebRTC only): stop the server's playback."""
    return {"type": "output_audio_buffer.clear"}


# --- the server's view -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    session: Mapping[str, Any]
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class InputAudioAppend:
    audio: bytes = field(repr=False)
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class UserText:
    text: str
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class FunctionCallOutput:
    call_id: str
    output: str
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class ItemCreate:
    """Any other ``conversation.item.create`` (e.g. a message with audio parts)."""

    item: Mapping[str, Any]
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseCreate:
    response: Mapping[str, Any] | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseCancel:
    response_id: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class ItemTruncate:
    item_id: str
    content_index: int
    audio_end_ms: int
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutputAudioBufferClear:
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class UnknownClientEvent:
    type: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)


ClientEvent = (
    SessionUpdate
    | InputAudioAppend
    | UserText
    | FunctionCallOutput
    | ItemCreate
    | ResponseCreate
    | ResponseCancel
    | ItemTruncate
    | OutputAudioBufferClear
    | BufferEvent
    | UnknownClientEvent
)


def _bad(event_type: str, detail: str) -> ProtocolWarning:
    return ProtocolWarning(WarningKind.MISSING_FIELD, f"{event_type}: {detail}", event_type)


def _parse_item_create(message: Mapping[str, Any], event_id: str | None) -> ClientEvent | ProtocolWarning:
    item = message.get("item")
    if not isinstance(item, dict):
        return _bad("conversation.item.create", "'item' must be an object")
    if item.get("type") == "function_call_output":
        call_id, output = item.get("call_id"), item.get("output")
        if not isinstance(call_id, str) or not isinstance(output, str):
            return _bad("conversation.item.create", "function_call_output needs string call_id and output")
        return FunctionCallOutput(call_id, output, event_id)
    content = item.get("content")
    if (
        item.get("type") == "message"
        and item.get("role") == "user"
        and isinstance(content, list)
        and len(content) == 1
        and isinstance(content[0], dict)
        and content[0].get("type") == "input_text"
        and isinstance(content[0].get("text"), str)
    ):
        return UserText(content[0]["text"], event_id)
    return ItemCreate(item, event_id)


def parse_client_event(frame: str | bytes) -> ClientEvent | ProtocolWarning:
    """Parse a client event frame as a server would. Never raises; bad frames become ``ProtocolWarning``."""
    if not isinstance(frame, str):
        return ProtocolWarning(WarningKind.BINARY_FRAME, "binary frames are not client events")
    try:
        message = json.loads(frame)
    except (ValueError, RecursionError) as exc:
        return ProtocolWarning(WarningKind.INVALID_JSON, f"invalid JSON: {exc}"[:200])
    return parse_client_message(message)


def parse_client_message(message: Any) -> ClientEvent | ProtocolWarning:
    """Type an already-decoded client event (a server that bounds its JSON decoding parses the frame once and
    hands the value here). Never raises; a value that is not a client event becomes ``ProtocolWarning``."""
    if not isinstance(message, dict):
        return ProtocolWarning(WarningKind.NOT_AN_OBJECT, "client event is not a JSON object")
    event_type = message.get("type")
    if not isinstance(event_type, str):
        return ProtocolWarning(WarningKind.MISSING_TYPE, "client event has no string 'type'")
    event_id = message.get("event_id") if isinstance(message.get("event_id"), str) else None
    match event_type:
        case "session.update":
            session = message.get("session")
            if not isinstance(session, dict):
                return _bad(event_type, "'session' must be an object")
            return SessionUpdate(session, event_id)
        case "input_audio_buffer.append":
            audio = message.get("audio")
            if not isinstance(audio, str):
                return _bad(event_type, "'audio' must be a base64 string")
            try:
                return InputAudioAppend(base64.b64decode(audio, validate=True), event_id)
            except (binascii.Error, ValueError):
                return _bad(event_type, "'audio' is not valid base64")
        case "conversation.item.create":
            return _parse_item_create(message, event_id)
        case "response.create":
            response = message.get("response")
            return ResponseCreate(response if isinstance(response, dict) else None, event_id)
        case "response.cancel":
            rid = message.get("response_id")
            return ResponseCancel(rid if isinstance(rid, str) else None, event_id)
        case "conversation.item.truncate":
            item_id, index, end = message.get("item_id"), message.get("content_index"), message.get("audio_end_ms")
            if not isinstance(item_id, str) or not isinstance(index, int) or not isinstance(end, int):
                return _bad(event_type, "needs item_id, content_index and audio_end_ms")
            return ItemTruncate(item_id, index, end, event_id)
        case "output_audio_buffer.clear":
            return OutputAudioBufferClear(event_id)
        case _ if event_type in BUFFER_EVENT_TYPES:
            return parse_buffer_event(event_type, message, event_id)
        case _:
            return UnknownClientEvent(event_type, message)
