"""The local server's websockets: direct and sideband conversations, scripted responses, every fault knob."""

import base64
import json

import pytest
import trio
from helpers import call_id_of, create_call, direct, loads, sideband
from helpers import read_until as until

from rtengine import ConnectFailed, SessionConfig
from rtengine.adapters._peer import PeerService
from rtengine.adapters._ws import open_socket
from rtengine.protocol import (
    function_call_output,
    item_truncate,
    response_cancel,
    response_create,
    session_update,
    user_text,
)
from rtengine.protocol._audio import rms
from rtengine.protocol._lifecycle import SocketEnd
from rtengine.protocol._payloads import encode
from rtengine.server import Faults, LocalServer, ServerOptions, ToolScript, open_local_server


async def test_direct_conversation_round_trip(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {"authorization": "Bearer k"}) as sock:
            created = loads(await sock.receive())
            assert created["type"] == "session.created"
            assert created["event_id"]
            assert created["session"]["model"] == "gpt-realtime"
            await sock.send(encode(session_update(SessionConfig(instructions="short answers"))))
            updated = loads(await sock.receive())
            assert updated["type"] == "session.updated"
            assert updated["session"]["instructions"] == "short answers"
            await sock.send(encode(user_text("hello there")))
            assert [e["type"] for e in await until(sock, "conversation.item.done")] == [
                "conversation.item.added",
                "conversation.item.done",
            ]
            await sock.send(encode(response_create()))
            events = await until(sock, "response.done")
    types = [e["type"] for e in events]
    assert types[0] == "response.created"
    assert all("event_id" in e for e in events)
    transcript = "".join(str(e["delta"]) for e in events if e["type"] == "response.output_audio_transcript.delta")
    assert transcript == "You said: hello there"
    pcm = b"".join(base64.b64decode(str(e["delta"])) for e in events if e["type"] == "response.output_audio.delta")
    assert len(pcm) == 24000 * 2 * 200 // 1000  # 200 ms of PCM16 24 kHz
    assert rms(pcm) > 0.1
    assert events[-1]["response"]["status"] == "completed"
    record = server.record.connections[-1]
    assert record.kind == "direct"
    assert record.query == {"model": "gpt-realtime"}
    assert record.accepted
    assert record.headers["authorization"] == "Bearer k"
    assert record.types_in() == ["session.update", "conversation.item.create", "response.create"]
    await server.record.wait_until(lambda: record.end is not None)
    assert (record.end, record.close_code, record.close_answered) == ("client_close", 1000, True)


