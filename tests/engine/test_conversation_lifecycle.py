"""Ending a conversation: every exit path, bounded teardown, backpressure, buffers, restarts, secrets and logs."""

import logging

import pytest
import trio
import trio.testing
from engine_helpers import API_KEY, client_for, drain, ends, engine_tasks, serving, until
from rejoin_helpers import split_audio

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import Closed, Error, ResponseDone, SessionUpdated, Started
from rtengine.server import Faults

SESSION = rtengine.SessionConfig()


async def test_leaving_the_block_by_exception_closes_everything(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            with pytest.raises(ZeroDivisionError):  # noqa: PT012 - leaving the block is under test
                async with rtengine.open_conversation(client, SESSION) as conv:
                    await until(conv, SessionUpdated)
                    assert engine_tasks()
                    _ = 1 / 0
            assert engine_tasks() == []
            assert ends(await drain(conv)) == [Closed("requested")]
            record = server.record.directs()[-1]
            await server.record.wait_until(lambda: record.end is not None)
    assert (record.end, record.close_code, record.close_answered) == ("client_close", 1000, True)


async def test_the_block_is_single_use_and_its_own_exception_comes_out_as_itself(
    peers: PeerService, offer_sdp: str
) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            block = rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp)
            with pytest.raises(KeyError) as info:  # not an exception group
                async with block as conv:
                    raise KeyError("mine")
            assert info.value.args == ("mine",)
            assert info.traceback[-1].name == "test_the_block_is_single_use_and_its_own_exception_comes_out_as_itself"
            assert engine_tasks() == []
            assert ends(await drain(conv)) == [Closed("requested")]
            with pytest.raises(RuntimeError, match="only once"):
                async with block:
                    pass


async def test_outer_cancellation_closes_everything(peers: PeerService, offer_sdp: str) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            with trio.move_on_after(0.3) as scope:
                async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                    await until(conv, SessionUpdated)
                    await trio.sleep_forever()
            assert scope.cancelled_caught
            assert engine_tasks() == []
            assert ends(await drain(conv)) == [Closed("requested")]
            record = server.record.sidebands()[-1]
            await server.record.wait_until(lambda: record.end is not None)
    assert record.end == "client_close"
    assert record.close_answered


@pytest.mark.parametrize("delay", [0.0, 0.001, 0.01, 0.05])
async def test_cancellation_during_call_creation_leaks_nothing(
    peers: PeerService, offer_sdp: str, delay: float
) -> None:
    async with serving(peers, faults=Faults(call_delay=0.02)) as server, client_for(server) as client:
        with trio.fail_after(10):
            with trio.move_on_after(delay):
                async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp):
                    await trio.sleep_forever()
            assert engine_tasks() == []
            # the pooled HTTP client still works afterwards
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                assert conv.call_id


async def test_close_is_idempotent_and_delivers_one_closed(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await conv.close()
                await conv.close()
                assert not conv.active
            events = await drain(conv)
    assert [type(e) for e in events].count(Closed) == 1
    assert events[-1] == Closed("requested")
    assert "closed" in conv.timeline


async def test_healthy_close_is_prompt(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server, close_timeout=5.0) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await until(conv, SessionUpdated)
                start = trio.current_time()
                await conv.close()
                took = trio.current_time() - start
    assert took < 0.5  # tens of ms in practice, far below the 5 s deadline


async def test_close_is_bounded_when_the_server_never_answers_close(peers: PeerService) -> None:
    """The conversation's close waits for the socket's close only briefly (``CLOSE_GRACE``); the handshake goes on
    under the client, whose exit waits for it up to ``close_timeout``."""
    with trio.fail_after(10):
        async with serving(peers, faults=Faults(ignore_client_close=True)) as server:
            async with client_for(server, close_timeout=0.3) as client:
                async with rtengine.open_conversation(client, SESSION) as conv:
                    await until(conv, SessionUpdated)
                    start = trio.current_time()
                    await conv.close()
                    took = trio.current_time() - start
                assert engine_tasks() == []
                left_at = trio.current_time()
            client_exit = trio.current_time() - left_at
            record = server.record.directs()[-1]
            await server.record.wait_until(lambda: record.end is not None)
    assert took < 0.25  # CLOSE_GRACE (50 ms), not close_timeout
    assert client_exit < 1.5  # the pending close, bounded by close_timeout (0.3 s)
    assert (record.end, record.close_code, record.close_answered) == ("client_close", 1000, False)


async def test_end_is_delivered_to_a_caller_that_stopped_reading(peers: PeerService) -> None:
    capacities = rtengine.Capacities(events=4)
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION, capacities=capacities) as conv:
                await conv.request_response()  # ~20 events, nobody reads
                record = server.record.directs()[-1]
                await server.record.wait_until(lambda: "response.done" in record.types_out())
                await trio.sleep(0.05)
                await conv.close()  # must not deadlock on the full channel
            events = await drain(conv)
    # The capacity's 4 events (Started first, never dropped), then Closed in its reserved slot: nothing had to be
    # dropped to make room for the end; the events that did not fit while it ran were dropped and counted.
    assert len(events) == 5
    assert isinstance(events[0], rtengine.events.Started)
    assert events[-1] == Closed("requested")
    assert conv.stats.events_dropped >= 1


