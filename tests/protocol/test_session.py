"""SessionConfig: the GA session shapes for session.update and for call creation."""

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest

import rtengine
from rtengine import AudioFormat, ConfigError, FunctionTool, SessionConfig, TurnDetection


def test_full_conversational_session_matches_ga_shape() -> None:
    config = SessionConfig(
        model="gpt-realtime",
        instructions="Be brief.",
        voice="marin",
        output_modalities=("audio",),
        input_format=AudioFormat(),
        output_format=AudioFormat(),
        transcription_model="gpt-4o-mini-transcribe",
        noise_reduction="near_field",
        turn_detection=TurnDetection(create_response=True, interrupt_response=True, silence_duration_ms=500),
        tools=(FunctionTool("lookup", "Look something up"),),
        tool_choice="auto",
    )
    assert config.update_payload() == {
        "type": "realtime",
        "instructions": "Be brief.",
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "gpt-4o-mini-transcribe"},
                "noise_reduction": {"type": "near_field"},
                "turn_detection": {
                    "type": "server_vad",
                    "silence_duration_ms": 500,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
        },
        "tools": [
            {
                "type": "function",
                "name": "lookup",
                "description": "Look something up",
                "parameters": {"type": "object", "properties": {}},
            }
        ],
        "tool_choice": "auto",
    }


def test_update_payload_never_has_id_or_model_and_call_session_adds_model() -> None:
    config = SessionConfig(model="gpt-realtime-mini", instructions="x")
    update = config.update_payload()
    assert "model" not in update
    assert "id" not in update
    call = config.call_session()
    assert call["model"] == "gpt-realtime-mini"
    assert "id" not in call
    assert json.loads(config.call_session_json()) == call


def test_absent_fields_are_omitted_not_null() -> None:
    payload = SessionConfig().update_payload()
    assert payload == {"type": "realtime"}
    assert "null" not in json.dumps(payload)


def test_turn_detection_disabled_is_the_one_explicit_null() -> None:
    payload = SessionConfig(turn_detection=rtengine.TURN_DETECTION_DISABLED).update_payload()
    assert payload["audio"]["input"]["turn_detection"] is None


def test_transcription_mode_omits_output_audio_and_instructions() -> None:
    config = SessionConfig(type="transcription", input_format=AudioFormat(), transcription_model="whisper-1")
    assert config.update_payload() == {
        "type": "transcription",
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "transcription": {"model": "whisper-1"}}},
    }


def test_tool_choice_naming_a_function() -> None:
    config = SessionConfig(tools=(FunctionTool("lookup"),), tool_choice="lookup")
    assert config.update_payload()["tool_choice"] == {"type": "function", "name": "lookup"}


