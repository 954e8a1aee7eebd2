"""Review of #13's ``wire_type``: documented as "the ``type`` of the server event this is made from", but it is a
class constant, so an event class built from several server events names one of them for all."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rtengine.protocol import parse_server_event

FRAMES: list[dict[str, Any]] = [
    {"type": "response.output_text.delta", "event_id": "e1", "response_id": "r1", "item_id": "i1", "delta": "Hi"},
    {"type": "response.output_text.done", "event_id": "e2", "response_id": "r1", "item_id": "i1", "text": "Hi"},
    {
        "type": "conversation.item.done",
        "event_id": "e3",
        "item": {"id": "i2", "type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
    },
]


@pytest.mark.xfail(
    strict=True,
    reason="review: wire_type is a ClassVar; a text-modality delta/done and a ToolCall from conversation.item.done"
    " name another server event",
)
@pytest.mark.parametrize("frame", FRAMES, ids=[f["type"] for f in FRAMES])
def test_wire_type_is_the_type_of_the_frame_it_was_parsed_from(frame: dict[str, Any]) -> None:
    event = parse_server_event(json.dumps(frame))
    assert event.wire_type == frame["type"]
