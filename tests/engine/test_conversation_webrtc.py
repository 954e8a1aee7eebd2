"""WebRTC conversations against the local server: answer first, buffered inputs, join failures, close races."""

import pytest
import trio
from engine_helpers import API_KEY, client_for, drain, ends, engine_tasks, serving, until

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import Closed, Error, SessionUpdated, Started
from rtengine.server import Faults


async def test_conversation_webrtc_start_posts_generated_session(peers: PeerService, offer_sdp: str) -> None:
    session = rtengine.SessionConfig(instructions="be brief", voice="marin")
    async with serving(peers, faults=Faults(sideband_accept_delay=1.0)) as server, client_for(server) as client:
        with trio.fail_after(10):
            start = trio.current_time()
            async with rtengine.open_conversation(client, session, offer_sdp=offer_sdp) as conv:
                answered = trio.current_time() - start
                assert conv.answer_sdp
                assert conv.answer_sdp.startswith("v=0")
                assert conv.call_id
                assert conv.call_id.startswith("rtc_")
                assert "answer" in conv.timeline
                assert "sideband_joined" not in conv.timeline
                assert not any(c.accepted for c in server.record.sidebands())
                await conv.send_text("queued before the join")
                events = await until(conv, SessionUpdated)
                joined = trio.current_time() - start
        assert answered < 0.5 <= 1.0 <= joined
        assert isinstance(events[0], Started)
        assert events[0].call_id == conv.call_id
        call = server.record.calls[-1]
        assert (call.path, call.query) == ("/v1/realtime/calls", "")
        assert call.headers["authorization"] == f"Bearer {API_KEY}"
        assert call.part_names == ["sdp", "session"]
        assert call.session == {**session.update_payload(), "model": "gpt-realtime"}
        sideband = server.record.sidebands()[-1]
        assert sideband.path == "/v1/realtime"
        assert sideband.query == {"call_id": conv.call_id}
        assert sideband.headers["authorization"] == f"Bearer {API_KEY}"
        await server.record.wait_until(lambda: len(sideband.frames_in) >= 2)
        assert sideband.types_in()[:2] == ["session.update", "conversation.item.create"]
        assert sideband.frames_in[1]["item"]["content"][0]["text"] == "queued before the join"
        assert "model" not in sideband.frames_in[0]["session"]
        rest = await drain(conv)
        assert ends(rest) == [Closed("requested")]


async def test_conversation_webrtc_close_while_sideband_connecting_drops_pending_join(
    peers: PeerService, offer_sdp: str
) -> None:
    async with serving(peers, faults=Faults(sideband_accept_delay=0.5)) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp) as conv:
                await server.record.wait_until(lambda: len(server.record.sidebands()) == 1)
                assert engine_tasks()
                await conv.close()
                assert not conv.active
            await trio.sleep(0.7)  # the reference's stale-event window
            events = await drain(conv)
            assert engine_tasks() == []
        assert [type(e) for e in events] == [Started, Closed]
        assert events[-1] == Closed("requested")
        record = server.record.sidebands()[-1]
        await server.record.wait_until(lambda: record.end is not None)
        assert record.end == "handshake_abandoned"
        assert not record.accepted


async def test_conversation_webrtc_sideband_connect_failure_closes_with_error(
    peers: PeerService, offer_sdp: str
) -> None:
    async with (
        serving(peers, faults=Faults(refuse_sideband_joins=100)) as server,
        client_for(server, sideband_retries=0) as client,
    ):
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp) as conv:
                events = await drain(conv)
                with pytest.raises(rtengine.ConversationNotRunning, match="conversation is not running"):
                    await conv.send_text("too late")
                with pytest.raises(rtengine.ConversationNotRunning):
                    conv.send_audio(b"\x00\x00")
    assert [type(e) for e in events] == [Started, Error, Closed]
    error = events[1]
    assert isinstance(error, Error)
    assert error.fatal
    assert "failed to connect realtime sideband" in error.message
    assert "503" in error.message
    assert events[2] == Closed("error")
    assert conv.stats.join_attempts == 1


async def test_sideband_join_retries_with_backoff_until_the_server_accepts(peers: PeerService, offer_sdp: str) -> None:
    async with (
        serving(peers, faults=Faults(refuse_sideband_joins=2)) as server,
        client_for(server, backoff_base=0.05) as client,
    ):
        with trio.fail_after(10):
            start = trio.current_time()
            async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp) as conv:
                await until(conv, SessionUpdated)
                elapsed = trio.current_time() - start
    assert conv.stats.join_attempts == 3
    assert [c.status for c in server.record.sidebands()] == [503, 503, 101]
    assert elapsed >= 0.9 * (0.05 + 0.1)  # backoff(1) + backoff(2)


