"""Validating what clients send, like the API: JSON bounds and the ``session`` of ``session.update``.

Pure functions, no I/O. :func:`load_json` parses a client body or frame with the server's bounds (nesting depth,
no ``NaN``/``Infinity``); :func:`check_session` checks a ``session`` object against the GA session schema (types,
enums, ranges, unknown keys) — the schema follows ``openai.types.realtime.RealtimeSessionCreateRequestParam``.
Each problem is an :class:`Invalid`: the API's error ``code``, ``message`` and ``param`` (``session.audio.…``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..protocol._session import IDLE_TIMEOUT_RANGE_MS

__all__ = ["MAX_JSON_DEPTH", "ClientFrame", "Invalid", "check_session", "json_depth", "load_json", "wrong_type"]

#: Deepest nesting of objects and arrays a client body or event may have (a JSON schema of a tool fits easily).
MAX_JSON_DEPTH: Final = 64


@dataclass(frozen=True, slots=True)
class Invalid:
    """One problem with a client value, as the API reports it."""

    code: str
    message: str
    param: str | None = None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_json(text: str | bytes) -> Any:
    """Parse JSON with the server's bounds; raises ``ValueError`` (with a message for the client) when the text
    is not JSON, uses ``NaN``/``Infinity``, or nests deeper than :data:`MAX_JSON_DEPTH`."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


@dataclass(frozen=True, slots=True)
class ClientFrame:
    """A client text frame, decoded once with the server's bounds (:meth:`decode`): its ``value``, or the
    ``problem`` that kept it from being JSON (then ``value`` is None)."""

    text: str
    value: Any = None
    problem: str | None = None

    @classmethod
    def decode(cls, text: str) -> ClientFrame:
        try:
            return cls(text, load_json(text))
        except ValueError as exc:
            return cls(text, None, str(exc))

    @property
    def recorded(self) -> Any:
        """What the server record keeps: the value, or the text when it was not JSON."""
        return self.text if self.problem is not None else self.value


def json_depth(value: Any) -> int:
    """How deeply objects and arrays nest in ``value`` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


# --- the schema ----------------------------------------------------------------------------------------------

Check = Callable[[Any, str], "Invalid | None"]

_JSON_NAMES: Final = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def _kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return _JSON_NAMES[type(value)]
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    return _JSON_NAMES.get(type(value), "a value")


def wrong_type(value: Any, param: str, expected: str) -> Invalid:
    """The API's ``invalid_type`` for ``param`` holding ``value`` where ``expected`` (e.g. "a string") belongs."""
    message = f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead."
    return Invalid("invalid_type", message, param)


