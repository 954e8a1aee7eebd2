"""Small fidelity details of the local server: the GA client event list, ids shaped like the API's, the API's
errors for a ``conversation.item.delete``/``.retrieve`` without a usable ``item_id``, standard JSON only, and one
parse per client frame."""

import json
import re
import typing
from typing import Any

import pytest
import trio
from helpers import direct, loads
from openai.types.realtime.realtime_client_event import RealtimeClientEvent

from rtengine.adapters._ws import RealtimeSocket, open_socket
from rtengine.protocol import response_create, user_text
from rtengine.protocol._payloads import encode
from rtengine.server import LocalServer
from rtengine.server._ids import new_id
from rtengine.server._shapes import CLIENT_EVENT_TYPES, SUPPORTED_CLIENT_EVENTS
from rtengine.server._shapes import encode as server_encode

#: Ids recorded from api.openai.com (pydantic/pydantic-ai, MIT, tests/realtime/cassettes,
#: test_audio_in_server_vad_turn and test_tool_call_round).
RECORDED_IDS = (
    "event_E6U0x4CPpGXckBREkhDss",
    "conv_E6U0wZ7az3EZovEnFLqH4",
    "item_E6U0x1gK0YOze2d0cfrT9",
    "resp_E6U0xFfUwkVBtivCMNlgo",
)
RECORDED_CALL_ID = "call_uMNE0Myi2tDTPu0w"


def _shape(some_id: str) -> str:
    """``prefix_`` and the class and length of what follows (``item_[A-Za-z0-9]{21}``)."""
    prefix, _, tail = some_id.partition("_")
    alphabet = "[A-Za-z0-9]" if re.fullmatch("[A-Za-z0-9]+", tail) else "[other]"
    return f"{prefix}_{alphabet}{{{len(tail)}}}"


def test_supported_client_events_are_exactly_the_sdk_client_events() -> None:
    union = typing.get_args(typing.get_args(RealtimeClientEvent)[0])
    sdk_types = {literal for model in union for literal in typing.get_args(model.model_fields["type"].annotation)}
    assert len(CLIENT_EVENT_TYPES) == len(set(CLIENT_EVENT_TYPES))
    assert set(CLIENT_EVENT_TYPES) == sdk_types
    assert SUPPORTED_CLIENT_EVENTS.split(", ") == list(CLIENT_EVENT_TYPES)


@pytest.mark.parametrize("recorded", [*RECORDED_IDS, RECORDED_CALL_ID])
def test_new_ids_look_like_the_recorded_ones(recorded: str) -> None:
    prefix = recorded.partition("_")[0]
    made = {new_id(prefix) for _ in range(50)}
    assert {_shape(i) for i in made} == {_shape(recorded)}
    assert len(made) == 50


def test_outgoing_json_never_holds_nan_or_infinity() -> None:
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="JSON compliant"):
            server_encode({"type": "x", "value": bad})
    assert server_encode({"type": "x", "value": 1.5}) == '{"type":"x","value":1.5}'


async def _next(sock: RealtimeSocket, event_type: str) -> dict[str, Any]:
    while True:
        event = loads(await sock.receive())
        if event["type"] == event_type:
            return event


async def test_ids_on_the_wire_look_like_the_recorded_ones(server: LocalServer) -> None:
    seen: list[dict[str, Any]] = []
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await _next(sock, "session.created")
            await sock.send(encode(user_text("hello")))
            await sock.send(encode(response_create()))
            while not seen or seen[-1]["type"] != "response.done":
                seen.append(loads(await sock.receive()))
    done = seen[-1]["response"]
    made = [e["event_id"] for e in seen] + [done["id"], done["conversation_id"], done["output"][0]["id"]]
    made += [e["item"]["id"] for e in seen if e["type"] == "conversation.item.added"]
    recorded = {_shape(i).partition("_")[0]: _shape(i) for i in RECORDED_IDS}
    assert {_shape(i) for i in made} == set(recorded.values())


@pytest.mark.parametrize("event_type", ["conversation.item.delete", "conversation.item.retrieve"])
async def test_an_item_event_without_item_id_is_missing_required_parameter(
    server: LocalServer, event_type: str
) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await _next(sock, "session.created")
            await sock.send(json.dumps({"type": event_type, "event_id": "ask_1"}))
            missing = (await _next(sock, "error"))["error"]
            await sock.send(json.dumps({"type": event_type, "event_id": "ask_2", "item_id": 7}))
            wrong = (await _next(sock, "error"))["error"]
    assert missing == {
        "type": "invalid_request_error",
        "code": "missing_required_parameter",
        "message": "Missing required parameter: 'item_id'.",
        "param": "item_id",
        "event_id": "ask_1",
    }
    assert wrong == {
        "type": "invalid_request_error",
        "code": "invalid_type",
        "message": "Invalid type for 'item_id': expected a string, but got an integer instead.",
        "param": "item_id",
        "event_id": "ask_2",
    }


async def test_each_client_frame_is_parsed_once(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = encode({**user_text("counted"), "event_id": "count_me"})
    real_loads = json.loads
    parses: list[str] = []

    def counting_loads(text: Any, **kwargs: Any) -> Any:
        if text == frame:
            parses.append(text)
        return real_loads(text, **kwargs)

    monkeypatch.setattr(json, "loads", counting_loads)
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await _next(sock, "session.created")
            await sock.send(frame)
            await _next(sock, "conversation.item.done")
    assert len(parses) == 1
