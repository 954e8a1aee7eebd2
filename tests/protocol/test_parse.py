"""The server-event parser: every §7.2 row, the warnings, and a never-raises property."""

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rtengine import ErrorClass
from rtengine.events import (
    AudioOut,
    InputTranscriptDelta,
    InputTranscriptDone,
    ItemAdded,
    ItemDone,
    OutputAudioStarted,
    OutputTranscriptDelta,
    OutputTranscriptDone,
    ProtocolWarning,
    RateLimits,
    ResponseCancelled,
    ResponseCreated,
    ResponseDone,
    ServerErrorEvent,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    UnknownEvent,
    WarningKind,
)
from rtengine.protocol import parse_server_event


def parse(event: dict[str, Any]) -> object:
    return parse_server_event(json.dumps(event))


def test_parse_session_updated_event() -> None:
    event = parse({"type": "session.updated", "event_id": "e1", "session": {"id": "sess_1", "instructions": "hi"}})
    assert event == SessionUpdated("sess_1", "hi", event_id="e1")


def test_parse_session_created_keeps_expiry() -> None:
    event = parse({"type": "session.created", "session": {"id": "sess_1", "expires_at": 1700}})
    assert isinstance(event, SessionCreated)
    assert event.expires_at == 1700


def test_session_updated_without_id_is_a_warning_not_an_event() -> None:
    event = parse({"type": "session.updated", "session": {}})
    assert isinstance(event, ProtocolWarning)
    assert event.kind is WarningKind.MISSING_FIELD
    assert event.type == "session.updated"


def test_parse_conversation_item_added_and_created_events() -> None:
    item = {"id": "item_1", "type": "message", "role": "user"}
    assert parse({"type": "conversation.item.added", "item": item}) == ItemAdded("item_1")
    assert parse({"type": "conversation.item.created", "item": item}) == ItemAdded("item_1")


def test_parse_conversation_item_done_event() -> None:
    event = parse({"type": "conversation.item.done", "item": {"id": "item_2", "type": "message"}})
    assert event == ItemDone("item_2")


def test_parse_handoff_tool_call_event() -> None:
    item = {"id": "item_3", "type": "function_call", "call_id": "call_9", "name": "handoff", "arguments": '{"a":1}'}
    event = parse({"type": "conversation.item.done", "item": item})
    assert event == ToolCall("call_9", "handoff", '{"a":1}', item_id="item_3")
    assert isinstance(event, ToolCall)
    assert event.parsed_arguments() == {"a": 1}


def test_parse_noop_tool_call_event_from_arguments_done() -> None:
    event = parse(
        {"type": "response.function_call_arguments.done", "call_id": "call_1", "item_id": "i", "arguments": "{}"}
    )
    assert event == ToolCall("call_1", None, "{}", item_id="i")


def test_parse_output_audio_delta_defaults_audio_shape() -> None:
    event = parse({"type": "response.output_audio.delta", "delta": "AAAA"})
    assert event == AudioOut("AAAA", sample_rate=24000, num_channels=1, samples_per_channel=None)
    assert isinstance(event, AudioOut)
    assert event.pcm() == b"\x00\x00\x00"


def test_parse_response_audio_delta_with_item_id() -> None:
    event = parse(
        {
            "type": "response.audio.delta",
            "delta": "AAA=",
            "item_id": "item_a",
            "response_id": "resp_1",
            "sample_rate": 24000,
            "channels": 1,
            "samples_per_channel": 512,
        }
    )
    assert event == AudioOut("AAA=", "item_a", "resp_1", 24000, 1, 512)


def test_audio_delta_without_delta_is_a_warning() -> None:
    assert isinstance(parse({"type": "response.output_audio.delta"}), ProtocolWarning)


def test_parse_speech_events() -> None:
    assert parse({"type": "input_audio_buffer.speech_started", "item_id": "i", "audio_start_ms": 5}) == SpeechStarted(
        "i", 5
    )
    assert parse({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 9}) == SpeechStopped(None, 9)


def test_parse_response_created_done_cancelled_events() -> None:
    assert parse({"type": "response.created", "response": {"id": "resp_1"}}) == ResponseCreated("resp_1")
    assert parse({"type": "response.created", "response_id": "resp_2"}) == ResponseCreated("resp_2")
    done = parse({"type": "response.done", "response": {"id": "resp_1", "status": "cancelled"}})
    assert done == ResponseDone("resp_1", "cancelled")
    assert parse({"type": "response.cancelled", "response_id": "resp_3"}) == ResponseCancelled("resp_3")


def test_parse_input_audio_transcription_events() -> None:
    delta = {"type": "conversation.item.input_audio_transcription.delta", "item_id": "i", "delta": "hel"}
    assert parse(delta) == InputTranscriptDelta("hel", "i")
    done = {"type": "conversation.item.input_audio_transcription.completed", "transcript": "hello"}
    assert parse(done) == InputTranscriptDone("hello")


