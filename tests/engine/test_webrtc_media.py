"""rtengine as the WebRTC media peer: real loopback calls to the local server's answerer, audio both ways.

The engine's peers and the server's answerers share one media engine with host candidates pinned to 127.0.0.1,
so ICE, DTLS, SCTP and RTP all run over real UDP sockets on loopback. Real clock, under ``fail_after``.
"""

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import trio
import trio.testing
import trio_asyncio
from engine_helpers import API_KEY, client_for, drain, engine_tasks, until

import rtengine
from rtengine import webrtc
from rtengine.adapters._peer import Peer
from rtengine.events import Closed, Error, ItemAdded, OutputTranscriptDone, ResponseDone, SessionUpdated
from rtengine.protocol._audio import dominant_frequency, rms, tone
from rtengine.server import Faults, LocalServer, ServerOptions

SESSION = rtengine.SessionConfig()
#: For tests about the media itself: server VAD off, so the tone they send is not a user turn with its own
#: automatic response (tests/engine/test_call_vad.py covers VAD on a call).
MEDIA_ONLY = rtengine.SessionConfig(turn_detection="disabled")
#: The local server of ``media_server`` (``tests/conftest.py``).
MEDIA_SERVER = ServerOptions(api_key=API_KEY, delta_interval=0.0, audio_ms=600, greeting_ms=300)


def udp_sockets() -> int:
    """UDP sockets this process holds open (Linux /proc)."""
    inodes: set[str] = set()
    for name in ("udp", "udp6"):
        with open(f"/proc/self/net/{name}") as table:
            inodes.update(line.split()[9] for line in list(table)[1:])
    held = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            held += 1
    return held


async def pending_asyncio_tasks() -> int:
    async def count() -> int:
        current = asyncio.current_task()
        return len([t for t in asyncio.all_tasks() if t is not current and not t.done()])

    return int(await trio_asyncio.aio_as_trio(count)())


async def test_a_real_call_carries_audio_both_ways(engine: webrtc.MediaEngine, media_server: LocalServer) -> None:
    media = webrtc.Media(engine, source=webrtc.tone_source(300, seconds=1.0), connect_timeout=5)
    received = bytearray()
    async with client_for(media_server) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, MEDIA_ONLY, media=media) as conv:
                assert conv.media is not None
                assert conv.answer_sdp
                assert conv.call_id

                async def pull() -> None:
                    assert conv.media is not None
                    async for pcm in conv.media.audio_out:
                        received.extend(pcm)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(pull)
                    await until(conv, SessionUpdated)
                    await conv.media.source_done.wait()
                    await conv.request_response()  # the server answers with a 440 Hz tone over RTP
                    await until(conv, ResponseDone)
                    await trio.sleep(1.0)
                    nursery.cancel_scope.cancel()
                timeline = dict(conv.timeline)
                sent, got = conv.media.frames_sent, conv.media.frames_received
    record = media_server.record.calls[-1]
    assert record.connected
    assert sent >= 45  # 1 s of tone in 20 ms frames
    assert got >= 50
    assert record.audio_frames_in >= 50
    assert dominant_frequency(bytes(record.audio_in)) == pytest.approx(300, rel=0.05)
    assert rms(bytes(received)) > 0.02
    assert dominant_frequency(bytes(received)) == pytest.approx(550, rel=0.3)  # 660 Hz greeting + 440 Hz reply
    for phase in (
        "offer_created",
        "ice_gathered",
        "call_posted",
        "answer",
        "answer_applied",
        "ice_connected",
        "dtls_connected",
        "data_channel_open",
        "sideband_joined",
        "session_updated",
        "first_audio_sent",
        "first_audio_received",
    ):
        assert phase in timeline, phase
    assert timeline["offer_created"] <= timeline["answer"] <= timeline["answer_applied"] <= timeline["dtls_connected"]
    assert engine.open_peers == 0


async def next_data_event(peer: Peer, kind: str) -> Any:
    """The next event of type ``kind`` on a peer's data channel (parsed JSON)."""
    async for message in peer.messages:
        assert isinstance(message, str)
        event = json.loads(message)
        if event["type"] == kind:
            return event
    raise AssertionError(f"the data channel ended before {kind}")


async def test_by_default_the_data_channel_is_read_off_and_counted(
    engine: webrtc.MediaEngine, media_server: LocalServer
) -> None:
    """The data channel repeats the sideband's events; unless the app keeps them, nothing piles up for the call."""
    async with client_for(media_server) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, media=webrtc.Media(engine)) as conv:
                assert conv.media is not None
                await conv.media.peer.channel_open.wait()
                await until(conv, SessionUpdated)
                await conv.request_response()
                await until(conv, ResponseDone)
                while conv.media.data_messages < 3:  # noqa: ASYNC110 - a counter, no event to wait on
                    await trio.sleep(0.01)
                assert conv.media.peer.messages.statistics().current_buffer_used == 0
    assert conv.media is not None
    assert cast(Peer, conv.media.peer).messages_dropped == 0


