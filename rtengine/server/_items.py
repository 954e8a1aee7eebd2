"""Validating the item of a ``conversation.item.create`` like the API, instead of echoing anything back.

:func:`item_error` returns the API's ``error`` event for an item it would refuse (``invalid_value``,
``unknown_parameter``, ``missing_required_parameter`` with the offending ``param``), or None. The message of a
content part of the wrong type for its role is the API's: "Invalid value: 'text'. Value must be 'output_text'."
with ``param`` ``item.content[0].type``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Final

from ._shapes import error_event
from ._validate import wrong_type

__all__ = ["create_error", "item_error", "request_error"]

#: The fields each item type may carry (``id``/``object``/``status`` on every one).
_COMMON: Final = frozenset({"id", "type", "object", "status"})
ITEM_FIELDS: Final[dict[str, frozenset[str]]] = {
    "message": _COMMON | {"role", "content"},
    "function_call": _COMMON | {"name", "call_id", "arguments"},
    "function_call_output": _COMMON | {"call_id", "output"},
}
#: The content part types each role may use, in the API's order.
PART_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "user": ("input_text", "input_audio", "input_image"),
    "system": ("input_text",),
    # The API refuses assistant audio from clients: "Invalid value: 'output_audio'. Value must be 'output_text'."
    "assistant": ("output_text",),
}
PART_FIELDS: Final[dict[str, frozenset[str]]] = {
    "input_text": frozenset({"type", "text"}),
    "input_audio": frozenset({"type", "audio", "transcript"}),
    "input_image": frozenset({"type", "image_url", "detail"}),
    "output_text": frozenset({"type", "text"}),
    "output_audio": frozenset({"type", "audio", "transcript"}),
}
#: The string fields each item or part type needs.
REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "function_call": ("name", "call_id", "arguments"),
    "function_call_output": ("call_id", "output"),
    "input_text": ("text",),
    "output_text": ("text",),
}


def _supported(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    if len(quoted) == 1:
        return f"Value must be {quoted[0]}."
    return f"Supported values are: {', '.join(quoted[:-1])}, and {quoted[-1]}."


def _invalid(value: Any, allowed: tuple[str, ...], param: str, eid: str | None) -> dict[str, Any]:
    message = f"Invalid value: '{value}'. {_supported(allowed)}"
    return error_event(message, code="invalid_value", param=param, event_id=eid)


def _unknown(param: str, eid: str | None) -> dict[str, Any]:
    return error_event(f"Unknown parameter: '{param}'.", code="unknown_parameter", param=param, event_id=eid)


def _missing(param: str, eid: str | None) -> dict[str, Any]:
    message = f"Missing required parameter: '{param}'."
    return error_event(message, code="missing_required_parameter", param=param, event_id=eid)


def _check_fields(
    obj: Mapping[str, Any], kind: str, allowed: frozenset[str], where: str, eid: str | None
) -> dict[str, Any] | None:
    for key in obj:
        if key not in allowed:
            return _unknown(f"{where}.{key}", eid)
    for key in REQUIRED.get(kind, ()):
        if key not in obj:
            return _missing(f"{where}.{key}", eid)
        if not isinstance(obj[key], str):
            message = f"Invalid type for '{where}.{key}': expected a string."
            return error_event(message, code="invalid_type", param=f"{where}.{key}", event_id=eid)
    return None


def item_error(item: Mapping[str, Any], eid: str | None) -> dict[str, Any] | None:
    """The ``error`` event the API answers for ``item`` (the ``item`` of a ``conversation.item.create``), or
    None when it is a valid item."""
    kind = item.get("type")
    if kind not in ITEM_FIELDS:
        if kind is None:
            return _missing("item.type", eid)
        return _invalid(kind, tuple(ITEM_FIELDS), "item.type", eid)
    error = _check_fields(item, kind, ITEM_FIELDS[kind], "item", eid)
    if error is not None or kind != "message":
        return error
    role = item.get("role")
    if role not in PART_TYPES:
        return _missing("item.role", eid) if role is None else _invalid(role, tuple(PART_TYPES), "item.role", eid)
    content = item.get("content")
    if not isinstance(content, list):
        return _missing("item.content", eid)
    for index, part in enumerate(content):
        where = f"item.content[{index}]"
        if not isinstance(part, dict):
            message = f"Invalid type for '{where}': expected an object."
            return error_event(message, code="invalid_type", param=where, event_id=eid)
        part_type = part.get("type")
        if part_type not in PART_TYPES[role]:
            return _invalid(part_type, PART_TYPES[role], f"{where}.type", eid)
        error = _check_fields(part, part_type, PART_FIELDS[part_type], where, eid)
        if error is None and part_type == "input_audio":
            error = _audio_error(part.get("audio"), f"{where}.audio", eid)
        if error is not None:
            return error
    return None


def _audio_error(audio: Any, param: str, eid: str | None) -> dict[str, Any] | None:
    """The API's error for an ``input_audio`` part whose ``audio`` is not base64 (as for
    ``input_audio_buffer.append``); an absent ``audio`` is allowed (a part may carry only a transcript)."""
    if audio is None:
        return None
    if isinstance(audio, str):
        try:
            base64.b64decode(audio, validate=True)
        except ValueError:
            pass
        else:
            return None
    message = f"Invalid value for '{param}': '{param.rsplit('.', 1)[-1]}' is not valid base64."
    return error_event(message, code="invalid_value", param=param, event_id=eid)


def create_error(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``error`` event for a ``conversation.item.create`` event (already decoded) whose item the API refuses;
    None for any other event (the event parser answers those)."""
    if message.get("type") != "conversation.item.create":
        return None
    item, eid = message.get("item"), message.get("event_id")
    if not isinstance(item, dict):
        return None
    return item_error(item, eid if isinstance(eid, str) else None)


#: The client events that name an existing item by ``item_id``.
ITEM_ID_EVENTS: Final = frozenset({"conversation.item.delete", "conversation.item.retrieve"})


def request_error(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``error`` event the API answers a decoded client event with before acting on it: an item
    ``conversation.item.create`` refuses (:func:`create_error`), or a ``conversation.item.delete``/``.retrieve``
    without an ``item_id`` (``missing_required_parameter``) or with one that is not a string (``invalid_type``).
    None when the event may go on."""
    if message.get("type") not in ITEM_ID_EVENTS:
        return create_error(message)
    eid = message.get("event_id") if isinstance(message.get("event_id"), str) else None
    if "item_id" not in message or message["item_id"] is None:
        return _missing("item_id", eid)
    if not isinstance(message["item_id"], str):
        wrong = wrong_type(message["item_id"], "item_id", "a string")
        return error_event(wrong.message, code=wrong.code, param=wrong.param, event_id=eid)
    return None
