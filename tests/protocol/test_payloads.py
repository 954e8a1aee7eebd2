"""Client-event builders (GA shapes) and their round trip through the server's parser."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtengine import SessionConfig
from rtengine.events import ProtocolWarning
from rtengine.protocol import (
    encode,
    function_call_output,
    input_audio_append,
    item_truncate,
    output_audio_buffer_clear,
    parse_client_event,
    response_cancel,
    response_create,
    session_update,
    user_text,
)
from rtengine.protocol._payloads import (
    FunctionCallOutput,
    InputAudioAppend,
    ItemTruncate,
    OutputAudioBufferClear,
    ResponseCancel,
    ResponseCreate,
    SessionUpdate,
    UnknownClientEvent,
    UserText,
)


def test_builders_produce_ga_shapes() -> None:
    assert input_audio_append(b"\x01\x02") == {"type": "input_audio_buffer.append", "audio": "AQI="}
    assert user_text("hi") == {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
    }
    assert function_call_output("call_1", "") == {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "call_1", "output": ""},
    }
    assert response_create() == {"type": "response.create"}
    assert response_cancel() == {"type": "response.cancel"}
    assert response_cancel("resp_1") == {"type": "response.cancel", "response_id": "resp_1"}
    assert item_truncate("item_1", 1234) == {
        "type": "conversation.item.truncate",
        "item_id": "item_1",
        "content_index": 0,
        "audio_end_ms": 1234,
    }
    assert output_audio_buffer_clear() == {"type": "output_audio_buffer.clear"}
    update = session_update(SessionConfig(model="m", instructions="x"))
    assert update == {"type": "session.update", "session": {"type": "realtime", "instructions": "x"}}


def test_encode_is_compact_and_keeps_unicode() -> None:
    assert encode(user_text("héllo")) == (
        '{"type":"conversation.item.create","item":{"type":"message","role":"user",'
        '"content":[{"type":"input_text","text":"héllo"}]}}'
    )


def test_truncate_refuses_negative_positions() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        item_truncate("item_1", -1)


@given(st.text())
def test_user_text_round_trips(text: str) -> None:
    assert parse_client_event(encode(user_text(text))) == UserText(text)


@given(st.binary(max_size=512))
def test_audio_round_trips(pcm: bytes) -> None:
    assert parse_client_event(encode(input_audio_append(pcm))) == InputAudioAppend(pcm)


@given(st.text(min_size=1), st.text())
def test_tool_output_round_trips(call_id: str, output: str) -> None:
    assert parse_client_event(encode(function_call_output(call_id, output))) == FunctionCallOutput(call_id, output)


@given(st.text(min_size=1), st.integers(0, 10**7), st.integers(0, 3))
def test_truncate_round_trips(item_id: str, end_ms: int, index: int) -> None:
    assert parse_client_event(encode(item_truncate(item_id, end_ms, index))) == ItemTruncate(item_id, index, end_ms)


@given(st.none() | st.text(min_size=1))
def test_cancel_and_create_round_trip(response_id: str | None) -> None:
    assert parse_client_event(encode(response_cancel(response_id))) == ResponseCancel(response_id)
    assert parse_client_event(encode(response_create())) == ResponseCreate()
    assert parse_client_event(encode(output_audio_buffer_clear())) == OutputAudioBufferClear()


@given(st.text(max_size=30), st.sampled_from([None, ("audio",), ("text",)]))
def test_session_update_round_trips(instructions: str, modalities: tuple[str, ...] | None) -> None:
    config = SessionConfig(instructions=instructions, output_modalities=modalities)
    parsed = parse_client_event(encode(session_update(config)))
    assert parsed == SessionUpdate(config.update_payload())


def test_client_parser_flags_bad_frames() -> None:
    assert isinstance(parse_client_event("nope"), ProtocolWarning)
    assert isinstance(parse_client_event(b"\x00"), ProtocolWarning)
    assert isinstance(parse_client_event('{"type":"input_audio_buffer.append","audio":"***"}'), ProtocolWarning)
    assert isinstance(parse_client_event('{"type":"session.update"}'), ProtocolWarning)
    unknown = parse_client_event(json.dumps({"type": "made.up"}))
    assert isinstance(unknown, UnknownClientEvent)
    assert unknown.type == "made.up"


@given(st.text())
def test_client_parser_never_raises(frame: str) -> None:
    parse_client_event(frame)
