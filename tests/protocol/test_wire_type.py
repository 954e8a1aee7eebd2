"""Every typed event says which server event it is made from (``wire_type``, the frame's own type even where one
class is made from several): checked against every frame of the recorded real traffic (``real_server_events.jsonl``,
sources named in its header); rtengine's own lifecycle events say ``None``."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from rtengine import events
from rtengine.protocol import parse_server_event

FRAMES = [
    line
    for line in (pathlib.Path(__file__).parent / "real_server_events.jsonl").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]
LIFECYCLE: list[Any] = [
    events.Started,
    events.Closed,
    events.Error,
    events.SidebandLost,
    events.SidebandRestored,
    events.SessionRotated,
    events.ConnectionDropped,
    events.SessionRestored,
]


@pytest.mark.parametrize("frame", FRAMES)
def test_a_parsed_event_names_the_frame_it_came_from(frame: str) -> None:
    wire = json.loads(frame)["type"]
    event: Any = parse_server_event(frame)
    assert isinstance(event.wire_type, str)
    assert event.wire_type == wire  # also for a class made from several (a text delta, an older name)


def test_every_event_class_has_a_wire_type_and_rtengines_own_say_none() -> None:
    classes = [getattr(events, name) for name in events.__all__]
    event_classes = [c for c in classes if isinstance(c, type) and "event_id" in getattr(c, "__dataclass_fields__", {})]
    assert len(event_classes) >= 20
    for cls in [*event_classes, *LIFECYCLE, events.UnknownEvent, events.ProtocolWarning]:
        assert hasattr(cls, "wire_type"), cls.__name__
    for cls in LIFECYCLE:
        assert cls.wire_type is None
    mcp = events.McpCall("item_1", "failed")
    assert mcp.wire_type == "response.mcp_call.failed"
    assert events.McpListTools("item_1", "completed").wire_type == "mcp_list_tools.completed"


SEVERAL: list[dict[str, Any]] = [
    {"type": "response.output_text.delta", "event_id": "e1", "response_id": "r1", "item_id": "i1", "delta": "Hi"},
    {"type": "response.output_text.done", "event_id": "e2", "response_id": "r1", "item_id": "i1", "text": "Hi"},
    {
        "type": "conversation.item.done",
        "event_id": "e3",
        "item": {"id": "i2", "type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
    },
    {"type": "conversation.item.created", "event_id": "e4", "item": {"id": "i3", "type": "message"}},
    {"type": "response.audio.delta", "event_id": "e5", "response_id": "r1", "item_id": "i1", "delta": "AAAA"},
]


@pytest.mark.parametrize("frame", SEVERAL, ids=[f["type"] for f in SEVERAL])
def test_wire_type_is_the_type_of_the_frame_a_shared_class_was_parsed_from(frame: dict[str, Any]) -> None:
    event: Any = parse_server_event(json.dumps(frame))
    assert event.wire_type == frame["type"]
    assert "wire_type" not in repr(event)  # the type of the frame, not part of what the event says
