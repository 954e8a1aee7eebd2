"""The brain's wire details, with plain values: client event ids traced back from server errors, unsolicited
active-response errors, and the output audio format (G.711 barge-in truncation)."""

from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtengine import ConversationStats, ErrorClass
from rtengine.events import (
    AudioOut,
    Error,
    ItemAdded,
    OutputTranscriptDelta,
    OutputTranscriptDone,
    ResponseCreated,
    ResponseDone,
    ServerErrorEvent,
    SessionUpdated,
    SpeechStarted,
)
from rtengine.protocol import Brain, RequestResponse, SendText, parse_server_event
from rtengine.protocol._state import SentEvents

ACTIVE = "conversation_already_has_active_response"


def brain(output_format: str = "audio/pcm", prefix: str = "rte_t_") -> Brain:
    return Brain(ConversationStats(), truncate=True, output_format=output_format, id_prefix=prefix)


def test_every_stamped_payload_gets_a_fresh_id_with_the_conversation_prefix() -> None:
    b = brain(prefix=None)  # type: ignore[arg-type]
    ids = [b.stamp(p)["event_id"] for p in (*b.command(SendText("a")), *b.command(RequestResponse()))]
    ids.append(b.stamp({"type": "input_audio_buffer.append", "audio": ""})["event_id"])
    assert len(set(ids)) == 3
    prefix = ids[0].rsplit("_", 1)[0]
    assert re.fullmatch(r"rte_[0-9a-f]{8}", prefix)
    assert all(i.startswith(prefix + "_") for i in ids)
    other = Brain(ConversationStats(), truncate=True).stamp({"type": "response.create"})["event_id"]
    assert not other.startswith(prefix + "_")  # another conversation's ids never match this one's


def test_a_server_error_naming_a_sent_event_carries_that_request() -> None:
    b = brain()
    b.stamp({"type": "session.update", "session": {}})
    cancel = b.stamp({"type": "response.cancel"})
    reaction = b.server_event(
        ServerErrorEvent(
            "none active",
            "response_cancel_not_active",
            error_event_id=cancel["event_id"],
            error_class=ErrorClass.BENIGN,
        )
    )
    assert reaction.deliver == Error("none active", "response_cancel_not_active", False, "response.cancel", "rte_t_1")
    fatal = b.server_event(ServerErrorEvent("bad", "invalid_value", error_event_id="rte_t_0"))
    assert fatal.end is not None
    assert fatal.end[0] == Error("bad", "invalid_value", True, "session.update", "rte_t_0")
    unknown = b.server_event(ServerErrorEvent("bad", "invalid_value", error_event_id="evt_from_someone_else"))
    assert unknown.end is not None
    assert unknown.end[0] == Error("bad", "invalid_value", True, None, None)


@pytest.mark.parametrize(
    ("named", "request_type"), [(None, None), ("evt_other_client", None), ("rte_t_0", "session.update")]
)
def test_an_unsolicited_active_response_error_never_parks_the_sequencer(
    named: str | None, request_type: str | None
) -> None:
    """Regression: an active-response error that names no ``response.create`` of ours (no id, someone else's id,
    or our ``session.update``) used to leave one create owed forever, so every later request was deferred."""
    b = brain()
    b.stamp({"type": "session.update", "session": {}})
    reaction = b.server_event(ServerErrorEvent("active", ACTIVE, error_event_id=named, error_class=ErrorClass.DEFERRAL))
    assert reaction.deliver == Error("active", ACTIVE, False, request_type, named if request_type else None)
    assert reaction.end is None
    assert not b.owes_response
    assert [p["type"] for p in b.command(RequestResponse())] == ["response.create"]  # goes out at once
    assert b.stats.responses_deferred == 0


def test_an_active_response_error_naming_our_create_defers_it_until_the_active_one_ends() -> None:
    b = brain()
    (create,) = b.command(RequestResponse())
    b.stamp(create)
    b.server_event(ResponseCreated("resp_vad"))  # the server's own (VAD) response started first
    error = ServerErrorEvent("active", ACTIVE, error_event_id=create["event_id"], error_class=ErrorClass.DEFERRAL)
    assert b.server_event(error).deliver is None
    assert b.owes_response
    assert [p["type"] for p in b.server_event(ResponseDone("resp_vad", "completed")).send] == ["response.create"]


