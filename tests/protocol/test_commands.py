"""The conversation commands' decisions, sans-IO: the session diff, raw-event validation, the brain's handling of
raw events (sequenced ``response.create``, refusals that do not end the conversation), the audio barrier."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rtengine
from rtengine import ConfigError, ConversationStats, ErrorClass
from rtengine.events import ResponseCreated, ResponseDone, ServerErrorEvent
from rtengine.protocol import Brain, RequestResponse
from rtengine.protocol._classify import classify_error
from rtengine.protocol._commands import (
    AudioBuffer,
    ClearOutputAudio,
    UpdateSession,
    apply_update,
    audio_barrier,
    check_update,
    client_event,
    field_paths,
    raw_session_paths,
    session_changes,
    undo_update,
)

BASE = rtengine.SessionConfig(
    instructions="a",
    voice="alloy",
    turn_detection=rtengine.TurnDetection(silence_duration_ms=500),
    tools=(rtengine.FunctionTool("lookup"),),
)


def test_a_session_update_carries_only_what_changed() -> None:
    new = apply_update(BASE, {"instructions": "b", "turn_detection": rtengine.TURN_DETECTION_DISABLED})
    assert session_changes(BASE, new) == {
        "type": "session.update",
        "session": {"type": "realtime", "instructions": "b", "audio": {"input": {"turn_detection": None}}},
    }
    assert session_changes(BASE, BASE) == {"type": "session.update", "session": {"type": "realtime"}}
    voice = apply_update(BASE, {"voice": "marin"})
    assert session_changes(BASE, voice)["session"] == {"type": "realtime", "audio": {"output": {"voice": "marin"}}}


def test_changes_that_cannot_be_sent_are_refused() -> None:
    with pytest.raises(ConfigError, match="cannot change"):
        apply_update(BASE, {"model": "gpt-x"})
    with pytest.raises(ConfigError, match="cannot remove"):
        apply_update(BASE, {"voice": None})
    with pytest.raises(ConfigError, match="unknown"):
        apply_update(BASE, {"colour": "red"})
    with pytest.raises(ConfigError):
        apply_update(BASE, {"tool_choice": "not_a_tool"})  # SessionConfig's own validation
    with pytest.raises(ConfigError, match="JSON"):
        check_update(BASE, {"extra": {"temperature": math.nan}})  # the API cannot read NaN
    with pytest.raises(ConfigError, match="JSON"):
        check_update(BASE, {"extra": {"colour": object()}})


def test_removing_every_tool_sends_an_empty_tool_list() -> None:
    tool = rtengine.FunctionTool(name="lookup", description="look it up")
    with_tools = apply_update(BASE, {"tools": (tool,)})
    assert session_changes(with_tools, apply_update(with_tools, {"tools": ()}))["session"] == {
        "type": "realtime",
        "tools": [],
    }


def test_a_refused_update_is_taken_back_unless_changed_again() -> None:
    undo = {"voice": ("alloy", "marin"), "instructions": (BASE.instructions, "new")}
    refused = apply_update(BASE, {"voice": "marin", "instructions": "new"})
    assert undo_update(refused, undo) == replace(refused, voice="alloy", instructions=BASE.instructions)
    later = apply_update(refused, {"voice": "cedar"})  # a later update of the voice stays
    assert undo_update(later, undo).voice == "cedar"


FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "instructions": st.text(max_size=8),
        "voice": st.sampled_from(["alloy", "marin", "cedar"]),
        "max_output_tokens": st.integers(1, 4096),
        "output_modalities": st.sampled_from([("audio",), ("text",)]),
        "turn_detection": st.sampled_from(
            [rtengine.TURN_DETECTION_DISABLED, rtengine.TurnDetection(threshold=0.3), rtengine.TurnDetection()]
        ),
    },
)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """How the API applies a session.update to audio.input/.output (field by field) and the rest (whole)."""
    out: dict[str, Any] = json.loads(json.dumps(base))
    for key, value in update.items():
        if key == "audio":
            for side, part in value.items():
                out.setdefault("audio", {}).setdefault(side, {}).update(part)
        else:
            out[key] = value
    return out


@given(st.lists(FIELDS, max_size=5))
def test_applying_the_diffs_in_order_gives_the_updated_session(updates: list[dict[str, Any]]) -> None:
    server = BASE.update_payload()
    session = BASE
    for changes in updates:
        new = apply_update(session, changes)
        server = _merge(server, session_changes(session, new)["session"])
        session = new
    assert server == session.update_payload()


@pytest.mark.parametrize(
    "event",
    [
        None,
        ["response.create"],
        {"type": None},
        {"type": ""},
        {"type": "x", "event_id": 1},
        {"type": "x", "b": b"bytes"},
        {"type": "x", "n": float("inf")},
    ],
)
def test_raw_events_must_be_json_objects_with_a_type(event: Any) -> None:
    with pytest.raises(ValueError, match="send_event"):
        client_event(event)


def test_a_raw_event_is_copied_and_measured() -> None:
    original = {"type": "conversation.item.delete", "item_id": "item_1", "event_id": None}
    size = len(json.dumps(original, separators=(",", ":")))
    command = client_event(original)
    original["item_id"] = "changed later"
    assert dict(command.payload) == {"type": "conversation.item.delete", "item_id": "item_1"}
    assert command.size == size


def test_buffer_commands_wait_for_the_audio_before_them() -> None:
    assert audio_barrier(AudioBuffer("commit"))
    assert audio_barrier(AudioBuffer("clear"))
    assert audio_barrier(client_event({"type": "input_audio_buffer.commit"}))
    assert not audio_barrier(client_event({"type": "response.create"}))
    assert not audio_barrier(ClearOutputAudio())
    assert not audio_barrier(UpdateSession({"instructions": "x"}))


def brain() -> Brain:
    return Brain(ConversationStats(), truncate=True, id_prefix="rte_t_")


def test_a_raw_response_create_is_sequenced_and_keeps_its_parameters() -> None:
    b = brain()
    first = b.command(client_event({"type": "response.create"}))
    assert [p["type"] for p in first] == ["response.create"]
    b.server_event(ResponseCreated("resp_1"))
    assert b.command(client_event({"type": "response.create", "response": {"instructions": "x"}})) == ()
    assert b.command(RequestResponse()) == ()  # coalesces with the owed one
    assert b.stats.responses_deferred == 2
    owed = b.server_event(ResponseDone("resp_1", "completed")).send
    assert owed == ({"type": "response.create", "response": {"instructions": "x"}},)


def test_a_refused_raw_event_does_not_end_the_conversation_but_an_account_error_does() -> None:
    b = brain()
    (mine,) = b.command(client_event({"type": "conversation.item.delete", "item_id": "nope", "event_id": "app_1"}))
    (stamped,) = b.command(client_event({"type": "no.such"}))
    b.stamp(mine)
    b.stamp(stamped)
    assert mine["event_id"] == "app_1"  # the caller's id is kept
    assert stamped["event_id"].startswith("rte_t_")
    for event_id in ("app_1", stamped["event_id"]):
        refused = b.server_event(ServerErrorEvent("no", "invalid_value", error_event_id=event_id))
        assert refused.end is None
        assert refused.deliver is not None
    fatal = b.server_event(ServerErrorEvent("quota", "insufficient_quota", error_event_id="app_1"))
    assert fatal.end is not None


def test_a_commit_of_an_empty_buffer_is_benign() -> None:
    assert classify_error("input_audio_buffer_commit_empty", "buffer too small") is ErrorClass.BENIGN


def test_an_owed_raw_response_create_keeps_its_parameters_across_a_rejoin() -> None:
    b = brain()
    b.command(RequestResponse())
    b.server_event(ResponseCreated("resp_1"))
    assert b.command(client_event({"type": "response.create", "response": {"instructions": "x"}})) == ()
    control = b.rejoined(())
    assert control == ({"type": "response.create", "response": {"instructions": "x"}},)
    b.server_event(ResponseCreated("resp_2"))
    assert b.server_event(ResponseDone("resp_2", "completed")).send == ()  # nothing owed any more


def test_a_refused_response_create_frees_the_sequencer_and_sends_the_owed_one() -> None:
    b = brain()
    (raw,) = b.command(client_event({"type": "response.create", "response": {"output_modalities": ["bogus"]}}))
    b.stamp(raw)
    assert b.command(RequestResponse()) == ()  # owed: the raw one looks in flight
    refused = b.server_event(ServerErrorEvent("bad modality", "invalid_value", error_event_id=raw["event_id"]))
    assert refused.end is None
    assert [p["type"] for p in refused.send] == ["response.create"]  # the owed request goes out now
    b.server_event(ResponseCreated("resp_1"))
    b.server_event(ResponseDone("resp_1", "completed"))
    (again,) = b.command(RequestResponse())  # nothing is wedged
    assert again["type"] == "response.create"


def test_a_field_a_raw_session_update_set_is_written_again_only_when_the_caller_names_it() -> None:
    raw = {"type": "session.update", "session": {"instructions": "raw", "audio": {"output": {"voice": "cedar"}}}}
    touched = raw_session_paths(raw)
    assert touched == {("instructions",), ("audio", "output", "voice")}
    named = touched & field_paths({"instructions": BASE.instructions})
    assert session_changes(BASE, apply_update(BASE, {"instructions": BASE.instructions}), named)["session"] == {
        "type": "realtime",
        "instructions": BASE.instructions,  # unchanged for rtengine, but the server holds "raw"
    }
    other = touched & field_paths({"max_output_tokens": 7})
    assert session_changes(BASE, apply_update(BASE, {"max_output_tokens": 7}), other)["session"] == {
        "type": "realtime",
        "max_output_tokens": 7,  # the raw instructions and voice are left as the caller set them
    }