async def test_inline_sideband_answers_after_the_join_and_raises_its_failure(
    peers: PeerService, offer_sdp: str
) -> None:
    async with serving(peers, faults=Faults(sideband_accept_delay=0.3)) as server, client_for(server) as client:
        with trio.fail_after(10):
            start = trio.current_time()
            async with rtengine.open_conversation(
                client, rtengine.SessionConfig(), offer_sdp=offer_sdp, sideband="inline"
            ) as conv:
                assert trio.current_time() - start >= 0.3
                assert "sideband_joined" in conv.timeline
            server.set_faults(Faults(refuse_sideband_joins=100))
            client.sideband_retries = 0
            with pytest.raises(rtengine.ConnectFailed) as info:
                async with rtengine.open_conversation(
                    client, rtengine.SessionConfig(), offer_sdp=offer_sdp, sideband="inline"
                ):
                    raise AssertionError("must not start")
            assert info.value.status == 503


async def test_call_creation_against_nothing_listening_retries_then_fails_to_connect(
    offer_sdp: str, caplog: pytest.LogCaptureFixture
) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()  # nothing listens there any more: connections are refused
    client = rtengine.RealtimeClient(f"http://127.0.0.1:{port}/v1", api_key=API_KEY, call_retries=2, backoff_base=0.01)
    async with client:
        with trio.fail_after(10), pytest.raises(rtengine.ConnectFailed) as info:
            async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp):
                raise AssertionError("must not start")
    assert str(info.value).startswith("realtime call creation failed: ConnectError")
    retries = [r.getMessage() for r in caplog.records if "call creation attempt" in r.getMessage()]
    assert [m.split(" failed")[0] for m in retries] == [
        "realtime call creation attempt 1",
        "realtime call creation attempt 2",
    ]
    assert engine_tasks() == []


async def test_realtime_webrtc_start_surfaces_backend_error(peers: PeerService, offer_sdp: str) -> None:
    async with (
        serving(peers, faults=Faults(call_status=500)) as server,
        client_for(server, call_retries=0) as client,
    ):
        with (
            trio.fail_after(10),
            pytest.raises(rtengine.CallRejected, match="currently experiencing high demand") as info,
        ):
            async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp):
                raise AssertionError("must not start")
    assert info.value.status == 500
    assert server.record.sidebands() == []


async def test_call_creation_retries_5xx_but_not_4xx(peers: PeerService, offer_sdp: str) -> None:
    async with serving(peers, faults=Faults(call_status=503)) as server, client_for(server, call_retries=2) as client:
        with trio.fail_after(10):
            with pytest.raises(rtengine.CallRejected):
                async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp):
                    pass
            assert len(server.record.calls) == 3
            server.set_faults(Faults(call_status=429))
            with pytest.raises(rtengine.CallRejected, match="rate limited"):
                async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp):
                    pass
            assert len(server.record.calls) == 4


async def test_bad_offer_and_wrong_key_fail_before_anything_starts(peers: PeerService, offer_sdp: str) -> None:
    async with serving(peers) as server:
        async with client_for(server) as client:
            with trio.fail_after(10), pytest.raises(rtengine.InvalidSdp):
                async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp="not sdp"):
                    pass
        async with rtengine.RealtimeClient(server.base_url, api_key="sk-wrong-key-42", call_retries=0) as wrong:
            with trio.fail_after(10), pytest.raises(rtengine.CallRejected) as info:
                async with rtengine.open_conversation(wrong, rtengine.SessionConfig(), offer_sdp=offer_sdp):
                    pass
        assert info.value.status == 401
        assert "sk-wrong-key-42" not in str(info.value) + repr(wrong)


@pytest.mark.parametrize("round_", range(5))
async def test_a_response_requested_after_a_text_answers_that_text(
    peers: PeerService, offer_sdp: str, round_: int
) -> None:
    # Queued before the join, the text and the request leave from different buffers at the same moment:
    # the response.create must still follow the text.
    async with serving(peers, faults=Faults(sideband_accept_delay=0.05)) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp) as conv:
                await conv.send_text(f"text {round_}")
                await conv.request_response()
                events = await until(conv, rtengine.events.OutputTranscriptDone)
    last = events[-1]
    assert isinstance(last, rtengine.events.OutputTranscriptDone)
    assert last.transcript == f"You said: text {round_}"
    types = server.record.sidebands()[-1].types_in()
    assert types.index("conversation.item.create") < types.index("response.create")
