"""The shapes of what the local server sends: ids, GA server ``error`` events, the default session, encoding.

Pure functions, no I/O. Every server event leaves with ``type`` first and a fresh ``event_id`` right after it
(:func:`with_event_id`), encoded as compact JSON (:func:`encode`).
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

from ._ids import new_id

__all__ = [
    "CLIENT_EVENT_TYPES",
    "ERROR_MESSAGES",
    "SUPPORTED_CLIENT_EVENTS",
    "TURN_DETECTION_DEFAULTS",
    "default_session",
    "encode",
    "error_event",
    "merge",
    "new_id",
    "with_event_id",
]

#: The API's messages for the error codes the server emits (or injects) without a message of its own.
ERROR_MESSAGES: Final = {
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
#: The GA client event types (those of the ``openai`` SDK's ``RealtimeClientEvent`` union), as the API lists them.
CLIENT_EVENT_TYPES: Final = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
)
SUPPORTED_CLIENT_EVENTS: Final = ", ".join(CLIENT_EVENT_TYPES)


#: What the API shows for each turn detection type when a client names only the type (the server's default session
#: has the first one).
TURN_DETECTION_DEFAULTS: Final[dict[str, dict[str, Any]]] = {
    "server_vad": {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    },
    "semantic_vad": {
        "type": "semantic_vad",
        "eagerness": "auto",
        "create_response": True,
        "interrupt_response": True,
    },
}


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
                "turn_detection": dict(TURN_DETECTION_DEFAULTS["server_vad"]),
            },
            "output": {"format": dict(pcm), "voice": "alloy", "speed": 1.0},
        },
    }


def with_event_id(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with a fresh ``event_id`` right after its ``type`` (every server event has both)."""
    return {"type": event["type"], "event_id": new_id("event"), **{k: v for k, v in event.items() if k != "type"}}


def encode(event: dict[str, Any]) -> str:
    """Compact JSON, as the server puts it on the wire: standard JSON only (``NaN``/``Infinity`` raise
    ``ValueError``, a bug the guard answers with ``server_error``, rather than leaving as non-standard JSON)."""
    return json.dumps(event, separators=(",", ":"), allow_nan=False)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``update`` into a copy of ``base`` (objects merge, everything else replaces)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