def _quote_all(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def string(value: Any, param: str) -> Invalid | None:
    return None if isinstance(value, str) else wrong_type(value, param, "a string")


def boolean(value: Any, param: str) -> Invalid | None:
    return None if isinstance(value, bool) else wrong_type(value, param, "a boolean")


def anything(value: Any, param: str) -> Invalid | None:
    return None


def any_object(value: Any, param: str) -> Invalid | None:
    return None if isinstance(value, dict) else wrong_type(value, param, "an object")


def enum(*values: str) -> Check:
    def check(value: Any, param: str) -> Invalid | None:
        if not isinstance(value, str):
            return wrong_type(value, param, f"one of {_quote_all(values)}")
        if value not in values:
            message = f"Invalid value: '{value[:100]}'. Supported values are: {_quote_all(values)}."
            return Invalid("invalid_value", message, param)
        return None

    return check


def integer_of(*values: int) -> Check:
    def check(value: Any, param: str) -> Invalid | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return wrong_type(value, param, "an integer")
        if value not in values:
            supported = ", ".join(str(v) for v in values)
            return Invalid("invalid_value", f"Invalid value: {value}. Supported values are: {supported}.", param)
        return None

    return check


def number(low: float, high: float, *, integer: bool = False) -> Check:
    what = "integer" if integer else "decimal"

    def check(value: Any, param: str) -> Invalid | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
            return wrong_type(value, param, f"an {what}" if integer else "a decimal")
        if value < low:
            message = f"Invalid '{param}': {what} below minimum value. Expected a value >= {low:g}, but got {value:g}."
            return Invalid(f"{what}_below_min_value", message, param)
        if value > high:
            message = f"Invalid '{param}': {what} above maximum value. Expected a value <= {high:g}, but got {value:g}."
            return Invalid(f"{what}_above_max_value", message, param)
        return None

    return check


def nullable(inner: Check) -> Check:
    def check(value: Any, param: str) -> Invalid | None:
        return None if value is None else inner(value, param)

    return check


def either(literal: Check, other: Check) -> Check:
    """A string literal (checked by ``literal``) or, for any non-string, ``other``."""

    def check(value: Any, param: str) -> Invalid | None:
        return literal(value, param) if isinstance(value, str) else other(value, param)

    return check


def array(item: Check, *, max_items: int = 128) -> Check:
    def check(value: Any, param: str) -> Invalid | None:
        if not isinstance(value, list):
            return wrong_type(value, param, "an array")
        if len(value) > max_items:
            message = f"Invalid '{param}': array too long. Expected an array with maximum length {max_items}."
            return Invalid("array_above_max_length", message, param)
        for index, element in enumerate(value):
            if (problem := item(element, f"{param}[{index}]")) is not None:
                return problem
        return None

    return check


def obj(fields: Mapping[str, Check], required: tuple[str, ...] = ()) -> Check:
    def check(value: Any, param: str) -> Invalid | None:
        if not isinstance(value, dict):
            return wrong_type(value, param, "an object")
        for key, element in value.items():
            spec = fields.get(key)
            if spec is None:
                return Invalid("unknown_parameter", f"Unknown parameter: '{param}.{key}'.", f"{param}.{key}")
            if (problem := spec(element, f"{param}.{key}")) is not None:
                return problem
        for key in required:
            if key not in value:
                message = f"Missing required parameter: '{param}.{key}'."
                return Invalid("missing_required_parameter", message, f"{param}.{key}")
        return None

    return check


def tagged(variants: Mapping[str, Check]) -> Check:
    """An object whose ``type`` picks its schema (each variant lists ``type`` among its fields)."""
    names = enum(*variants)

    def check(value: Any, param: str) -> Invalid | None:
        if not isinstance(value, dict):
            return wrong_type(value, param, "an object")
        if "type" not in value:
            message = f"Missing required parameter: '{param}.type'."
            return Invalid("missing_required_parameter", message, f"{param}.type")
        if (problem := names(value["type"], f"{param}.type")) is not None:
            return problem
        return variants[value["type"]](value, param)

    return check


_BOTH_VADS: Final = {"type": string, "create_response": boolean, "interrupt_response": boolean}
_TURN_DETECTION: Final = tagged(
    {
        "server_vad": obj(
            {
                **_BOTH_VADS,
                "threshold": number(0.0, 1.0),
                "prefix_padding_ms": number(0, 10_000, integer=True),
                "silence_duration_ms": number(0, 10_000, integer=True),
                "idle_timeout_ms": nullable(number(*IDLE_TIMEOUT_RANGE_MS, integer=True)),
            }
        ),
        "semantic_vad": obj({**_BOTH_VADS, "eagerness": enum("low", "medium", "high", "auto")}),
    }
)
_FORMAT: Final = tagged(
    {
        "audio/pcm": obj({"type": string, "rate": integer_of(24000)}),
        "audio/pcmu": obj({"type": string}),
        "audio/pcma": obj({"type": string}),
    }
)
_TRANSCRIPTION: Final = obj(
    {
        "model": string,
        "language": string,
        "prompt": string,
        "languages": array(string),
        "keywords": array(string),
        "delay": enum("minimal", "low", "medium", "high", "xhigh"),
    }
)
_INPUT: Final = obj(
    {
        "format": _FORMAT,
        "noise_reduction": nullable(obj({"type": enum("near_field", "far_field"), "strength": number(0.0, 1.0)})),
        "transcription": nullable(_TRANSCRIPTION),
        "turn_detection": nullable(_TURN_DETECTION),
    }
)
_OUTPUT: Final = obj(
    {"format": _FORMAT, "speed": number(0.25, 1.5), "voice": either(string, obj({"id": string}, ("id",)))}
)
_TOOL: Final = tagged(
    {
        "function": obj({"type": string, "name": string, "description": string, "parameters": any_object}),
        "mcp": anything,
    }
)
_SESSION_FIELDS: Final = {
    "type": enum("realtime", "transcription"),
    "model": string,
    "instructions": string,
    "output_modalities": array(enum("text", "audio"), max_items=2),
    "audio": obj({"input": _INPUT, "output": _OUTPUT}),
    "include": nullable(array(enum("item.input_audio_transcription.logprobs"))),
    "max_output_tokens": either(enum("inf"), number(1, 4096, integer=True)),
    "tools": array(_TOOL),
    "tool_choice": either(enum("none", "auto", "required"), any_object),
    "parallel_tool_calls": boolean,
    "tracing": nullable(either(enum("auto"), obj({"group_id": string, "metadata": anything, "workflow_name": string}))),
    "truncation": either(
        enum("auto", "disabled"),
        obj(
            {"type": enum("retention_ratio"), "retention_ratio": number(0.0, 1.0), "token_limits": any_object},
            ("type", "retention_ratio"),
        ),
    ),
    "prompt": nullable(any_object),
    "reasoning": obj({"effort": enum("minimal", "low", "medium", "high", "xhigh")}),
}
_SESSION: Final = obj(_SESSION_FIELDS)


def check_session(session: Any, *, require_type: bool = True) -> Invalid | None:
    """The first problem of a ``session.update``'s ``session`` (``param`` starts with ``session``), else None.

    ``id`` is refused (the server names the session); a missing ``type`` is ``missing_required_parameter`` when
    ``require_type`` (a call-creation ``session`` part may leave it out).
    """
    if isinstance(session, dict):
        if "id" in session:
            return Invalid("unknown_parameter", "Unknown parameter: 'session.id'.", "session.id")
        if require_type and "type" not in session:
            return Invalid("missing_required_parameter", "Missing required parameter: 'session.type'.", "session.type")
    if (problem := _SESSION(session, "session")) is not None:
        return problem
    modalities = session.get("output_modalities")
    if isinstance(modalities, list) and len(set(modalities)) > 1:
        message = "Invalid 'session.output_modalities': 'text' and 'audio' cannot be requested together."
        return Invalid("invalid_value", message, "session.output_modalities")
    return None
