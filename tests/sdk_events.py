"""Validate server events against the official ``openai`` package's GA types (``openai.types.realtime``).

:func:`sdk_problems` picks the model of the ``RealtimeServerEvent`` union whose ``type`` Literal matches the
event, validates the event with it and then rejects every field the model does not declare, at any depth (the
SDK's models accept unknown extras silently; the real API sends none). Each problem names the event (type and
``event_id``) and the dotted path of the field.
"""

from __future__ import annotations

import typing
from functools import cache
from typing import Any

import pydantic
from openai import BaseModel as SdkModel
from openai.types.realtime import RealtimeServerEvent

__all__ = ["REAL_API_EXTRAS", "assert_sdk_valid", "sdk_model_for", "sdk_problems"]

#: Fields the real API sends that the SDK's models do not declare, by event type: accepted, nothing else is.
#: Seen in every recording of real traffic (pydantic/pydantic-ai tests/realtime/cassettes, MIT, and OpenAI's
#: OpenAPI examples): the session object carries ``object``, ``id`` and ``expires_at``; delta events carry
#: ``obfuscation`` (padding against length side channels).
_SESSION_EXTRAS = frozenset({"session.object", "session.id", "session.expires_at"})
REAL_API_EXTRAS: dict[str, frozenset[str]] = {
    "session.created": _SESSION_EXTRAS,
    "session.updated": _SESSION_EXTRAS,
    **{
        name: frozenset({"obfuscation"})
        for name in (
            "response.output_text.delta",
            "response.output_audio_transcript.delta",
            "response.function_call_arguments.delta",
            "conversation.item.input_audio_transcription.delta",
        )
    },
}


def _literal_types(model: type[SdkModel]) -> tuple[str, ...]:
    field = model.model_fields.get("type")
    if field is None:
        return ()
    return tuple(str(value) for value in typing.get_args(field.annotation))


@cache
def _models() -> dict[str, type[SdkModel]]:
    union = typing.get_args(RealtimeServerEvent)[0]  # Annotated[Union[...], PropertyInfo(...)]
    models: dict[str, type[SdkModel]] = {}
    for model in typing.get_args(union):
        for name in _literal_types(model):
            models[name] = model
    return models


def sdk_model_for(event_type: str) -> type[SdkModel] | None:
    """The SDK's model for a server event ``type`` (None when the SDK knows no such event)."""
    return _models().get(event_type)


def _extras(value: Any, path: str) -> list[str]:
    """Dotted paths of every undeclared field in a validated value."""
    found: list[str] = []
    if isinstance(value, pydantic.BaseModel):
        found += [f"{path}.{name}" if path else name for name in (value.model_extra or {})]
        for name in type(value).model_fields:
            found += _extras(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found += _extras(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += _extras(item, f"{path}.{key}")
    return found


def sdk_problems(event: Any) -> list[str]:
    """Why ``event`` (a decoded server event) is not a valid GA server event; empty when it is."""
    if not isinstance(event, dict):
        return [f"not a JSON object: {event!r:.120}"]
    name = f"{event.get('type')!r} (event_id {event.get('event_id')!r})"
    model = sdk_model_for(str(event.get("type")))
    if model is None:
        return [f"{name}: no event of this type in openai.types.realtime.RealtimeServerEvent"]
    try:
        parsed = model.model_validate(event)
    except pydantic.ValidationError as exc:
        return [
            f"{name}: field {'.'.join(str(p) for p in err['loc'])}: {err['msg']} (input {err.get('input')!r:.80})"
            for err in exc.errors()
        ]
    allowed = REAL_API_EXTRAS.get(str(event["type"]), frozenset())
    return [f"{name}: unknown field {path}" for path in _extras(parsed, "") if path not in allowed]


def assert_sdk_valid(event: Any) -> None:
    """Fail with every problem :func:`sdk_problems` finds."""
    problems = sdk_problems(event)
    assert not problems, "\n".join(problems)
