"""The input-audio-buffer and item-housekeeping client events: GA shapes (the documented examples of
openai/openai-openapi, MIT) and their round trip through the server's parser."""

import json

from hypothesis import given
from hypothesis import strategies as st

from rtengine.events import ProtocolWarning
from rtengine.protocol import encode, parse_client_event
from rtengine.protocol._buffer_events import (
    InputAudioClear,
    InputAudioCommit,
    ItemDelete,
    ItemRetrieve,
    input_audio_clear,
    input_audio_commit,
    item_delete,
    item_retrieve,
)


def test_builders_produce_ga_shapes() -> None:
    assert input_audio_commit() == {"type": "input_audio_buffer.commit"}
    assert input_audio_clear() == {"type": "input_audio_buffer.clear"}
    assert item_delete("item_003") == {"type": "conversation.item.delete", "item_id": "item_003"}
    assert item_retrieve("item_003") == {"type": "conversation.item.retrieve", "item_id": "item_003"}


def test_documented_examples_parse() -> None:
    examples = {
        '{"event_id": "event_901", "type": "conversation.item.delete", "item_id": "item_003"}': ItemDelete(
            "item_003", "event_901"
        ),
        '{"event_id": "event_901", "type": "conversation.item.retrieve", "item_id": "item_003"}': ItemRetrieve(
            "item_003", "event_901"
        ),
        '{"event_id": "event_012", "type": "input_audio_buffer.clear"}': InputAudioClear("event_012"),
        '{"event_id": "event_789", "type": "input_audio_buffer.commit"}': InputAudioCommit("event_789"),
    }
    for frame, expected in examples.items():
        assert parse_client_event(frame) == expected


@given(st.text())
def test_item_events_round_trip(item_id: str) -> None:
    assert parse_client_event(encode(item_delete(item_id))) == ItemDelete(item_id)
    assert parse_client_event(encode(item_retrieve(item_id))) == ItemRetrieve(item_id)


def test_an_item_event_without_a_string_item_id_is_a_warning() -> None:
    for event_type in ("conversation.item.delete", "conversation.item.retrieve"):
        for bad in ({}, {"item_id": 3}, {"item_id": None}):
            parsed = parse_client_event(json.dumps({"type": event_type, **bad}))
            assert isinstance(parsed, ProtocolWarning)
            assert parsed.type == event_type
