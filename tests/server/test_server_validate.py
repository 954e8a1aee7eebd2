"""``session.update`` validated like the API, and one client's bad input never reaching another's conversation.

The first test is a finding of a fuzzing run (issue #10): a sideband's ``session.update`` with a wrongly typed
``output_modalities`` followed by ``response.create`` raised out of the call's conversation into the server's
nursery, and ``rtengine serve`` exited — every call ended.
"""

import json
import logging
import signal
from typing import Any

import httpx
import pytest
import trio
from helpers import call_id_of, create_call, direct, loads, sideband, start_serve
from hypothesis import given, settings
from hypothesis import strategies as st
from rawnet import valid_error

from rtengine import SessionConfig
from rtengine.adapters._ws import RealtimeSocket, open_socket
from rtengine.protocol import multipart_body, response_create, session_update, sideband_url
from rtengine.protocol._payloads import encode
from rtengine.server import LocalServer
from rtengine.server._calls import CallManager
from rtengine.server._item_store import ConversationItems
from rtengine.server._responses import ResponseStreamer
from rtengine.server._validate import check_session


async def first_of(sock: RealtimeSocket, *types: str) -> dict[str, Any]:
    """Skip server events until the first of ``types``."""
    while True:
        event = loads(await sock.receive())
        if event["type"] in types:
            return event


async def update(sock: RealtimeSocket, session: Any, event_id: str = "evt_client_1") -> dict[str, Any]:
    """Send ``session.update``; the answer: ``session.updated`` or the ``error`` (checked against the SDK)."""
    await sock.send(json.dumps({"type": "session.update", "event_id": event_id, "session": session}))
    answer = await first_of(sock, "session.updated", "error")
    if answer["type"] == "error":
        assert valid_error(answer)["event_id"] == event_id
    return answer


@pytest.mark.parametrize("modalities", [{}, 5, True, "audio"])
async def test_a_wrongly_typed_session_on_a_sideband_is_refused_and_the_call_lives_on(
    server: LocalServer, offer_sdp: str, modalities: object
) -> None:
    with trio.fail_after(15):
        call_id = call_id_of(await create_call(server, offer_sdp))
        other_id = call_id_of(await create_call(server, offer_sdp))
        async with open_socket(sideband(server, call_id), {}) as sock:
            answer = await update(sock, {"type": "realtime", "output_modalities": modalities})
            error = answer["error"]
            assert (error["code"], error["param"]) == ("invalid_type", "session.output_modalities")
            assert error["message"].startswith("Invalid type for 'session.output_modalities': expected an array")
            await sock.send(encode(response_create()))
            done = await first_of(sock, "response.done", "error")
            assert done["type"] == "response.done"
            assert done["response"]["status"] == "completed"
        assert other_id in server.open_calls
        async with open_socket(sideband(server, other_id), {}) as sock:
            assert (await update(sock, {"type": "realtime"}))["type"] == "session.updated"


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({"type": "realtime", "output_modalities": ["video"]}, "invalid_value", "session.output_modalities[0]"),
        ({"type": "realtime", "output_modalities": ["text", "audio"]}, "invalid_value", "session.output_modalities"),
        ({"type": "realtime", "instructions": 5}, "invalid_type", "session.instructions"),
        ({"type": "realtime", "voice": "marin"}, "unknown_parameter", "session.voice"),
        ({"type": "video"}, "invalid_value", "session.type"),
        ({"type": "realtime", "max_output_tokens": 0}, "integer_below_min_value", "session.max_output_tokens"),
        ({"type": "realtime", "max_output_tokens": 4097}, "integer_above_max_value", "session.max_output_tokens"),
        ({"type": "realtime", "max_output_tokens": "lots"}, "invalid_value", "session.max_output_tokens"),
        (
            {"type": "realtime", "audio": {"output": {"speed": 3}}},
            "decimal_above_max_value",
            "session.audio.output.speed",
        ),
        ({"type": "realtime", "audio": {"output": {"voice": ["alloy"]}}}, "invalid_type", "session.audio.output.voice"),
        (
            {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "semantic_vad", "threshold": 0.5}}}},
            "unknown_parameter",
            "session.audio.input.turn_detection.threshold",
        ),
        (
            {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": "hi"}}}},
            "invalid_type",
            "session.audio.input.turn_detection.threshold",
        ),
        (
            {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}},
            "invalid_value",
            "session.audio.input.format.rate",
        ),
        ({"type": "realtime", "tools": [{"type": "function", "name": 1}]}, "invalid_type", "session.tools[0].name"),
        ({"type": "realtime", "tools": {"type": "function"}}, "invalid_type", "session.tools"),
        ({"type": "realtime", "tool_choice": 7}, "invalid_type", "session.tool_choice"),
        ({"instructions": "x"}, "missing_required_parameter", "session.type"),
    ],
)
async def test_session_update_is_validated_like_the_api(
    server: LocalServer, session: dict[str, Any], code: str, param: str
) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            error = (await update(sock, session))["error"]
            assert (error["code"], error["param"]) == (code, param)
            assert error["type"] == "invalid_request_error"
            # Nothing of the refused update was applied.
            updated = await update(sock, {"type": "realtime"})
    assert updated["session"]["output_modalities"] == ["audio"]
    assert updated["session"]["audio"]["output"]["speed"] == 1.0
    assert updated["session"]["max_output_tokens"] == "inf"


