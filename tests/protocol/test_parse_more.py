"""The GA events modelled for issue #10 (MCP, ``conversation.created``, DTMF) and the ``phase`` of assistant
messages, from plain values; and the never-raises property over their types."""

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rtengine.events import (
    ConversationCreated,
    DtmfReceived,
    ItemAdded,
    ItemDone,
    McpArgumentsDelta,
    McpArgumentsDone,
    McpCall,
    McpListTools,
    ProtocolWarning,
    WarningKind,
)
from rtengine.protocol import parse_server_event


def parse(event: dict[str, Any]) -> object:
    return parse_server_event(json.dumps(event))


def test_mcp_listing_and_call_stages_become_one_class_each_with_a_status() -> None:
    for status in ("in_progress", "completed", "failed"):
        listing = parse({"type": f"mcp_list_tools.{status}", "event_id": "e1", "item_id": "mcp_list_1"})
        assert listing == McpListTools("mcp_list_1", status, "e1")
        call = parse({"type": f"response.mcp_call.{status}", "item_id": "mcp_1", "output_index": 0})
        assert call == McpCall("mcp_1", status, 0)


def test_mcp_call_arguments_stream_then_complete() -> None:
    base = {"item_id": "mcp_1", "response_id": "resp_1", "output_index": 2, "event_id": "e"}
    delta = parse({"type": "response.mcp_call_arguments.delta", "delta": '{"q":', **base})
    assert delta == McpArgumentsDelta('{"q":', "mcp_1", "resp_1", 2, "e")
    done = parse({"type": "response.mcp_call_arguments.done", "arguments": '{"q":1}', **base})
    assert done == McpArgumentsDone('{"q":1}', "mcp_1", "resp_1", 2, "e")
    missing = parse({"type": "response.mcp_call_arguments.done", **base})
    assert isinstance(missing, ProtocolWarning)
    assert missing.kind is WarningKind.MISSING_FIELD


def test_conversation_created_and_dtmf() -> None:
    created = parse(
        {"type": "conversation.created", "conversation": {"id": "conv_1", "object": "realtime.conversation"}}
    )
    assert created == ConversationCreated("conv_1")
    assert parse({"type": "conversation.created"}) == ConversationCreated(None)  # the id is optional in GA
    assert parse({"type": "input_audio_buffer.dtmf_event_received", "event": "#", "received_at": 17}) == DtmfReceived(
        "#", 17
    )
    assert isinstance(parse({"type": "input_audio_buffer.dtmf_event_received", "received_at": 17}), ProtocolWarning)


def test_the_phase_of_an_assistant_message_is_surfaced_on_its_item_events() -> None:
    for phase in ("commentary", "final_answer"):
        item: dict[str, Any] = {"id": "item_1", "type": "message", "role": "assistant", "phase": phase, "content": []}
        added = parse({"type": "conversation.item.added", "item": item})
        done = parse({"type": "conversation.item.done", "item": item})
        assert isinstance(added, ItemAdded)
        assert isinstance(done, ItemDone)
        assert (added.phase, done.phase) == (phase, phase)
    older = parse({"type": "conversation.item.done", "item": {"id": "item_2", "type": "message", "role": "assistant"}})
    assert isinstance(older, ItemDone)
    assert older.phase is None  # models that do not label their messages


NEW_TYPES = [
    "conversation.created",
    "input_audio_buffer.dtmf_event_received",
    "mcp_list_tools.in_progress",
    "response.mcp_call.failed",
    "response.mcp_call_arguments.delta",
    "response.mcp_call_arguments.done",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)


@given(
    st.sampled_from(NEW_TYPES),
    st.dictionaries(
        st.sampled_from(
            ["event", "delta", "arguments", "item_id", "output_index", "received_at", "conversation", "response_id"]
        ),
        json_values,
    ),
)
def test_new_types_never_raise_on_wrongly_typed_fields(event_type: str, fields: dict[str, Any]) -> None:
    result = parse({**fields, "type": event_type})
    assert not isinstance(result, ProtocolWarning) or result.kind is WarningKind.MISSING_FIELD