@asynccontextmanager
async def data_channel_call(
    engine: webrtc.MediaEngine, server: LocalServer
) -> AsyncIterator[tuple[rtengine.Conversation, Peer]]:
    """A conversation with rtengine as the media peer that keeps its data channel's messages, once it is open."""
    media = webrtc.Media(engine, connect_timeout=5, data_channel=True)
    async with client_for(server) as client, rtengine.open_conversation(client, SESSION, media=media) as conv:
        assert conv.media is not None
        await conv.media.peer.channel_open.wait()
        yield conv, cast(Peer, conv.media.peer)


async def test_the_data_channel_and_the_sideband_share_the_calls_conversation(
    engine: webrtc.MediaEngine, media_server: LocalServer
) -> None:
    """A text sent on the sideband and a response asked for on the data channel are one conversation: the reply
    answers the text, and its events come back on the sideband and on the data channel. An error goes back to the
    view that caused it only."""
    with trio.fail_after(20):
        async with data_channel_call(engine, media_server) as (conv, peer):
            await next_data_event(peer, "session.created")
            await until(conv, SessionUpdated)
            await conv.send_text("from the sideband")
            await until(conv, ItemAdded)
            # An error answers the view whose event caused it: the data channel hears it, the sideband does not.
            assert peer.send_data('{"type":"no.such.event","event_id":"evt_bad"}')
            error = await next_data_event(peer, "error")
            assert (error["error"]["code"], error["error"]["event_id"]) == ("invalid_value", "evt_bad")
            assert peer.send_data('{"type":"response.create","event_id":"evt_from_the_browser"}')
            events = await until(conv, OutputTranscriptDone)
            assert not any(isinstance(e, Error) for e in events)
            assert any(isinstance(e, rtengine.events.ResponseCreated) for e in events)
            last = events[-1]
            assert isinstance(last, OutputTranscriptDone)
            assert last.transcript == "You said: from the sideband"
            done = await next_data_event(peer, "response.done")
            assert done["response"]["output"][0]["content"][0]["transcript"] == "You said: from the sideband"
    record = media_server.record.calls[-1]
    assert [f["type"] for f in record.data_frames_in] == ["no.such.event", "response.create"]
    assert record.data_frames_refused == 0
    # what the data channel was sent is recorded too (and so checked against the SDK by conftest's fixture)
    assert {"session.created", "error", "response.done"} <= {f["type"] for f in record.data_frames_out}
    assert "error" not in media_server.record.sidebands()[-1].types_out()


async def test_an_unsolicited_active_response_error_is_reported_and_never_stalls_request_response(
    engine: webrtc.MediaEngine, media_server: LocalServer
) -> None:
    """The server reports an active response while rtengine has none in flight (the error names no event rtengine
    sent: another client's create was refused). The caller sees a non-fatal ``Error``, and ``request_response``
    still goes out at once — it used to be deferred forever behind a response that was never ours."""
    media_server.set_faults(Faults(inject=("error:conversation_already_has_active_response",)))
    with trio.fail_after(20):
        async with data_channel_call(engine, media_server) as (conv, _peer):
            events = await until(conv, Error)
            await conv.request_response()
            events += await until(conv, ResponseDone)
    errors = [e for e in events if isinstance(e, Error)]
    assert [(e.code, e.fatal, e.request_type) for e in errors] == [
        ("conversation_already_has_active_response", False, None)
    ]
    assert conv.stats.responses_deferred == 0
    assert conv.stats.responses_requested == 1
    assert media_server.record.sidebands()[-1].types_in().count("response.create") == 1


async def test_a_hangup_right_after_connecting_leaves_the_media_engine_running(
    engine: webrtc.MediaEngine, media_server: LocalServer
) -> None:
    """Ending a call while aiortc still connects leaves an aiortc task failing in the background; that must not
    take the engine (and every call on it) down."""
    headers = {"authorization": f"Bearer {API_KEY}"}
    async with client_for(media_server) as client, httpx.AsyncClient() as http:
        with trio.fail_after(30):
            for _ in range(3):
                async with rtengine.open_conversation(client, SESSION, media=webrtc.Media(engine)) as conv:
                    assert conv.media is not None
                    await conv.media.peer.connected.wait()  # DTLS is up; aiortc has not finished connecting yet
                    await http.post(f"{client.calls_url}/{conv.call_id}/hangup", headers=headers)
                    closed = (await drain(conv))[-1]
                    assert isinstance(closed, Closed)
                    assert closed.reason in ("call_ended", "error")
                await trio.sleep(0.3)  # aiortc's leftover connect task fails in here
            async with data_channel_call(engine, media_server) as (conv, _):  # the engine still works
                await until(conv, SessionUpdated)
    assert engine.open_peers == 0