async def test_a_realtime_session_cannot_become_a_transcription_session(server: LocalServer) -> None:
    """The API refuses the switch ("invalid_parameter: Passing a transcription session update event to a realtime
    session is not allowed.", reported from the live API in crmitchelmore/justspeaktoit#427); a transcription session
    is opened as one (``?intent=transcription``). The session stays realtime."""
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            error = (await update(sock, {"type": "transcription"}))["error"]
            assert (error["code"], error["param"]) == ("invalid_parameter", "session.type")
            assert "transcription session update event to a realtime session" in error["message"]
            updated = await update(sock, {"type": "realtime", "instructions": "still realtime"})
    assert updated["session"]["type"] == "realtime"
    assert updated["session"]["instructions"] == "still realtime"


async def test_what_the_agents_sdk_and_rtengine_send_is_accepted(server: LocalServer) -> None:
    agents_sdk = {
        "type": "realtime",
        "model": "gpt-realtime",
        "instructions": "Be an agent.",
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "gpt-4o-mini-transcribe"},
                "turn_detection": {"type": "semantic_vad", "eagerness": "auto", "interrupt_response": True},
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": "ash", "speed": 1.25},
        },
        "tools": [{"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}}],
        "tool_choice": "auto",
        "tracing": "auto",
    }
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            assert (await update(sock, agents_sdk))["session"]["instructions"] == "Be an agent."
            own = session_update(SessionConfig(instructions="mine", output_modalities=("text",)))["session"]
            assert (await update(sock, own))["session"]["output_modalities"] == ["text"]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_nan_in_a_client_event_is_refused_not_echoed(server: LocalServer, constant: str) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            session = f'{{"type":"realtime","audio":{{"output":{{"speed":{constant}}}}}}}'
            frame = f'{{"type":"session.update","session":{session}}}'
            await sock.send(frame)
            error = valid_error(await first_of(sock, "session.updated", "error"))
            assert error["code"] == "invalid_event"
            updated = await update(sock, {"type": "realtime"})
    assert updated["session"]["audio"]["output"]["speed"] == 1.0
    json.dumps(server.record.connections[-1].frames_out, allow_nan=False)  # standard JSON only went out


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_keys = st.sampled_from(["type", "model", "audio", "input", "output", "format", "rate", "speed", "voice", "tools"])
_shaped = st.recursive(
    _json, lambda inner: st.dictionaries(_keys, inner, max_size=4) | st.lists(inner, max_size=3), max_leaves=20
)


@settings(max_examples=300, deadline=None)
@given(session=st.one_of(_json, _shaped))
def test_check_session_answers_any_json_with_a_problem_or_none(session: Any) -> None:
    problem = check_session(session)
    if problem is not None:
        assert problem.code
        assert problem.message
        assert problem.param is None or problem.param.startswith("session")
    else:
        assert isinstance(session, dict)
        assert session.get("type") in ("realtime", "transcription")


async def test_a_bug_streaming_one_response_stays_in_its_conversation(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug (here: injected) while streaming a response becomes that conversation's ``server_error``, logged
    once; the conversation and every other one go on."""
    real_stream = ResponseStreamer.stream
    broken: list[object] = []

    async def stream(self: ResponseStreamer, response: Any) -> None:
        if not broken:
            broken.append(response)
            raise RuntimeError("injected bug")
        await real_stream(self, response)

    monkeypatch.setattr(ResponseStreamer, "stream", stream)
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as one, open_socket(direct(server), {}) as two:
            await one.send(encode(response_create()))
            error = valid_error(await first_of(one, "error"))
            assert (error["code"], error["type"]) == ("server_error", "server_error")
            for sock in (two, one):
                await sock.send(encode(response_create()))
                assert (await first_of(sock, "response.done"))["response"]["status"] == "completed"
    bugs = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in bugs] == ["bug in the local server while streaming a response"]
    caplog.clear()  # the bug was injected: the suite-wide "no ERROR logged" check must not count it


async def test_a_bug_in_one_call_never_ends_the_server(
    server: LocalServer, offer_sdp: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in a call's own task (here: injected into its data channel) is logged once; other calls and new
    connections are served as before."""

    real = CallManager._serve_data_channel
    broken: list[str] = []

    async def serve_data_channel(self: CallManager, call: Any) -> None:
        if not broken:
            broken.append(call.call_id)
            raise RuntimeError("injected bug")
        await real(self, call)

    monkeypatch.setattr(CallManager, "_serve_data_channel", serve_data_channel)
    with trio.fail_after(10):
        first = call_id_of(await create_call(server, offer_sdp))
        await server.record.wait_until(lambda: first not in server.open_calls)  # the broken call ended
        assert broken == [first]
        assert server.record.calls[-1].end == "server_error"
        second = call_id_of(await create_call(server, offer_sdp))
        async with open_socket(sideband(server, second), {}) as sock:
            assert (await update(sock, {"type": "realtime"}))["type"] == "session.updated"
    bugs = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert bugs == [f"bug in the local server (call {first}); only it was ended"]
    caplog.clear()


async def test_rtengine_serve_survives_the_crash_sequence(offer_sdp: str) -> None:
    """The fuzzing finding end to end: ``rtengine serve`` used to exit (code 1) on this sequence from a sideband."""
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            process, base_url = await start_serve(nursery, "--delta-interval", "0")
            body = multipart_body(offer_sdp, SessionConfig().call_session_json())
            async with httpx.AsyncClient() as http:
                created = await http.post(
                    base_url + "/realtime/calls", content=body.content, headers={"content-type": body.content_type}
                )
            assert created.status_code == 201
            async with open_socket(sideband_url(base_url, call_id_of(created)), {}) as sock:
                answer = await update(sock, {"type": "realtime", "output_modalities": {"audio": True}})
                assert answer["error"]["code"] == "invalid_type"
                await sock.send(encode(response_create()))
                assert (await first_of(sock, "response.done"))["response"]["status"] == "completed"
            assert process.returncode is None
            async with open_socket(base_url.replace("http://", "ws://") + "/realtime?model=m", {}) as sock:
                assert (await update(sock, {"type": "realtime"}))["type"] == "session.updated"
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0


async def test_a_bug_handling_one_client_event_is_answered_server_error_and_the_socket_goes_on(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def truncate(self: ConversationItems, event: Any, origin: Any) -> None:
        raise KeyError("injected bug")

    monkeypatch.setattr(ConversationItems, "cut", truncate)
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await sock.send(
                json.dumps(
                    {"type": "conversation.item.truncate", "item_id": "i", "content_index": 0, "audio_end_ms": 0}
                )
            )
            error = valid_error(await first_of(sock, "error"))
            assert (error["code"], error["type"]) == ("server_error", "server_error")
            assert (await update(sock, {"type": "realtime"}))["type"] == "session.updated"
    bugs = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert bugs == ["bug in the local server while handling a client event"]
    caplog.clear()
