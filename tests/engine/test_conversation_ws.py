"""Websocket conversations against the local server: event flow, server errors, sequencing, barge-in, tools."""

import pytest
import trio
from engine_helpers import API_KEY, client_for, drain, ends, serving, until

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import (
    AudioOut,
    Closed,
    Error,
    ItemAdded,
    OutputTranscriptDelta,
    OutputTranscriptDone,
    ResponseDone,
    SessionUpdated,
    Started,
    ToolCall,
)
from rtengine.protocol._audio import tone
from rtengine.server import Faults, ToolScript

SESSION = rtengine.SessionConfig(instructions="test")


async def test_conversation_start_audio_text_close_round_trip(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                assert conv.answer_sdp is None
                assert conv.call_id is None
                assert conv.send_audio(tone(440, 20))
                await conv.send_text("hello")
                await conv.request_response()
                events = await until(conv, ResponseDone)
            rest = await drain(conv)
    assert isinstance(events[0], Started)
    assert events[0].transport == "websocket"
    assert isinstance(events[1], rtengine.events.SessionCreated)
    assert any(isinstance(e, SessionUpdated) for e in events)
    audio = [e for e in events if isinstance(e, AudioOut)]
    assert audio
    assert audio[0].sample_rate == 24000
    assert audio[0].num_channels == 1
    assert ends(rest) == [Closed("requested")]
    record = server.record.directs()[-1]
    assert record.query == {"model": "gpt-realtime"}
    assert record.headers["authorization"] == f"Bearer {API_KEY}"
    assert record.types_in()[0] == "session.update"
    assert sorted(record.types_in()[1:]) == ["conversation.item.create", "input_audio_buffer.append", "response.create"]
    assert conv.stats.audio_frames_sent == 1
    assert conv.stats.texts_sent == 1
    assert conv.stats.responses_requested == 1


async def test_conversation_start_defaults_to_ga_and_the_default_model(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, rtengine.SessionConfig()):
                pass
    record = server.record.directs()[-1]
    assert record.query == {"model": rtengine.DEFAULT_MODEL}
    first = dict(record.frames_in[0])
    assert str(first.pop("event_id")).startswith("rte_")  # every client event carries an id
    assert first == {"type": "session.update", "session": {"type": "realtime"}}


async def test_conversation_start_connect_failure_raises_and_emits_nothing(peers: PeerService) -> None:
    async with serving(peers, faults=Faults(websocket_status=503)) as server, client_for(server) as client:
        with trio.fail_after(10), pytest.raises(rtengine.ConnectFailed) as info:
            async with rtengine.open_conversation(client, SESSION):
                raise AssertionError("must not start")
    assert info.value.status == 503


async def test_conversation_start_preflight_failure_requires_an_api_key(
    peers: PeerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with serving(peers) as server, rtengine.RealtimeClient(server.base_url) as client:
        with (
            trio.fail_after(10),
            pytest.raises(rtengine.ConfigError, match="realtime conversation requires API key auth"),
        ):
            async with rtengine.open_conversation(client, SESSION):
                pass
    assert server.record.connections == []


async def test_api_key_comes_from_the_environment(peers: PeerService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    async with serving(peers) as server, rtengine.RealtimeClient(server.base_url) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                assert conv.active


async def test_conversation_transport_close_emits_closed_event(peers: PeerService) -> None:
    async with serving(peers, faults=Faults(close_after_events=2)) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                events = await drain(conv)
                assert not conv.active
                with pytest.raises(rtengine.ConversationNotRunning):
                    await conv.send_text("after the end")
    assert isinstance(events[0], Started)
    assert ends(events) == [Closed("transport_closed", 1000, "rtengine local server: close_after_events")]


async def test_abrupt_drop_is_an_error_then_closed(peers: PeerService) -> None:
    """A loss without a close frame (RST) is not a clean end: Error("connection_lost") then Closed("error"), and
    the code says no close frame was received (None, never a made-up 1006)."""
    faults = Faults(close_after_events=2, close_mode="abrupt")
    async with serving(peers, faults=faults) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                events = await drain(conv)
    error, closed = events[-2:]
    assert isinstance(error, Error)
    assert error.code == "connection_lost"
    assert error.fatal
    assert closed == Closed("error", None, None)


async def test_fatal_server_error_ends_with_error_then_closed(peers: PeerService) -> None:
    faults = Faults(inject=("error:invalid_api_key",))
    async with serving(peers, faults=faults) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                events = await drain(conv)
    assert ends(events) == [Error("Incorrect API key provided.", "invalid_api_key", fatal=True), Closed("error")]
    assert events[-1] == Closed("error")
    record = server.record.directs()[-1]
    await server.record.wait_until(lambda: record.end is not None)
    assert record.end == "client_close"
    assert record.close_answered


async def test_benign_server_error_is_reported_and_the_conversation_goes_on(peers: PeerService) -> None:
    faults = Faults(inject=("error:response_cancel_not_active",))
    async with serving(peers, faults=faults) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                events = await until(conv, Error)
                assert events[-1] == Error(
                    "Cancellation failed: no active response found", "response_cancel_not_active", fatal=False
                )
                assert conv.active
                await conv.send_text("still here")
                await conv.request_response()
                reply = await until(conv, OutputTranscriptDone)
    assert isinstance(reply[-1], OutputTranscriptDone)
    assert reply[-1].transcript == "You said: still here"


@pytest.mark.parametrize("injection", ["malformed_json", "binary", "unknown_event"])
async def test_malformed_and_unknown_frames_never_end_the_conversation(peers: PeerService, injection: str) -> None:
    async with serving(peers, faults=Faults(inject=(injection,))) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await conv.send_text("after the bad frame")
                await conv.request_response()
                events = await until(conv, ResponseDone)
                assert conv.active
    errors = [e for e in events if isinstance(e, Error)]
    if injection == "binary":  # reported, not fatal, counted
        assert errors == [Error(errors[0].message, "unexpected_binary_frame", fatal=False)]
        assert conv.stats.binary_frames == 1
    else:
        assert errors == []
    if injection == "unknown_event":
        assert conv.stats.unknown_events >= 1
        assert any(isinstance(e, rtengine.events.UnknownEvent) and e.type == "rtengine.unknown_event" for e in events)
    elif injection != "binary":
        assert conv.stats.protocol_warnings == 1


async def test_oversized_frame_ends_with_a_specific_error(peers: PeerService) -> None:
    faults = Faults(inject=("oversized",), oversized_bytes=200_000)
    async with serving(peers, faults=faults) as server, client_for(server, max_message_size=100_000) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                events = await drain(conv)
    error, closed = ends(events)
    assert isinstance(error, Error)
    assert "max_message_size" in error.message
    assert isinstance(closed, Closed)
    assert closed.reason == "error"
    assert closed.code == 1009


async def test_text_output_modality_streams_text_and_one_final_transcript(peers: PeerService) -> None:
    session = rtengine.SessionConfig(output_modalities=("text",))
    async with serving(peers, reply_text="hello world") as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, session) as conv:
                await conv.request_response()
                events = await until(conv, ResponseDone)
    deltas = [e.delta for e in events if isinstance(e, OutputTranscriptDelta)]
    dones = [e.transcript for e in events if isinstance(e, OutputTranscriptDone)]
    assert deltas == ["hello ", "world"]
    assert dones == ["hello world"]
    assert not any(isinstance(e, AudioOut) for e in events)
    assert server.record.directs()[-1].frames_in[0]["session"]["output_modalities"] == ["text"]


async def test_request_response_never_overlaps_an_active_response(peers: PeerService) -> None:
    async with serving(peers, delta_interval=0.02) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await conv.request_response()
                await conv.request_response()
                await conv.request_response()  # coalesces with the one already owed
                first = await until(conv, ResponseDone)
                second = await until(conv, ResponseDone)
                with trio.move_on_after(0.2):
                    extra = await until(conv, ResponseDone)
                    raise AssertionError(f"a third response ran: {extra}")
    assert not any(isinstance(e, Error) for e in first + second)
    record = server.record.directs()[-1]
    types = record.types_out()
    assert types.count("response.created") == 2
    assert "error" not in types  # no conversation_already_has_active_response
    assert conv.stats.responses_requested == 2
    assert conv.stats.responses_deferred == 2


async def test_cancel_response_ends_the_active_response_and_is_benign_when_none_is_active(peers: PeerService) -> None:
    async with serving(peers, delta_interval=0.05) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await conv.cancel_response()  # nothing active: the server's benign error, the conversation goes on
                events = await until(conv, Error)
                (cancel,) = server.record.directs()[-1].frames_in[1:]
                assert events[-1] == Error(
                    "Cancellation failed: no active response found",
                    "response_cancel_not_active",
                    fatal=False,
                    request_type="response.cancel",  # the server's error.event_id names the request
                    request_event_id=cancel["event_id"],
                )
                await conv.request_response()
                created = (await until(conv, rtengine.events.ResponseCreated))[-1]
                await conv.cancel_response()
                done = (await until(conv, ResponseDone))[-1]
                assert isinstance(created, rtengine.events.ResponseCreated)
                assert isinstance(done, ResponseDone)
                assert (done.status, done.response_id) == ("cancelled", created.response_id)
                assert conv.active
                await conv.request_response()  # the sequencer is free again
                again = (await until(conv, ResponseDone))[-1]
                assert isinstance(again, ResponseDone)
                assert again.status == "completed"
    assert server.record.directs()[-1].types_in().count("response.cancel") == 2


async def test_barge_in_truncates_clamped_to_received_audio(peers: PeerService) -> None:
    async with serving(peers, delta_interval=0.03, audio_ms=2000) as server, client_for(server) as client:
        with trio.fail_after(10):
            session = rtengine.SessionConfig(turn_detection=rtengine.TurnDetection(interrupt_response=True))
            async with rtengine.open_conversation(client, session) as conv:
                await conv.request_response()
                received = 0
                async for event in conv.events:
                    if isinstance(event, AudioOut):
                        received += len(event.pcm()) // 48
                        if received >= 300:
                            break
                conv.send_audio(tone(300, 100, amplitude=0.5))  # the user starts speaking
                events = await until(conv, ResponseDone)
                record = server.record.directs()[-1]
                await server.record.wait_until(lambda: "conversation.item.truncate" in record.types_in())
                await server.record.wait_until(lambda: "conversation.item.truncated" in record.types_out())
    assert any(isinstance(e, rtengine.events.SpeechStarted) for e in events)
    truncate = next(f for f in record.frames_in if f["type"] == "conversation.item.truncate")
    sent_before = [
        f for f in record.frames_out if f.get("type") == "response.output_audio.delta"
    ]  # every audio delta the server sent for the item
    assert 300 <= truncate["audio_end_ms"] <= 50 * len(sent_before)
    assert truncate["content_index"] == 0
    assert conv.stats.truncations_sent == 1
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert done.status == "cancelled"


async def test_tool_call_is_delivered_once_and_answered_with_a_response(peers: PeerService) -> None:
    tool = ToolScript("handoff", '{"to":"billing"}')
    async with serving(peers, tool_call=tool) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await conv.request_response()
                events = await until(conv, ResponseDone)
                calls = [e for e in events if isinstance(e, ToolCall)]
                assert len(calls) == 1  # arguments.done and item.done both announce it
                assert calls[0].name == "handoff"
                assert calls[0].parsed_arguments() == {"to": "billing"}
                assert conv.stats.duplicate_tool_calls == 1
                await conv.send_tool_output(calls[0].call_id, "handed off")
                reply = await until(conv, OutputTranscriptDone)
    assert isinstance(reply[-1], OutputTranscriptDone)
    assert reply[-1].transcript == "The handoff tool returned: handed off"
    record = server.record.directs()[-1]
    tail = record.types_in()[-2:]
    assert tail == ["conversation.item.create", "response.create"]
    assert record.frames_in[-2]["item"]["type"] == "function_call_output"


async def test_noop_tool_call_returns_empty_output_without_response(peers: PeerService) -> None:
    async with serving(peers, tool_call=ToolScript("noop", "{}")) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await conv.request_response()
                events = await until(conv, ResponseDone)
                call = next(e for e in events if isinstance(e, ToolCall))
                await conv.send_tool_output(call.call_id, "", respond=False)
                record = server.record.directs()[-1]
                await server.record.wait_until(lambda: record.types_in()[-1] == "conversation.item.create")
                await trio.sleep(0.2)
    assert record.frames_in[-1]["item"] == {"type": "function_call_output", "call_id": call.call_id, "output": ""}
    assert record.types_in().count("response.create") == 1


async def test_tool_call_does_not_block_later_events(peers: PeerService) -> None:
    async with serving(peers, tool_call=ToolScript()) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await conv.request_response()
                await until(conv, ToolCall)  # never answered
                await conv.send_text("and now?")
                start = trio.current_time()
                events = await until(conv, ItemAdded)
                assert trio.current_time() - start < 0.5
    assert isinstance(events[-1], ItemAdded)


async def test_separate_realtime_base_url_routes_the_socket(peers: PeerService) -> None:
    async with (
        serving(peers) as http_server,
        serving(peers) as ws_server,
        rtengine.RealtimeClient(http_server.base_url, api_key=API_KEY, realtime_base_url=ws_server.base_url) as client,
    ):
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION):
                pass
    assert len(ws_server.record.directs()) == 1
    assert http_server.record.connections == []


async def test_send_does_not_wait_for_the_parked_reader(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await until(conv, SessionUpdated)  # the server is silent now: the reader is parked
                record = server.record.directs()[-1]
                start = trio.current_time()
                await conv.send_text("while the reader waits")
                await server.record.wait_until(lambda: "conversation.item.create" in record.types_in())
                assert trio.current_time() - start < 0.2