def test_parse_output_transcript_and_text_events() -> None:
    assert parse({"type": "response.output_audio_transcript.delta", "delta": "he"}) == OutputTranscriptDelta("he")
    assert parse({"type": "response.output_audio_transcript.done", "transcript": "hey"}) == OutputTranscriptDone("hey")
    assert parse({"type": "response.output_text.delta", "delta": "wo"}) == OutputTranscriptDelta("wo")
    assert parse({"type": "response.output_text.done", "text": "hello world"}) == OutputTranscriptDone("hello world")


def test_parse_error_events_with_classification() -> None:
    fatal = parse({"type": "error", "error": {"message": "upstream boom", "code": "server_error", "type": "server"}})
    assert isinstance(fatal, ServerErrorEvent)
    assert fatal.message == "upstream boom"
    assert fatal.fatal
    assert fatal.error_class is ErrorClass.FATAL
    benign = parse({"type": "error", "error": {"message": "x", "code": "response_cancel_not_active"}})
    assert isinstance(benign, ServerErrorEvent)
    assert not benign.fatal
    top_level = parse({"type": "error", "message": "top"})
    assert isinstance(top_level, ServerErrorEvent)
    assert top_level.message == "top"
    serialized = parse({"type": "error", "error": {"code": "weird"}})
    assert isinstance(serialized, ServerErrorEvent)
    assert serialized.message == '{"code":"weird"}'
    assert isinstance(parse({"type": "error"}), ProtocolWarning)


def test_parse_rate_limits_and_playback_events() -> None:
    event = parse(
        {
            "type": "rate_limits.updated",
            "rate_limits": [{"name": "tokens", "limit": 10, "remaining": 4, "reset_seconds": 1.5}, "junk"],
        }
    )
    assert isinstance(event, RateLimits)
    assert [(r.name, r.limit, r.remaining, r.reset_seconds) for r in event.limits] == [("tokens", 10, 4, 1.5)]
    assert parse({"type": "output_audio_buffer.started", "response_id": "r"}) == OutputAudioStarted("r")


def test_wrongly_typed_optional_field_is_absent() -> None:
    event = parse({"type": "response.output_audio.delta", "delta": "AA==", "item_id": 5, "sample_rate": "fast"})
    assert event == AudioOut("AA==", None, sample_rate=24000)


def test_unknown_and_unmapped_types_are_unknown_events() -> None:
    unknown = parse({"type": "vendor.thing", "x": 1})
    assert isinstance(unknown, UnknownEvent)
    assert unknown.type == "vendor.thing"
    assert not unknown.documented
    assert unknown.raw["x"] == 1
    unmapped = parse({"type": "response.output_item.added"})
    assert isinstance(unmapped, UnknownEvent)
    assert unmapped.documented


def test_bad_frames_are_warnings() -> None:
    cases = {
        "{not json": WarningKind.INVALID_JSON,
        "[1, 2]": WarningKind.NOT_AN_OBJECT,
        '{"no": "type"}': WarningKind.MISSING_TYPE,
        '{"type": 7}': WarningKind.MISSING_TYPE,
    }
    for frame, kind in cases.items():
        event = parse_server_event(frame)
        assert isinstance(event, ProtocolWarning)
        assert event.kind is kind
    binary = parse_server_event(b"\x00\x01")
    assert isinstance(binary, ProtocolWarning)
    assert binary.kind is WarningKind.BINARY_FRAME
    assert "unexpected binary realtime websocket event" in binary.detail


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
known_types = st.sampled_from(
    [
        "session.created",
        "session.updated",
        "conversation.item.done",
        "conversation.item.added",
        "response.done",
        "response.output_audio.delta",
        "response.function_call_arguments.done",
        "error",
        "rate_limits.updated",
        "output_audio_buffer.started",
        "response.output_text.done",
    ]
)


@given(st.text())
def test_parser_never_raises_on_arbitrary_text(frame: str) -> None:
    parse_server_event(frame)


@given(st.binary())
def test_parser_never_raises_on_arbitrary_bytes(frame: bytes) -> None:
    assert isinstance(parse_server_event(frame), ProtocolWarning)


@given(
    known_types,
    st.dictionaries(
        st.sampled_from(
            ["session", "item", "response", "delta", "error", "call_id", "rate_limits", "text", "event_id"]
        ),
        json_values,
    ),
)
def test_parser_never_raises_on_known_types_with_arbitrary_fields(event_type: str, fields: dict[str, Any]) -> None:
    parse_server_event(json.dumps({**fields, "type": event_type}))


@given(json_values)
def test_parser_never_raises_on_arbitrary_json(value: object) -> None:
    parse_server_event(json.dumps(value))
