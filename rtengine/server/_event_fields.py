"""The top-level fields of each client event, checked like the API before the event is acted on.

The API refuses a client event with a field it does not define (``unknown_parameter``), without a field it needs
(``missing_required_parameter``) or with a field of the wrong type (``invalid_type``), each with the offending
``param`` and the event's ``event_id``. :func:`event_error` returns that ``error`` event, or None when the event may
go on: so every client event the server does not process gets an ``error`` (never a silent drop). The fields are
the GA ``RealtimeClientEvent`` models' of the ``openai`` package.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ._shapes import error_event
from ._validate import Invalid, wrong_type

__all__ = ["CLIENT_EVENT_FIELDS", "event_error"]

#: For each client event type: its fields besides ``type`` and ``event_id``, each with the JSON kind it must have
#: and whether it is required.
CLIENT_EVENT_FIELDS: Final[dict[str, dict[str, tuple[type, str, bool]]]] = {
    "session.update": {"session": (dict, "an object", True)},
    "input_audio_buffer.append": {"audio": (str, "a string", True)},
    "input_audio_buffer.commit": {},
    "input_audio_buffer.clear": {},
    "output_audio_buffer.clear": {},
    "conversation.item.create": {"item": (dict, "an object", True), "previous_item_id": (str, "a string", False)},
    "conversation.item.delete": {"item_id": (str, "a string", True)},
    "conversation.item.retrieve": {"item_id": (str, "a string", True)},
    "conversation.item.truncate": {
        "item_id": (str, "a string", True),
        "content_index": (int, "an integer", True),
        "audio_end_ms": (int, "an integer", True),
    },
    "response.create": {"response": (dict, "an object", False)},
    "response.cancel": {"response_id": (str, "a string", False)},
}


def event_error(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """The API's ``error`` for a decoded client event whose top-level fields it refuses, or None. An event of an
    unknown ``type`` is left to the caller (the API answers those ``invalid_value`` on ``type``)."""
    fields = CLIENT_EVENT_FIELDS.get(message.get("type"))  # type: ignore[arg-type]
    if fields is None:
        return None
    raw_eid = message.get("event_id")
    eid = raw_eid if isinstance(raw_eid, str) else None
    if raw_eid is not None and eid is None:
        return _refused(wrong_type(raw_eid, "event_id", "a string"), None)
    for key in message:
        if key not in fields and key not in ("type", "event_id"):
            param = str(key)[:100]
            return error_event(f"Unknown parameter: '{param}'.", code="unknown_parameter", param=param, event_id=eid)
    for key, (kind, expected, required) in fields.items():
        value = message.get(key)
        if value is None:
            if required:
                message_text = f"Missing required parameter: '{key}'."
                return error_event(message_text, code="missing_required_parameter", param=key, event_id=eid)
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return _refused(wrong_type(value, key, expected), eid)
    return None


def _refused(problem: Invalid, eid: str | None) -> dict[str, Any]:
    return error_event(problem.message, code=problem.code, param=problem.param, event_id=eid)