async def test_a_sender_blocked_on_a_full_buffer_wakes_with_not_running(peers: PeerService, offer_sdp: str) -> None:
    capacities = rtengine.Capacities(text=1)
    async with serving(peers, faults=Faults(sideband_accept_delay=5.0)) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp, capacities=capacities) as conv:
                await conv.send_text("fills the buffer")
                outcome: list[BaseException] = []

                async def blocked_sender() -> None:
                    try:
                        await conv.send_text("waits for room")
                    except rtengine.ConversationNotRunning as exc:
                        outcome.append(exc)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(blocked_sender)
                    await trio.testing.wait_all_tasks_blocked()
                    await conv.close()
    assert len(outcome) == 1


async def test_audio_beyond_capacity_is_dropped_and_counted_and_the_rest_arrives_in_order(
    peers: PeerService, offer_sdp: str
) -> None:
    async with serving(peers, faults=Faults(sideband_accept_delay=0.3)) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                accepted = [conv.send_audio(i.to_bytes(2, "little")) for i in range(300)]
                assert accepted == [True] * 256 + [False] * 44
                snapshot = conv.stats
                assert (snapshot.audio_frames_queued, snapshot.audio_frames_dropped) == (256, 44)
                snapshot.audio_frames_dropped = 0  # a copy: the conversation's own counters are untouched
                conv.send_audio(b"\x00\x00")
                assert conv.stats.audio_frames_dropped == 45
                assert snapshot.audio_frames_dropped == 0

                def audio() -> list[str]:  # the 2-byte frames received (frames that waited together share an append)
                    sidebands = server.record.sidebands()
                    frames = sidebands[-1].frames_in[1:] if sidebands else []
                    return [
                        n
                        for f in frames
                        if f["type"] == "input_audio_buffer.append"
                        for n in split_audio(f["audio"], 2)
                    ]

                await server.record.wait_until(lambda: len(audio()) >= 256)
    assert server.record.sidebands()[-1].frames_in[0]["type"] == "session.update"
    assert audio() == [str(n) for n in range(256)]


async def test_the_manager_replaces_without_closed(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_manager(client) as mgr:
                with pytest.raises(rtengine.ConversationNotRunning):
                    await mgr.send_text("nobody home")
                first = await mgr.start(SESSION)
                await until(first, SessionUpdated)
                second = await mgr.start(SESSION)
                assert mgr.current is second
                assert not first.active
                old_events = await drain(first)
                mgr.send_audio(b"\x01\x00")
                await mgr.send_text("to the new one")
                record = server.record.directs()[-1]
                await server.record.wait_until(lambda: len(record.frames_in) >= 3)
                with pytest.raises(rtengine.ConversationNotRunning):
                    await first.send_text("to the old one")
            new_events = await drain(second)
    assert not any(isinstance(e, Closed) for e in old_events)
    assert ends(new_events) == [Closed("requested")]
    old_record, new_record = server.record.directs()
    assert old_record.types_in() == ["session.update"]
    assert sorted(new_record.types_in()) == ["conversation.item.create", "input_audio_buffer.append", "session.update"]
    assert engine_tasks() == []


async def test_conversation_audio_and_text_before_start_raise(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client, rtengine.open_manager(client) as mgr:
        with pytest.raises(rtengine.ConversationNotRunning, match="conversation is not running"):
            mgr.send_audio(b"\x00\x00")
        with pytest.raises(rtengine.ConversationNotRunning):
            await mgr.request_response()


async def test_logs_mirror_the_phases_and_never_show_the_key(
    peers: PeerService, offer_sdp: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        serving(peers, faults=Faults(refuse_sideband_joins=1)) as server,
        client_for(server) as client,
    ):
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                await until(conv, SessionUpdated)
                text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("rtengine"))
                everything = text + repr(conv) + repr(client) + repr(conv.stats) + repr(dict(conv.timeline))
    assert "realtime call created; sdp answer ready" in text
    assert "total_elapsed_ms=" in text
    assert "realtime sideband join attempt 1 failed" in text
    assert "connected realtime sideband websocket" in text
    assert "realtime session updated" in text
    assert API_KEY not in everything
    assert list(conv.timeline)[:4] == ["answer", "sideband_joined", "session_update_sent", "session_updated"]


async def test_errors_after_the_end_are_never_delivered(peers: PeerService) -> None:
    # A fatal error arrives, then the server closes: one Error, one Closed, nothing else.
    faults = Faults(inject=("error:insufficient_quota", "error:server_error"), close_after_events=4)
    async with serving(peers, faults=faults) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                events = await drain(conv)
    assert [type(e) for e in ends(events)] == [Error, Closed]
    assert events[-1] == Closed("error")
    assert isinstance(events[0], Started)
    assert not any(isinstance(e, ResponseDone) for e in events)
