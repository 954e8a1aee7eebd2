"""The parser over real traffic: every GA server event the real API sent in recorded sessions, plus the documented
example of every GA server event, parses into a typed event or a deliberately skipped one (0 raised, 0 warnings,
0 unmodelled). The fixture ``real_server_events.jsonl`` names its sources on its first lines."""

from __future__ import annotations

import json
import pathlib
import typing
from collections import Counter

import pytest

from rtengine import ConversationStats
from rtengine.events import (
    ConversationCreated,
    DtmfReceived,
    McpArgumentsDelta,
    McpArgumentsDone,
    McpCall,
    McpListTools,
    ProtocolWarning,
    ServerErrorEvent,
    UnknownEvent,
)
from rtengine.protocol import Brain, parse_server_event
from rtengine.protocol._parse import DOCUMENTED_UNMAPPED_TYPES

FIXTURE = pathlib.Path(__file__).with_name("real_server_events.jsonl")
FRAMES = [line for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]

#: The ten GA server events rtengine now types, with the class each becomes.
NEWLY_TYPED = {
    "conversation.created": ConversationCreated,
    "input_audio_buffer.dtmf_event_received": DtmfReceived,
    "mcp_list_tools.in_progress": McpListTools,
    "mcp_list_tools.completed": McpListTools,
    "mcp_list_tools.failed": McpListTools,
    "response.mcp_call_arguments.delta": McpArgumentsDelta,
    "response.mcp_call_arguments.done": McpArgumentsDone,
    "response.mcp_call.in_progress": McpCall,
    "response.mcp_call.completed": McpCall,
    "response.mcp_call.failed": McpCall,
}


def test_the_fixture_names_its_sources() -> None:
    header = FIXTURE.read_text(encoding="utf-8").splitlines()[:12]
    sources = [line for line in header if "source: github:" in line]
    assert any("openai/openai-openapi" in line for line in sources)
    assert sum("pydantic/pydantic-ai" in line for line in sources) == 6


def test_every_real_server_event_parses_into_a_typed_or_deliberately_skipped_event() -> None:
    outcome: Counter[str] = Counter()
    unmodelled: set[str] = set()
    for frame in FRAMES:
        event = parse_server_event(frame)  # never raises (a raise fails the test)
        if isinstance(event, ProtocolWarning):
            outcome["warning"] += 1
            unmodelled.add(f"{event.type}: {event.detail}")
        elif isinstance(event, UnknownEvent):
            outcome["skipped" if event.documented else "unmodelled"] += 1
            if not event.documented:
                unmodelled.add(event.type)
        else:
            outcome["typed"] += 1
    assert unmodelled == set()
    assert outcome["warning"] == outcome["unmodelled"] == 0
    assert outcome["typed"] + outcome["skipped"] == len(FRAMES) > 150


def test_the_ten_newly_modelled_ga_events_are_typed_with_their_fields() -> None:
    seen: dict[str, object] = {}
    for frame in FRAMES:
        kind = json.loads(frame)["type"]
        if kind in NEWLY_TYPED:
            seen[kind] = event = parse_server_event(frame)
            assert isinstance(event, NEWLY_TYPED[kind]), kind
    assert set(seen) == set(NEWLY_TYPED)
    assert seen["input_audio_buffer.dtmf_event_received"] == DtmfReceived("9", 1763605109)
    failed = seen["response.mcp_call.failed"]
    assert isinstance(failed, McpCall)
    assert failed.status == "failed"
    assert failed.item_id
    listing = seen["mcp_list_tools.completed"]
    assert isinstance(listing, McpListTools)
    assert listing.status == "completed"
    arguments = seen["response.mcp_call_arguments.done"]
    assert isinstance(arguments, McpArgumentsDone)
    assert json.loads(arguments.arguments) is not None
    created = seen["conversation.created"]
    assert isinstance(created, ConversationCreated)
    assert created.conversation_id


def test_the_fixture_holds_the_documented_example_of_every_ga_server_event() -> None:
    realtime = pytest.importorskip("openai.types.realtime")
    (union,) = typing.get_args(realtime.RealtimeServerEvent)[:1]
    ga_types = {
        literal
        for model in typing.get_args(union)
        for literal in typing.get_args(model.model_fields["type"].annotation)
    }
    assert len(ga_types) >= 46
    in_fixture = {json.loads(frame)["type"] for frame in FRAMES}
    assert ga_types <= in_fixture
    assert DOCUMENTED_UNMAPPED_TYPES & set(NEWLY_TYPED) == set()


def test_the_brain_takes_every_real_event_without_ending_but_on_the_one_fatal_error() -> None:
    brain = Brain(ConversationStats(), truncate=True, id_prefix="rte_real_")
    ends = []
    for frame in FRAMES:
        event = parse_server_event(frame, brain.output_format)
        assert not isinstance(event, ProtocolWarning)
        reaction = brain.server_event(event)
        if reaction.end is not None:
            assert isinstance(event, ServerErrorEvent)
            ends.append(event.code)
    errors = [json.loads(frame) for frame in FRAMES if json.loads(frame)["type"] == "error"]
    assert len(ends) <= len(errors)
    assert brain.stats.unknown_events == sum(json.loads(f)["type"] in DOCUMENTED_UNMAPPED_TYPES for f in FRAMES)