async def test_text_modality_streams_text_and_one_done(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await sock.receive()
            await sock.send(encode(session_update(SessionConfig(output_modalities=("text",)))))
            await sock.send(encode(response_create()))
            events = await until(sock, "response.done")
    types = [e["type"] for e in events]
    assert "response.output_audio.delta" not in types
    assert types.count("response.output_text.done") == 1
    assert types.count("response.output_text.delta") >= 2


async def test_active_response_conflict_and_cancel(peers: PeerService) -> None:
    async with open_local_server(ServerOptions(delta_interval=0.05), peers=peers) as server:
        with trio.fail_after(10):
            async with open_socket(direct(server), {}) as sock:
                await sock.receive()
                await sock.send(encode(response_cancel()))
                benign = loads(await sock.receive())
                assert benign["error"]["code"] == "response_cancel_not_active"
                await sock.send(encode(response_create()))
                await until(sock, "response.created")
                await sock.send(encode(response_create()))
                conflict = await until(sock, "error")
                assert conflict[-1]["error"]["code"] == "conversation_already_has_active_response"
                await sock.send(encode(response_cancel()))
                done = (await until(sock, "response.done"))[-1]
                assert done["response"]["status"] == "cancelled"


async def test_sideband_of_a_call(server: LocalServer, offer_sdp: str) -> None:
    with trio.fail_after(10):
        call_id = call_id_of(await create_call(server, offer_sdp, SessionConfig(instructions="from the call")))
        async with open_socket(sideband(server, call_id), {"authorization": "Bearer t"}) as sock:
            await sock.send(encode({"type": "session.update", "session": {"type": "realtime"}}))
            updated = loads(await sock.receive())  # the first event on a sideband: no session.created
            assert updated["type"] == "session.updated"
            assert updated["session"]["instructions"] == "from the call"
            await sock.send(encode(response_create()))
            events = await until(sock, "response.done")
            events += await until(sock, "output_audio_buffer.stopped")
    types = [e["type"] for e in events]
    assert "response.output_audio.delta" not in types  # audio travels over RTP on a call
    assert "response.output_audio_transcript.delta" in types
    assert "output_audio_buffer.started" in types
    record = server.record.sidebands()[-1]
    assert record.query == {"call_id": call_id}
    await server.record.wait_until(lambda: record.end is not None)
    assert server.open_calls == [call_id]  # the call outlives its sideband


async def test_two_sidebands_are_views_of_one_conversation(server: LocalServer, offer_sdp: str) -> None:
    """A text sent on one sideband is answered on both; neither leaving ends the call."""
    with trio.fail_after(10):
        call_id = call_id_of(await create_call(server, offer_sdp))
        async with open_socket(sideband(server, call_id), {}) as first:
            await first.send(encode(session_update(SessionConfig())))
            assert loads(await first.receive())["type"] == "session.updated"
            async with open_socket(sideband(server, call_id), {}) as second:
                await second.send(encode(session_update(SessionConfig())))
                for sock in (first, second):  # the state change goes to every view
                    assert loads(await sock.receive())["type"] == "session.updated"
                await first.send(encode(user_text("one conversation")))
                await first.send(encode(response_create()))
                for sock in (first, second):
                    events = await until(sock, "response.done")
                    transcripts = [e["transcript"] for e in events if str(e["type"]).endswith("transcript.done")]
                    assert transcripts == ["You said: one conversation"]
            inner = server.record.sidebands()[1]
            await server.record.wait_until(lambda: inner.end is not None)
            assert call_id in server.open_calls  # one sideband left, the other still holds the call
            await first.send(encode(response_create()))
            await until(first, "response.done")
        await server.record.wait_until(lambda: all(c.end is not None for c in server.record.sidebands()))
    assert [c.end for c in server.record.sidebands()] == ["client_close", "client_close"]
    assert server.open_calls == [call_id]


async def test_sideband_rejections(server: LocalServer, offer_sdp: str) -> None:
    with trio.fail_after(10):
        with pytest.raises(ConnectFailed) as unknown:
            async with open_socket(sideband(server, "rtc_unknown"), {}):
                pass
        assert unknown.value.status == 404
        assert "call_id_not_found" in unknown.value.body  # the API's code, as for a hang-up of an unknown call
        call_id = call_id_of(await create_call(server, offer_sdp))
        url = server.base_url.replace("http", "ws") + f"/realtime?model=m&call_id={call_id}"
        with pytest.raises(ConnectFailed) as both:
            async with open_socket(url, {}):
                pass
        assert both.value.status == 400
    assert server.record.connections[-1].end == "rejected"


async def test_websocket_needs_the_api_key(peers: PeerService) -> None:
    async with open_local_server(ServerOptions(api_key="sk-x"), peers=peers) as server:
        with trio.fail_after(10):
            with pytest.raises(ConnectFailed) as info:
                async with open_socket(direct(server), {"authorization": "Bearer nope"}):
                    pass
            assert info.value.status == 401
            async with open_socket(direct(server), {"authorization": "Bearer sk-x"}) as sock:
                assert loads(await sock.receive())["type"] == "session.created"


async def test_tool_script_waits_for_the_function_output(peers: PeerService) -> None:
    options = ServerOptions(delta_interval=0.0, tool_call=ToolScript("lookup", '{"q":"tides"}'))
    async with open_local_server(options, peers=peers) as server:
        with trio.fail_after(10):
            async with open_socket(direct(server), {}) as sock:
                await sock.receive()
                await sock.send(encode(response_create()))
                events = await until(sock, "response.done")
                done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
                assert done["name"] == "lookup"
                assert done["arguments"] == '{"q":"tides"}'
                await sock.send(encode(function_call_output(str(done["call_id"]), "high tide at noon")))
                await until(sock, "conversation.item.done")
                await sock.send(encode(response_create()))
                reply = await until(sock, "response.output_audio_transcript.done")
    assert reply[-1]["transcript"] == "The lookup tool returned: high tide at noon"


async def test_truncate_rules(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await sock.receive()
            await sock.send(encode(item_truncate("item_missing", 10)))
            error = loads(await sock.receive())["error"]
            assert "Only model output audio" in error["message"]
            assert error["code"] == "unsupported_content_type"
            await sock.send(encode(response_create()))
            events = await until(sock, "rate_limits.updated")
            item_id = next(e["item_id"] for e in events if e["type"] == "response.output_audio.delta")
            await sock.send(encode(item_truncate(str(item_id), 100)))
            assert loads(await sock.receive())["type"] == "conversation.item.truncated"
            await sock.send(
                encode(item_truncate(str(item_id), 5000))
            )  # past what the first cut left: the error, then clamped to it
            assert "already shorter than" in loads(await sock.receive())["error"]["message"]
            truncated = loads(await sock.receive())
            assert (truncated["type"], truncated["audio_end_ms"]) == ("conversation.item.truncated", 100)


async def test_bad_client_frames_get_error_events(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await sock.receive()
            await sock.send("{oops")
            assert loads(await sock.receive())["error"]["code"] == "invalid_event"
            await sock.send(encode({"type": "made.up"}))
            assert loads(await sock.receive())["error"]["param"] == "type"
            await sock.send(encode({"type": "session.update", "session": {"type": "realtime", "id": "sess_x"}}))
            assert loads(await sock.receive())["error"]["param"] == "session.id"
            await sock.send(encode({"type": "session.update", "session": {}}))
            assert loads(await sock.receive())["error"]["code"] == "missing_required_parameter"


async def test_sideband_accept_delay_and_abandoned_handshake(server: LocalServer, offer_sdp: str) -> None:
    call_id = call_id_of(await create_call(server, offer_sdp))
    server.set_faults(Faults(sideband_accept_delay=0.5))
    with trio.fail_after(10):
        with pytest.raises(ConnectFailed, match="timed out"):
            async with open_socket(sideband(server, call_id), {}, connect_timeout=0.1):
                pass
        record = server.record.sidebands()[-1]
        await server.record.wait_until(lambda: record.end is not None)
        assert record.end == "handshake_abandoned"
        assert not record.accepted
        start = trio.current_time()
        async with open_socket(sideband(server, call_id), {}) as sock:
            assert trio.current_time() - start >= 0.5
            await sock.send(encode(session_update(SessionConfig())))
            assert loads(await sock.receive())["type"] == "session.updated"


async def test_refuse_first_sideband_joins_then_accept(server: LocalServer, offer_sdp: str) -> None:
    call_id = call_id_of(await create_call(server, offer_sdp))
    server.set_faults(Faults(refuse_sideband_joins=2))
    with trio.fail_after(10):
        for _ in range(2):
            with pytest.raises(ConnectFailed) as info:
                async with open_socket(sideband(server, call_id), {}):
                    pass
            assert info.value.status == 503
        async with open_socket(sideband(server, call_id), {}) as sock:
            await sock.send(encode(session_update(SessionConfig())))
            assert loads(await sock.receive())["type"] == "session.updated"


async def test_websocket_status_rejects_every_handshake(server: LocalServer) -> None:
    server.set_faults(Faults(websocket_status=429))
    with trio.fail_after(10), pytest.raises(ConnectFailed) as info:
        async with open_socket(direct(server), {}):
            pass
    assert info.value.status == 429


async def test_close_after_events_clean(server: LocalServer) -> None:
    server.set_faults(Faults(close_after_events=2))
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await sock.receive()
            await sock.send(encode(session_update(SessionConfig())))
            assert loads(await sock.receive())["type"] == "session.updated"
            end = await sock.receive()
            assert isinstance(end, SocketEnd)
            assert (end.clean, end.code, end.reason) == (True, 1000, "rtengine local server: close_after_events")
            assert sock.close_code == 1000
        record = server.record.connections[-1]
        await server.record.wait_until(lambda: record.close_answered is not None)
    assert record.end == "server_close"
    assert record.close_answered


async def test_close_after_events_abrupt(server: LocalServer) -> None:
    server.set_faults(Faults(close_after_events=1, close_mode="abrupt"))
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            assert loads(await sock.receive())["type"] == "session.created"
            end = await sock.receive()
            assert isinstance(end, SocketEnd)
            assert (end.clean, end.code) == (False, None)  # no close frame: abnormal closure
            assert sock.close_code is None
    assert server.record.connections[-1].end == "abrupt"


async def test_ignore_client_close_makes_close_run_to_its_deadline(server: LocalServer) -> None:
    server.set_faults(Faults(ignore_client_close=True))
    with trio.fail_after(10):
        start = trio.current_time()
        async with open_socket(direct(server), {}, close_timeout=0.3) as sock:
            await sock.receive()
        assert 0.3 <= trio.current_time() - start < 2.0
        record = server.record.connections[-1]
        await server.record.wait_until(lambda: record.end is not None)
    assert record.end == "client_close"
    assert record.close_code == 1000
    assert record.close_answered is False


async def test_healthy_close_is_prompt(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}, close_timeout=5) as sock:
            await sock.receive()
        assert sock.close_took is not None
        assert sock.close_took < 1.0


@pytest.mark.parametrize(
    "injection",
    ["malformed_json", "binary", "unknown_event", "error:invalid_api_key", "oversized"],
)
async def test_injections_follow_the_first_session_updated(server: LocalServer, injection: str) -> None:
    server.set_faults(Faults(inject=(injection,), oversized_bytes=64 * 1024))
    with trio.fail_after(10):
        async with open_socket(direct(server), {}, max_message_size=32 * 1024) as sock:
            await sock.receive()
            await sock.send(encode(session_update(SessionConfig())))
            assert loads(await sock.receive())["type"] == "session.updated"
            frame = await sock.receive()
    if injection == "malformed_json":
        assert isinstance(frame, str)
        with pytest.raises(ValueError, match="Expecting"):
            json.loads(frame)
    elif injection == "binary":
        assert isinstance(frame, bytes)
    elif injection == "unknown_event":
        assert loads(frame)["type"] == "rtengine.unknown_event"
    elif injection == "oversized":
        assert isinstance(frame, SocketEnd)
        assert (frame.clean, frame.code, frame.reason) == (False, 1009, "message too big")
        assert sock.close_code == 1009  # the client's max_message_size refused it
    else:
        error = loads(frame)
        assert error["type"] == "error"
        assert error["error"]["code"] == "invalid_api_key"


async def test_client_eof_is_recorded(server: LocalServer) -> None:
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            await stream.send_all(
                b"GET /v1/realtime?model=m HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            assert (await stream.receive_some(4096)).startswith(b"HTTP/1.1 101")
        record = server.record.connections[-1]
        await server.record.wait_until(lambda: record.end is not None)
    assert record.end == "eof"


async def test_a_close_right_behind_a_request_is_answered_cleanly(server: LocalServer) -> None:
    # session.update and CLOSE arrive in one read: the reply to the update must not be sent after the CLOSE.
    import wsproto
    import wsproto.events as wse

    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            await stream.send_all(client.send(wse.Request(host="x", target="/v1/realtime?model=m")))
            handshake = b""
            while not any(isinstance(e, wse.AcceptConnection) for e in client.events()):
                handshake = await stream.receive_some(65536)
                client.receive_data(handshake)
            update = json.dumps({"type": "session.update", "session": {"type": "realtime"}})
            await stream.send_all(client.send(wse.TextMessage(data=update)) + client.send(wse.CloseConnection(1000)))
            closed = False
            while not closed:
                data = await stream.receive_some(65536)
                if not data:
                    break
                client.receive_data(data)
                closed = any(isinstance(e, wse.CloseConnection) for e in client.events())
        record = server.record.connections[-1]
        await server.record.wait_until(lambda: record.end is not None)
    assert closed
    assert (record.end, record.close_code, record.close_answered) == ("client_close", 1000, True)
