"""The sans-IO brain, with plain values and hypothesis: no event loop."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rtengine import ConversationStats, ErrorClass
from rtengine.events import (
    AudioOut,
    Closed,
    Error,
    ResponseCreated,
    ResponseDone,
    ServerErrorEvent,
    SessionUpdated,
    SpeechStarted,
    ToolCall,
)
from rtengine.protocol import (
    Brain,
    CancelResponse,
    RequestResponse,
    SendText,
    SendToolOutput,
    SocketEnd,
    parse_server_event,
    socket_end,
)


def brain(truncate: bool = True) -> Brain:
    return Brain(ConversationStats(), truncate=truncate)


def kinds(payloads: tuple[dict[str, Any], ...]) -> list[str]:
    return [str(p["type"]) for p in payloads]


def test_commands_become_payloads_in_order() -> None:
    b = brain()
    (text,) = b.command(SendText("hi"))
    assert text["item"]["content"][0]["text"] == "hi"
    assert kinds(b.command(SendToolOutput("call_1", "{}"))) == ["conversation.item.create", "response.create"]
    assert kinds(b.command(SendToolOutput("call_2", "{}", respond=False))) == ["conversation.item.create"]
    assert kinds(b.command(CancelResponse("resp_1"))) == ["response.cancel"]


def test_requests_never_overlap_and_coalesce() -> None:
    b = brain()
    assert kinds(b.command(RequestResponse())) == ["response.create"]
    assert b.command(RequestResponse()) == ()  # owed
    assert b.command(RequestResponse()) == ()  # coalesced into the same owed create
    assert b.stats.responses_deferred == 2
    assert b.server_event(ResponseCreated("resp_1")).send == ()
    assert kinds(b.server_event(ResponseDone("resp_1", "completed")).send) == ["response.create"]
    assert b.server_event(ResponseDone("resp_2", "completed")).send == ()  # nothing more was owed


def test_the_active_response_error_is_a_deferral_not_an_end() -> None:
    b = brain()
    (create,) = b.command(RequestResponse())
    b.stamp(create)
    reaction = b.server_event(
        ServerErrorEvent(
            "active",
            "conversation_already_has_active_response",
            error_event_id=create["event_id"],
            error_class=ErrorClass.DEFERRAL,
        )
    )
    assert reaction.deliver is None
    assert reaction.end is None
    assert kinds(b.server_event(ResponseDone(None, "completed")).send) == ["response.create"]


def test_server_errors_are_benign_or_fatal() -> None:
    b = brain()
    benign = b.server_event(
        ServerErrorEvent("none active", "response_cancel_not_active", error_class=ErrorClass.BENIGN)
    )
    assert benign.deliver == Error("none active", "response_cancel_not_active", fatal=False)
    fatal = b.server_event(ServerErrorEvent("bad key", "invalid_api_key"))
    assert fatal.end == (Error("bad key", "invalid_api_key"), Closed("error"))


def test_binary_frames_are_reported_not_fatal_and_bad_frames_are_counted() -> None:
    b = brain()
    reaction = b.server_event(parse_server_event(b"\x00\x01"))
    assert isinstance(reaction.deliver, Error)
    assert reaction.deliver.code == "unexpected_binary_frame"
    assert not reaction.deliver.fatal
    assert reaction.end is None
    assert b.server_event(parse_server_event("{not json")).deliver is None
    assert (b.stats.binary_frames, b.stats.protocol_warnings) == (1, 1)


def test_barge_in_truncates_at_the_audio_received() -> None:
    b = brain()
    pcm = base64.b64encode(b"\x00\x00" * 2400).decode()  # 100 ms at 24 kHz
    b.server_event(AudioOut(pcm, item_id="item_1"))
    b.server_event(AudioOut(pcm, item_id="item_1"))
    (truncate,) = b.server_event(SpeechStarted()).send
    assert truncate == {
        "type": "conversation.item.truncate",
        "item_id": "item_1",
        "content_index": 0,
        "audio_end_ms": 200,
    }
    assert b.server_event(SpeechStarted()).send == ()  # nothing more to cut
    webrtc = brain(truncate=False)  # a call's audio is truncated by the provider
    webrtc.server_event(AudioOut(pcm, item_id="item_1"))
    assert webrtc.server_event(SpeechStarted()).send == ()


def test_tool_calls_are_delivered_once() -> None:
    b = brain()
    call = ToolCall("call_1", "lookup", "{}")
    assert b.server_event(call).deliver == call
    assert b.server_event(call).deliver is None
    assert b.stats.duplicate_tool_calls == 1


def test_phases_to_mark() -> None:
    b = brain()
    assert b.server_event(SessionUpdated("sess_1")).mark == "session_updated"
    assert b.server_event(ResponseDone("resp_1", "completed")).mark == "first_response_done"


def test_how_a_socket_end_ends_the_conversation() -> None:
    assert socket_end(SocketEnd(clean=True, code=1000, reason="bye")) == (None, Closed("transport_closed", 1000, "bye"))
    error, closed = socket_end(SocketEnd(clean=False, detail="reset"))
    assert error == Error("realtime connection lost: reset", "connection_lost")
    assert closed == Closed("error")
    error, closed = socket_end(SocketEnd(clean=False, code=1009, reason="message too big"))
    assert error is not None
    assert error.code == "message_too_big"
    assert closed == Closed("error", 1009, "message too big")


# A model server: it answers each response.create with created then done, whenever the schedule says so; it may
# also send an active-response error about another client's response.create (which must not defer ours).
DEFERRAL = ErrorClass.DEFERRAL
ACTIVE = "conversation_already_has_active_response"
step = st.sampled_from(["request", "tool", "server_finishes", "vad_response", "stray_conflict"])


@given(st.lists(step, max_size=40))
def test_never_two_creates_in_flight_and_no_request_forgotten(schedule: list[str]) -> None:
    b = brain()
    in_flight: list[str] = []  # responses the server is running (ours or its own)
    created = 0
    owed_since_last_create = False
    counter = 0

    def send(payloads: tuple[dict[str, Any], ...]) -> None:
        nonlocal created, owed_since_last_create, counter
        for payload in payloads:
            if payload["type"] == "response.create":
                assert not in_flight, "a response.create while a response was active"
                counter += 1
                in_flight.append(f"resp_{counter}")
                b.server_event(ResponseCreated(in_flight[-1]))
                created += 1
                owed_since_last_create = False

    for action in schedule:
        if action in ("request", "tool"):
            command = RequestResponse() if action == "request" else SendToolOutput("call", "{}")
            owed_since_last_create = True  # until a create goes out: now, or when the active response ends
            send(b.command(command))
        elif action == "stray_conflict":  # another client's create was refused; it names no event of ours
            b.server_event(ServerErrorEvent("active", ACTIVE, error_event_id="evt_x", error_class=DEFERRAL))
        elif action == "vad_response" and not in_flight:
            counter += 1
            in_flight.append(f"resp_{counter}")
            b.server_event(ResponseCreated(in_flight[-1]))
        elif action == "server_finishes" and in_flight:
            send(b.server_event(ResponseDone(in_flight.pop(), "completed")).send)
    while in_flight:  # the server finishes whatever runs; every owed request must go out by then
        send(b.server_event(ResponseDone(in_flight.pop(), "completed")).send)
    assert not owed_since_last_create
    requests = schedule.count("request") + schedule.count("tool")
    assert created + b.stats.responses_deferred >= requests
    assert created <= requests
