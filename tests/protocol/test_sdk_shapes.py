"""rtengine's client events and turn detection checked against the official ``openai`` SDK's GA types (strict:
every field must be one the SDK models), with the ``event_id`` rtengine now stamps on every client event."""

from __future__ import annotations

from typing import Any

import pytest

from rtengine import AudioFormat, ConversationStats, FunctionTool, SessionConfig, TurnDetection
from rtengine.protocol import (
    Brain,
    function_call_output,
    input_audio_append,
    item_truncate,
    output_audio_buffer_clear,
    response_cancel,
    response_create,
    session_update,
    user_text,
)

realtime = pytest.importorskip("openai.types.realtime")
pydantic = pytest.importorskip("pydantic")


def _extras(model: Any, path: str = "") -> list[str]:
    """Every field the SDK model did not recognise, recursively."""
    found = [f"{path}.{name}" for name in (getattr(model, "model_extra", None) or {})]
    if isinstance(model, pydantic.BaseModel):
        for name in type(model).model_fields:
            found += _extras(getattr(model, name), f"{path}.{name}")
    elif isinstance(model, list | tuple):
        for index, value in enumerate(model):
            found += _extras(value, f"{path}[{index}]")
    return found


def test_every_client_event_rtengine_sends_is_a_valid_ga_client_event_with_its_id() -> None:
    brain = Brain(ConversationStats(), truncate=True)
    session = SessionConfig(
        instructions="x",
        voice="marin",
        output_format=AudioFormat("audio/pcmu", None),
        turn_detection=TurnDetection("semantic_vad", eagerness="low", create_response=True),
        tools=(FunctionTool("lookup", "find"),),
        tool_choice="lookup",
    )
    adapter = pydantic.TypeAdapter(realtime.RealtimeClientEvent)
    for payload in (
        session_update(session),
        input_audio_append(b"\x00\x00"),
        user_text("hi"),
        function_call_output("call_1", "{}"),
        response_create(),
        response_cancel("resp_1"),
        item_truncate("item_1", 120),
        output_audio_buffer_clear(),
    ):
        stamped = brain.stamp(payload)
        event = adapter.validate_python(stamped)
        assert event.event_id == stamped["event_id"]
        assert _extras(event) == [], payload["type"]


@pytest.mark.parametrize(
    "detection",
    [
        TurnDetection(threshold=0.4, prefix_padding_ms=200, silence_duration_ms=300, idle_timeout_ms=5000),
        TurnDetection("semantic_vad", eagerness="high", interrupt_response=False),
    ],
)
def test_each_turn_detection_variant_is_the_sdks_own_model(detection: TurnDetection) -> None:
    adapter = pydantic.TypeAdapter(realtime.RealtimeAudioInputTurnDetection)
    model = adapter.validate_python(detection.to_json())
    assert type(model).__name__ == {"server_vad": "ServerVad", "semantic_vad": "SemanticVad"}[detection.type]
    assert _extras(model) == []


def test_a_mixed_turn_detection_is_what_the_sdk_would_not_model() -> None:
    """The case ``TurnDetection`` now refuses: the SDK's SemanticVad has no ``threshold`` (it lands in extras)."""
    adapter = pydantic.TypeAdapter(realtime.RealtimeAudioInputTurnDetection)
    assert _extras(adapter.validate_python({"type": "semantic_vad", "threshold": 0.5})) == [".threshold"]