async def test_the_data_channel_alone_drives_the_calls_conversation(
    engine: webrtc.MediaEngine, media_server: LocalServer
) -> None:
    """As with the API, a call's data channel is a view of its conversation even when no sideband has joined."""
    media_server.set_faults(Faults(sideband_accept_delay=30.0))  # the sideband never joins during the test
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "over the channel"}]}
    with trio.fail_after(20):
        async with data_channel_call(engine, media_server) as (_, peer):
            await next_data_event(peer, "session.created")
            assert peer.send_data(
                json.dumps({"type": "session.update", "session": {"type": "realtime", "instructions": "dc"}})
            )
            updated = await next_data_event(peer, "session.updated")
            assert updated["session"]["instructions"] == "dc"
            assert peer.send_data(json.dumps({"type": "conversation.item.create", "item": item}))
            assert peer.send_data('{"type":"response.create"}')
            done = await next_data_event(peer, "response.done")
            assert done["response"]["output"][0]["content"][0]["transcript"] == "You said: over the channel"
            assert peer.send_data(b"\x00binary")
            error = await next_data_event(peer, "error")
            assert error["error"]["code"] == "invalid_json"
    record = media_server.record.calls[-1]
    assert [f if isinstance(f, str) else f["type"] for f in record.data_frames_in] == [
        "session.update",
        "conversation.item.create",
        "response.create",
        "<binary>",
    ]
    assert record.data_frames_refused == 1
    assert not any(c.accepted for c in media_server.record.sidebands())


async def test_wav_sink_writes_what_was_received(
    engine: webrtc.MediaEngine, media_server: LocalServer, tmp_path: object
) -> None:
    import pathlib
    import wave

    path = pathlib.Path(str(tmp_path)) / "received.wav"
    sink = webrtc.WavWriter(path)
    media = webrtc.Media(engine, sink=sink, connect_timeout=5)
    async with client_for(media_server) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, media=media) as conv:
                await until(conv, SessionUpdated)
                await conv.request_response()
                await until(conv, ResponseDone)
                await trio.sleep(1.0)
    sink.close()
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        assert wav.getnframes() >= 24000 // 2
        assert rms(wav.readframes(wav.getnframes())) > 0.01