def test_g711_formats_have_no_rate() -> None:
    assert AudioFormat("audio/pcmu", None).to_json() == {"type": "audio/pcmu"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": ""}, "model"),
        ({"output_modalities": ("audio", "text")}, "output_modalities"),
        ({"output_modalities": ("video",)}, "output_modalities"),
        ({"tool_choice": "missing"}, "tool_choice"),
        ({"tools": (FunctionTool("a"), FunctionTool("a"))}, "unique"),
        ({"extra": {"model": "x"}}, "extra"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"type": "transcription", "instructions": "x"}, "transcription session cannot set instructions"),
        ({"turn_detection": "off"}, "turn_detection"),
    ],
)
def test_invalid_configs_fail_where_they_are_built(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SessionConfig(**kwargs)  # type: ignore[arg-type]


def test_invalid_parts_fail_too() -> None:
    with pytest.raises(ConfigError, match="rate"):
        AudioFormat("audio/pcm", 16000)
    with pytest.raises(ConfigError, match="tool name"):
        FunctionTool("has space")
    with pytest.raises(ConfigError, match="threshold"):
        TurnDetection(threshold=2.0)


@pytest.mark.parametrize("idle_timeout_ms", [100, 4_999, 30_001])
def test_an_idle_timeout_the_server_refuses_is_a_config_error(idle_timeout_ms: int) -> None:
    """The API (and the local server) accept ``idle_timeout_ms`` in 5,000..30,000; outside it the mistake is a
    ``ConfigError`` at configuration, not a fatal server error closing the conversation at start."""
    with pytest.raises(rtengine.ConfigError, match="idle_timeout_ms"):
        SessionConfig(turn_detection=TurnDetection(type="server_vad", idle_timeout_ms=idle_timeout_ms))


@pytest.mark.parametrize("idle_timeout_ms", [5_000, 30_000])
def test_the_idle_timeouts_at_the_ends_of_the_range_are_sent(idle_timeout_ms: int) -> None:
    detection = TurnDetection(idle_timeout_ms=idle_timeout_ms).to_json()
    assert detection == {"type": "server_vad", "idle_timeout_ms": idle_timeout_ms}


def test_extra_is_merged_last() -> None:
    payload = SessionConfig(extra={"tracing": "auto"}).update_payload()
    assert payload["tracing"] == "auto"


def test_the_client_renders_a_session_once() -> None:
    import rtengine

    client = rtengine.RealtimeClient("http://127.0.0.1:1/v1", api_key="k")
    first = SessionConfig(instructions="a")
    rendered = client.session_json(first)
    assert client.session_json(first) is rendered
    assert json.loads(client.session_json(SessionConfig(instructions="b")))["instructions"] == "b"


@pytest.mark.parametrize(
    ("kwargs", "foreign"),
    [
        ({"type": "semantic_vad", "threshold": 0.5}, "threshold"),
        ({"type": "semantic_vad", "silence_duration_ms": 500, "prefix_padding_ms": 300}, "prefix_padding_ms"),
        ({"type": "semantic_vad", "idle_timeout_ms": 6000}, "idle_timeout_ms"),
        ({"type": "server_vad", "eagerness": "high"}, "eagerness"),
        ({"eagerness": "low"}, "eagerness"),  # server_vad is the default type
    ],
)
def test_turn_detection_rejects_the_other_variants_fields(kwargs: dict[str, object], foreign: str) -> None:
    """The SDK models ServerVad and SemanticVad separately; the API would reject (or ignore) a mixed object."""
    with pytest.raises(ConfigError, match=f"does not take .*{foreign}"):
        TurnDetection(**kwargs)  # type: ignore[arg-type]


def test_each_vad_variant_keeps_its_own_and_the_shared_fields() -> None:
    semantic = TurnDetection("semantic_vad", eagerness="high", create_response=True, interrupt_response=False)
    assert semantic.to_json() == {
        "type": "semantic_vad",
        "create_response": True,
        "interrupt_response": False,
        "eagerness": "high",
    }
    server = TurnDetection(threshold=0.6, prefix_padding_ms=200, silence_duration_ms=400, idle_timeout_ms=6000)
    assert server.to_json() == {
        "type": "server_vad",
        "threshold": 0.6,
        "prefix_padding_ms": 200,
        "silence_duration_ms": 400,
        "idle_timeout_ms": 6000,
    }


def test_a_config_is_immutable_all_the_way_down() -> None:
    """``extra`` and a tool's ``parameters`` are read-only copies: the caller's dicts changed later change nothing
    (a client encodes a session's JSON once), and the config's own refuse changes, in copies too."""
    extra: dict[str, Any] = {"tracing": {"workflow_name": "desk", "tags": ["a"]}}
    parameters: dict[str, Any] = {"type": "object", "required": ["city"]}
    config = SessionConfig(extra=extra, tools=(FunctionTool("weather", parameters=parameters),))
    before = config.call_session_json()
    extra["tracing"]["workflow_name"] = "other"
    extra["model"] = "sneaked-past-the-check"
    parameters["required"].append("country")
    assert config.call_session_json() == before
    assert config.extra == {"tracing": {"workflow_name": "desk", "tags": ["a"]}}
    assert config.extra is not None
    extra_now, parameters_now = config.extra, config.tools[0].parameters
    changes: list[Callable[[], object]] = [
        lambda: extra_now["tracing"].update(workflow_name="x"),
        lambda: extra_now["tracing"]["tags"].append("b"),
        lambda: parameters_now["required"].clear(),
    ]
    for change in changes:
        with pytest.raises(TypeError, match="read-only"):
            change()
    for copied in (copy.deepcopy(config), pickle.loads(pickle.dumps(config))):
        assert copied == config
        assert copied.extra is not None
        with pytest.raises(TypeError, match="read-only"):
            copied.extra["tracing"]["tags"].append("b")
    assert json.loads(before)["tracing"] == {"workflow_name": "desk", "tags": ["a"]}
