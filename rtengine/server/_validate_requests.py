"""Validating the requests of ``response.create`` and ``response.cancel``, and a ``session.update``'s type.

Pure functions, no I/O, built from the session validator's checks (:mod:`~rtengine.server._validate`).
:func:`check_response` checks the ``response`` object of ``response.create`` against the GA schema
(``openai.types.realtime.RealtimeResponseCreateParams``): unknown fields, types, ``max_output_tokens`` in
1..4096 or ``"inf"``, one output modality, and ``metadata`` as the SDK's ``Metadata`` documents it ("Set of 16
key-value pairs … Keys are strings with a maximum length of 64 characters. Values are strings with a maximum
length of 512 characters"). :func:`check_session_type` refuses turning a realtime session into a transcription
one, as the API does. :func:`out_of_band` and :func:`input_text` read an accepted request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ._validate import (
    _FORMAT,
    _TOOL,
    Invalid,
    any_object,
    array,
    boolean,
    either,
    enum,
    nullable,
    number,
    obj,
    string,
    wrong_type,
)

__all__ = ["check_response", "check_session_type", "input_text", "out_of_band"]

#: The SDK's ``Metadata``: at most 16 pairs, keys up to 64 characters, string values up to 512.
METADATA_PAIRS: Final = 16
METADATA_KEY_CHARS: Final = 64
METADATA_VALUE_CHARS: Final = 512

#: The API's answer to ``session.update`` with ``type: transcription`` on a realtime session (reported from the
#: live API, e.g. https://github.com/crmitchelmore/justspeaktoit/pull/427: "invalid_parameter: Passing a
#: transcription session update event to a realtime session is not allowed.").
TYPE_SWITCH_MESSAGE: Final = "Passing a transcription session update event to a realtime session is not allowed."


def _metadata(value: Any, param: str) -> Invalid | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        return wrong_type(value, param, "an object")
    if len(value) > METADATA_PAIRS:
        message = (
            f"Invalid '{param}': too many properties. Expected an object with at most {METADATA_PAIRS} "
            f"properties, but got an object with {len(value)} properties instead."
        )
        return Invalid("object_above_max_properties", message, param)
    for key, element in value.items():
        where = f"{param}.{key}"
        if len(key) > METADATA_KEY_CHARS:
            message = f"Invalid '{param}': property name too long. Expected at most {METADATA_KEY_CHARS} characters."
            return Invalid("invalid_value", message, param)
        if not isinstance(element, str):
            return wrong_type(element, where, "a string")
        if len(element) > METADATA_VALUE_CHARS:
            message = (
                f"Invalid '{where}': string too long. Expected a string with maximum length "
                f"{METADATA_VALUE_CHARS}, but got a string with length {len(element)} instead."
            )
            return Invalid("string_above_max_length", message, where)
    return None


_RESPONSE: Final = obj(
    {
        "audio": obj({"output": obj({"format": _FORMAT, "voice": either(string, obj({"id": string}, ("id",)))})}),
        "conversation": nullable(string),
        "input": nullable(array(any_object, max_items=4096)),
        "instructions": nullable(string),
        "max_output_tokens": nullable(either(enum("inf"), number(1, 4096, integer=True))),
        "metadata": _metadata,
        "output_modalities": nullable(array(enum("text", "audio"), max_items=2)),
        "parallel_tool_calls": nullable(boolean),
        "prompt": nullable(any_object),
        "reasoning": nullable(obj({"effort": enum("minimal", "low", "medium", "high", "xhigh")})),
        "tool_choice": nullable(either(enum("none", "auto", "required"), any_object)),
        "tools": nullable(array(_TOOL)),
    }
)


def check_response(response: Any) -> Invalid | None:
    """The first problem of a ``response.create``'s ``response`` (``param`` starts with ``response``), else None."""
    if (problem := _RESPONSE(response, "response")) is not None:
        return problem
    modalities = response.get("output_modalities")
    if isinstance(modalities, list) and len(set(modalities)) > 1:
        message = "Invalid 'response.output_modalities': 'text' and 'audio' cannot be requested together."
        return Invalid("invalid_value", message, "response.output_modalities")
    return None


def check_session_type(current: Mapping[str, Any], update: Any) -> Invalid | None:
    """The API's refusal when ``update`` (a valid ``session``) would turn the ``current`` realtime session into a
    transcription session, else None."""
    if isinstance(update, dict) and update.get("type") == "transcription" and current.get("type") != "transcription":
        return Invalid("invalid_parameter", TYPE_SWITCH_MESSAGE, "session.type")
    return None


def out_of_band(request: Mapping[str, Any]) -> bool:
    """Whether an accepted ``response`` request stays out of the conversation (``conversation: "none"``)."""
    return request.get("conversation") == "none"


def input_text(request: Mapping[str, Any]) -> str | None:
    """The last user text of an accepted request's own ``input`` (its context instead of the conversation's),
    None when it has no ``input`` or no user text in it."""
    text = None
    for item in request.get("input") or ():
        if item.get("type") != "message" or item.get("role") != "user":
            continue
        for part in item.get("content") or ():
            if isinstance(part, dict) and part.get("type") == "input_text" and isinstance(part.get("text"), str):
                text = part["text"]
    return text