async def test_wav_source_plays_back_what_wav_writer_wrote_and_rejects_other_formats(tmp_path: Path) -> None:
    import wave

    sent = tone(300, 100)  # 100 ms of PCM16 mono 24 kHz
    writer = webrtc.WavWriter(tmp_path / "tone.wav")
    writer(sent)
    writer.close()
    chunks = [chunk async for chunk in webrtc.wav_source(tmp_path / "tone.wav")]
    assert b"".join(chunks) == sent
    assert {len(c) for c in chunks[:-1]} == {960}  # 20 ms frames
    with wave.open(str(tmp_path / "cd.wav"), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(44100)
        wav.writeframes(bytes(400))
    frames = webrtc.wav_source(tmp_path / "cd.wav")
    with pytest.raises(rtengine.ConfigError, match="expected 16-bit mono 24000 Hz WAV, got 16-bit 2 channel"):
        await anext(frames)  # the first frame is refused, before any audio


@pytest.mark.parametrize("where", ["normal", "offer", "ice", "media", "exception"])
async def test_every_exit_path_leaves_nothing_open(
    engine: webrtc.MediaEngine, media_server: LocalServer, where: str
) -> None:
    udp_before = udp_sockets()
    media = webrtc.Media(engine, source=webrtc.tone_source(300, seconds=5), connect_timeout=5)
    async with client_for(media_server) as client:
        with trio.fail_after(20):
            with trio.CancelScope() as scope:
                if where == "offer":
                    scope.deadline = trio.current_time() + 0.0005  # while the offer is being created
                try:
                    async with rtengine.open_conversation(client, SESSION, media=media) as conv:
                        assert conv.media is not None
                        if where == "ice":
                            scope.cancel()  # the answer is in, ICE has not completed yet
                            await trio.sleep_forever()
                        await conv.media.peer.connected.wait()
                        await trio.sleep(0.3)  # media flowing
                        if where == "exception":
                            raise KeyError("the app failed")
                        if where == "media":
                            scope.cancel()
                            await trio.sleep_forever()
                        # "normal": leave the block
                except KeyError:
                    assert where == "exception"
        assert engine_tasks() == []
        assert engine.open_peers == len(media_server.open_calls)  # only the server's answering peers remain
        await media_server.aclose_calls()
        assert engine.open_peers == 0
        await trio.sleep(0.05)
        assert await pending_asyncio_tasks() == 0
        assert udp_sockets() <= udp_before


async def test_cancelled_during_the_post(engine: webrtc.MediaEngine, media_server: LocalServer) -> None:
    udp_before = udp_sockets()
    media_server.set_faults(Faults(call_delay=1.0))
    media = webrtc.Media(engine, connect_timeout=5)
    async with client_for(media_server) as client:
        with trio.fail_after(20):
            with trio.move_on_after(0.2) as scope:
                async with rtengine.open_conversation(client, SESSION, media=media):
                    raise AssertionError("the POST was delayed by 1 s")
            assert scope.cancelled_caught
            assert engine.open_peers == 0  # the half-used offering peer was closed
            assert engine_tasks() == []
            assert udp_sockets() <= udp_before


async def test_a_peer_that_never_connects_fails_clearly_within_the_deadline(
    engine: webrtc.MediaEngine, media_server: LocalServer
) -> None:
    media_server.set_faults(Faults(media_unreachable=True))
    media = webrtc.Media(engine, connect_timeout=1.0)
    async with client_for(media_server) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, media=media) as conv:
                start = trio.current_time()
                events = await drain(conv)
                elapsed = trio.current_time() - start
    errors = [e for e in events if isinstance(e, Error)]
    assert len(errors) == 1
    assert errors[0].code == "webrtc_connect_timeout"
    assert "did not reach 'connected' within 1 s" in errors[0].message
    assert events[-1] == Closed("error")
    assert 1.0 <= elapsed < 2.5
    assert engine.open_peers == len(media_server.open_calls)


async def test_media_and_offer_sdp_are_exclusive(engine: webrtc.MediaEngine, media_server: LocalServer) -> None:
    async with client_for(media_server) as client:
        with pytest.raises(rtengine.ConfigError, match="either offer_sdp"):
            async with rtengine.open_conversation(client, SESSION, offer_sdp="v=0", media=webrtc.Media(engine)):
                pass


async def test_the_prewarm_pool_makes_the_offer_free_and_never_reuses_a_peer(
    engine: webrtc.MediaEngine, media_server: LocalServer
) -> None:
    async with client_for(media_server) as client:
        with trio.fail_after(20):
            async with webrtc.open_prewarm_pool(engine, client=client, max_age=30) as pool:
                assert pool.created == 1
                assert engine.open_peers == 1
                media = webrtc.Media(engine, pool=pool, connect_timeout=5)
                used = []
                for _ in range(2):
                    async with rtengine.open_conversation(client, SESSION, media=media) as conv:
                        assert conv.media is not None
                        used.append(conv.media.peer)
                        assert "offer_from_pool" in conv.timeline
                        assert "offer_created" not in conv.timeline
                    await trio.testing.wait_all_tasks_blocked()
                assert used[0] is not used[1]
                assert all(peer.closed for peer in used)  # handed out once, closed with its conversation
                assert pool.handed_out == 2
                assert pool.created == 3
            assert engine.open_peers == len(media_server.open_calls)  # the pool's spare is closed too


async def test_stale_spares_are_closed_and_replaced(engine: webrtc.MediaEngine) -> None:
    with trio.fail_after(20):
        async with webrtc.open_prewarm_pool(engine, max_age=0.2) as pool:
            first = pool._spare
            assert first is not None
            await trio.sleep(0.5)
            assert pool.expired >= 1
            assert first[0].closed
            assert pool._spare is not None
            assert pool._spare[0] is not first[0]
        assert engine.open_peers == 0


async def test_an_inline_join_failure_with_media_stops_everything(
    engine: webrtc.MediaEngine, media_server: LocalServer
) -> None:
    media_server.set_faults(Faults(refuse_sideband_joins=100))
    media = webrtc.Media(engine, connect_timeout=5)
    async with client_for(media_server, sideband_retries=0) as client:
        with trio.fail_after(10):
            async with rtengine.open_manager(client) as manager:  # its nursery outlives the failed start
                with pytest.raises(rtengine.ConnectFailed):
                    await manager.start(SESSION, media=media, sideband="inline")
                assert manager.current is None
                await trio.testing.wait_all_tasks_blocked()
                assert engine_tasks() == []
            assert engine.open_peers == len(media_server.open_calls)