def test_old_or_malformed_ids_are_not_traced() -> None:
    sent = SentEvents("p_", capacity=4)
    for _ in range(6):
        sent.stamp({"type": "input_audio_buffer.append"})
    assert sent.lookup("p_5") == "input_audio_buffer.append"
    assert sent.lookup("p_2") == "input_audio_buffer.append"
    assert sent.lookup("p_1") is None  # fell out of the ring
    assert [sent.lookup(i) for i in ("p_6", "p_05", "p_", "p_-1", "p_٣", "q_5", None)] == [None] * 7


@given(st.lists(st.sampled_from(["session.update", "response.create", "response.cancel"]), min_size=1, max_size=50))
def test_every_remembered_id_names_the_type_it_was_stamped_on(types: list[str]) -> None:
    sent = SentEvents("x_", capacity=16)
    stamped = [(sent.stamp({"type": t})["event_id"], t) for t in types]
    for index, (event_id, kind) in enumerate(stamped):
        assert sent.lookup(event_id) == (kind if len(stamped) - index <= 16 else None)
    assert len(sent._types) == min(len(types), 16)  # bounded, and only as large as what was sent


def _delta(item: str, data: bytes) -> AudioOut:
    frame = f'{{"type":"response.output_audio.delta","item_id":"{item}","delta":"{base64.b64encode(data).decode()}"}}'
    event = parse_server_event(frame, "audio/pcm")
    assert isinstance(event, AudioOut)
    return event


def _updated(fmt: dict[str, object] | None) -> SessionUpdated:
    session: dict[str, object] = {"id": "sess_1"}
    if fmt is not None:
        session["audio"] = {"output": {"format": fmt}}
    event = parse_server_event(json.dumps({"type": "session.updated", "session": session}))
    assert isinstance(event, SessionUpdated)
    return event


@pytest.mark.parametrize("fmt", ["audio/pcmu", "audio/pcma"])
def test_g711_barge_in_truncates_at_the_audio_received_by_its_own_clock(fmt: str) -> None:
    b = brain()
    b.server_event(_updated({"type": fmt}))  # the server confirmed G.711 output
    assert b.output_format == fmt
    for _ in range(3):  # 3 x 4000 bytes of G.711 = 1.5 s (read as PCM16 24 kHz it would be 250 ms)
        delta = base64.b64encode(bytes(4000)).decode()
        frame = f'{{"type":"response.output_audio.delta","item_id":"item_a","delta":"{delta}"}}'
        event = parse_server_event(frame, b.output_format)
        assert isinstance(event, AudioOut)
        assert event.format == fmt
        b.server_event(event)
    (truncate,) = b.server_event(SpeechStarted()).send
    assert (truncate["item_id"], truncate["audio_end_ms"]) == ("item_a", 1500)


def test_the_configured_format_holds_until_the_server_states_one() -> None:
    b = brain("audio/pcmu")
    b.server_event(_updated(None))  # session.updated without an output format: keep the configured one
    assert b.output_format == "audio/pcmu"
    b.server_event(_updated({"type": "audio/unknown"}))
    assert b.output_format == "audio/pcmu"
    b.server_event(_updated({"type": "audio/pcm", "rate": 24000}))
    assert b.output_format == "audio/pcm"
    b.server_event(_delta("item_b", bytes(4800)))  # 100 ms of PCM16
    (truncate,) = b.server_event(SpeechStarted()).send
    assert truncate["audio_end_ms"] == 100


def test_the_phase_of_a_labelled_message_reaches_its_transcript_events() -> None:
    b = brain()
    preamble = parse_server_event(
        json.dumps(
            {
                "type": "conversation.item.added",
                "item": {"id": "item_1", "type": "message", "role": "assistant", "phase": "commentary"},
            }
        )
    )
    assert isinstance(preamble, ItemAdded)
    assert b.server_event(preamble).deliver == preamble
    b.server_event(ItemAdded("item_2", phase="final_answer"))
    first = b.server_event(OutputTranscriptDelta("Let me check", "item_1")).deliver
    assert first == OutputTranscriptDelta("Let me check", "item_1", phase="commentary")
    answer = b.server_event(OutputTranscriptDone("It is 4", "item_2")).deliver
    assert answer == OutputTranscriptDone("It is 4", "item_2", phase="final_answer")
    b.server_event(ResponseDone("resp_1", "completed"))
    later = OutputTranscriptDelta("x", "item_1")
    assert b.server_event(later).deliver is later  # the response ended: nothing remembered


def test_unlabelled_messages_cost_no_copy() -> None:
    b = brain()
    b.server_event(ItemAdded("item_1"))
    delta = OutputTranscriptDelta("hello", "item_1")
    assert b.server_event(delta).deliver is delta
