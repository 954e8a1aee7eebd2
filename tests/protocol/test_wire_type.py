"""Every typed event says which server event it is made from (``wire_type``): checked against every frame of the
recorded real traffic (``real_server_events.jsonl``, sources named in its header); rtengine's own lifecycle events
say ``None``."""

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
#: The events one class is made from besides its ``wire_type`` (older names, the text variant of a transcript).
ALSO: dict[type, set[str]] = {
    events.ItemAdded: {"conversation.item.created"},
    events.ToolCall: {"conversation.item.done"},
    events.AudioOut: {"response.audio.delta"},
    events.OutputTranscriptDelta: {"response.output_text.delta"},
    events.OutputTranscriptDone: {"response.output_text.done"},
}
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
    assert event.wire_type == wire or wire in ALSO.get(type(event), set())


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
