"""The local server's response shapes and order, as recorded from the real API (tests/server/recordings/).

Every event here is also checked against the ``openai`` SDK's types by the suite-wide fixture in conftest.py.
"""

import base64
from typing import Any

import pytest
import trio
from helpers import call_id_of, create_call, direct, loads, sideband
from helpers import read_until as until

from rtengine import SessionConfig
from rtengine.adapters._peer import PeerService
from rtengine.adapters._ws import open_socket
from rtengine.protocol._audio import tone
from rtengine.protocol._payloads import encode
from rtengine.server import LocalServer, ServerOptions, ToolScript, open_local_server
from rtengine.server._model import ActiveResponse

TEXT_SESSION = {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}}
USER_HELLO = {
    "type": "conversation.item.create",
    "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hello."}]},
}


def collapsed(events: list[dict[str, Any]]) -> list[str]:
    types: list[str] = []
    for event in events:
        if not (types and types[-1] == event["type"] and event["type"].endswith(".delta")):
            types.append(event["type"])
    return types


async def test_text_response_order_parts_usage_and_rate_limits(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await sock.receive()
            await sock.send(encode(TEXT_SESSION))
            await until(sock, "session.updated")
            await sock.send(encode(USER_HELLO))
            await until(sock, "conversation.item.done")
            await sock.send(encode({"type": "response.create", "response": {"metadata": {"topic": "greeting"}}}))
            events = await until(sock, "rate_limits.updated")
    assert collapsed(events) == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
        "rate_limits.updated",
    ]
    by_type = {e["type"]: e for e in events}
    assert by_type["response.content_part.added"]["part"] == {"type": "text", "text": ""}
    assert by_type["response.content_part.done"]["part"] == {"type": "text", "text": "You said: Say hello."}
    assert by_type["conversation.item.done"]["item"]["content"] == [
        {"type": "output_text", "text": "You said: Say hello."}
    ]
    response = by_type["response.done"]["response"]
    assert response["metadata"] == {"topic": "greeting"}
    assert by_type["response.created"]["response"]["metadata"] == {"topic": "greeting"}
    assert response["audio"]["output"] == {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}
    usage = response["usage"]
    assert usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["output_token_details"]["text_tokens"] == usage["output_tokens"]
    assert by_type["rate_limits.updated"]["rate_limits"][0]["name"] == "tokens"


async def test_tool_call_order_matches_the_api(peers: PeerService) -> None:
    options = ServerOptions(delta_interval=0.0, tool_call=ToolScript("get_weather", '{"city": "London"}'))
    async with open_local_server(options, peers=peers) as server:
        with trio.fail_after(10):
            async with open_socket(direct(server), {}) as sock:
                await sock.receive()
                await sock.send(encode({"type": "response.create"}))
                events = await until(sock, "rate_limits.updated")
    assert collapsed(events)[-6:] == [
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
        "rate_limits.updated",
    ]
    assert events[-2]["response"]["output"][0]["arguments"] == '{"city": "London"}'


async def test_cancelled_response_keeps_its_output_and_reason(peers: PeerService) -> None:
    async with open_local_server(
        ServerOptions(delta_interval=0.05, reply_text="one two three four five six"), peers=peers
    ) as server:
        with trio.fail_after(10):
            async with open_socket(direct(server), {}) as sock:
                await sock.receive()
                await sock.send(encode(TEXT_SESSION))
                await until(sock, "session.updated")
                await sock.send(encode({"type": "response.create"}))
                events = await until(sock, "response.output_text.delta")
                await sock.send(encode({"type": "response.cancel"}))
                events += await until(sock, "response.done")
    response = events[-1]["response"]
    assert response["status"] == "cancelled"
    assert response["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    (item,) = response["output"]
    assert item["status"] == "incomplete"
    sent = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert sent
    assert sent != "one two three four five six"
    assert item["content"] == [{"type": "output_text", "text": sent}]


async def test_speech_interrupting_a_response_is_turn_detected(peers: PeerService) -> None:
    async with open_local_server(ServerOptions(delta_interval=0.05, audio_ms=2000), peers=peers) as server:
        with trio.fail_after(10):
            async with open_socket(direct(server), {}) as sock:
                await sock.receive()
                await sock.send(encode({"type": "response.create"}))
                await until(sock, "response.output_audio_transcript.delta")
                audio = base64.b64encode(tone(300.0, 100, amplitude=0.5)).decode()
                await sock.send(encode({"type": "input_audio_buffer.append", "audio": audio}))
                events = await until(sock, "response.done")
    assert events[-1]["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}


async def test_active_response_cancel_records_the_first_reason() -> None:
    response = ActiveResponse("resp_1", trio.CancelScope())
    response.cancel("turn_detected")
    response.cancel("client_cancelled")
    assert response.scope.cancel_called
    assert response.reason == "turn_detected"


@pytest.mark.parametrize(
    ("item", "message", "param", "code"),
    [
        (
            {"type": "message", "role": "assistant", "content": [{"type": "text", "text": "hi"}]},
            "Invalid value: 'text'. Value must be 'output_text'.",
            "item.content[0].type",
            "invalid_value",
        ),
        (
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi", "x": 1}]},
            "Unknown parameter: 'item.content[0].x'.",
            "item.content[0].x",
            "unknown_parameter",
        ),
        (
            {"type": "message", "role": "robot", "content": []},
            "Invalid value: 'robot'. Supported values are: 'user', 'system', and 'assistant'.",
            "item.role",
            "invalid_value",
        ),
        ({"type": "function_call_output", "output": "x"}, None, "item.call_id", "missing_required_parameter"),
    ],
)
async def test_invalid_items_are_rejected_not_echoed(
    server: LocalServer, item: dict[str, Any], message: str | None, param: str, code: str
) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await sock.receive()
            await sock.send(encode({"type": "conversation.item.create", "event_id": "evt_item", "item": item}))
            error = loads(await sock.receive())["error"]
            await sock.send(encode(USER_HELLO))  # the conversation goes on; nothing was added before it
            added = loads(await sock.receive())
    assert (error["code"], error["param"], error["event_id"]) == (code, param, "evt_item")
    if message is not None:
        assert error["message"] == message
    assert added["type"] == "conversation.item.added"
    assert added["previous_item_id"] is None


async def test_session_update_with_model_is_applied(server: LocalServer) -> None:
    update = {"type": "realtime", "model": "gpt-realtime", "instructions": "Be brief."}
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await sock.receive()
            await sock.send(encode({"type": "session.update", "session": update}))
            updated = loads(await sock.receive())
    assert updated["type"] == "session.updated"
    assert (updated["session"]["model"], updated["session"]["instructions"]) == ("gpt-realtime", "Be brief.")


async def test_call_output_audio_buffer_events(peers: PeerService, offer_sdp: str) -> None:
    """On a call: ``started`` after the transcript deltas, ``stopped`` after ``rate_limits.updated``; no
    ``stopped`` after a tool call (no audio); ``cleared`` names the response whose audio was cut."""
    options = ServerOptions(delta_interval=0.0, tool_call=ToolScript("lookup", "{}"))
    async with open_local_server(options, peers=peers) as server:
        with trio.fail_after(15):
            call_id = call_id_of(await create_call(server, offer_sdp, SessionConfig()))
            async with open_socket(sideband(server, call_id), {}) as sock:
                await sock.send(encode({"type": "session.update", "session": {"type": "realtime"}}))
                await until(sock, "session.updated")
                await sock.send(encode({"type": "response.create"}))
                tool = await until(sock, "rate_limits.updated")
                await sock.send(encode({"type": "response.create"}))
                spoken = await until(sock, "output_audio_buffer.stopped")
                await sock.send(encode({"type": "output_audio_buffer.clear"}))
                cleared = await until(sock, "output_audio_buffer.cleared")
    assert not any(e["type"].startswith("output_audio_buffer") for e in tool)
    assert collapsed(spoken)[3:] == [
        "response.content_part.added",
        "response.output_audio_transcript.delta",
        "output_audio_buffer.started",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
        "rate_limits.updated",
        "output_audio_buffer.stopped",
    ]
    assert cleared[-1]["response_id"] == spoken[0]["response"]["id"]
