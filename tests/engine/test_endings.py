"""How conversations end, against the local server over real loopback sockets (issue #9 defects 2, 6, 7, 13, 17)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from engine_fakes import OFFER, FakeEndpoint, FakeSocket, FakeSockets
from engine_helpers import client_for, drain, engine_tasks, serving, until

import rtengine
from rtengine import webrtc
from rtengine.adapters._peer import PeerService
from rtengine.events import Closed, Error, SessionUpdated, Started
from rtengine.server import Faults, LocalServer

SESSION = rtengine.SessionConfig(instructions="Be brief.")


@pytest.mark.parametrize("transport", ["websocket", "webrtc"])
async def test_outer_cancellation_closes_as_promptly_as_a_normal_exit(
    peers: PeerService, offer_sdp: str, transport: str
) -> None:
    """Defect 2: leaving the block by outer cancellation runs the close handshake with the server's answer, in
    milliseconds — not to close_timeout (the old engine measured 1004 ms against 1 ms)."""
    offer = offer_sdp if transport == "webrtc" else None
    async with serving(peers) as server, client_for(server, close_timeout=5.0) as client:
        with trio.fail_after(10):
            with trio.CancelScope() as scope:
                async with rtengine.open_conversation(client, SESSION, offer_sdp=offer) as conv:
                    await until(conv, SessionUpdated)
                    cancelled_at = trio.current_time()
                    scope.cancel()
                    await trio.sleep_forever()
            took = trio.current_time() - cancelled_at
            assert engine_tasks() == []
            records = server.record.sidebands() if offer else server.record.directs()
            record = records[-1]
            await server.record.wait_until(lambda: record.end is not None)
    assert record.end == "client_close"
    assert record.close_answered
    assert record.close_code == 1000
    assert took < 0.5
    assert ends_of(await drain_after(conv)) == [Closed("requested")]


async def drain_after(conv: rtengine.Conversation) -> list[object]:
    return list(await drain(conv))


def ends_of(events: list[object]) -> list[object]:
    return [e for e in events if isinstance(e, Error | Closed)]


async def test_a_clean_server_close_reports_its_code_as_an_int(peers: PeerService) -> None:
    """Defect 17: public events carry plain ints, never an adapter's type."""
    faults = Faults(close_after_events=2, close_mode="clean")
    async with serving(peers, faults=faults) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                events = await drain(conv)
    closed = events[-1]
    assert isinstance(closed, Closed)
    assert closed.reason == "transport_closed"
    assert type(closed.code) is int
    assert closed.code == 1000


async def test_a_failed_write_is_an_error_then_closed(autojump_clock: trio.abc.Clock) -> None:
    """Defect 7: a write that fails while active ends with Error("connection_lost"), fatal, then Closed("error")
    (with sideband re-attach off; with it on, the sideband is joined again: tests/engine/test_rejoin.py)."""
    sock = FakeSocket()
    endpoint = FakeEndpoint(sockets=FakeSockets(make=lambda _n: sock), sideband_rejoin_attempts=0)
    async with rtengine.open_conversation(endpoint, SESSION, offer_sdp=OFFER) as conv:  # type: ignore[arg-type]
        await trio.sleep(1)  # joined, session.update sent
        sock.fail_sends = True
        await conv.send_text("this write fails")
        events = [event async for event in conv.events]
    assert [type(e) for e in events] == [Started, Error, Closed]
    assert events[1] == Error("realtime connection lost: fake write failed", "connection_lost", fatal=True)
    assert events[2] == Closed("error")
    assert conv.stats.inputs_lost == 1


@pytest.mark.parametrize("ending", ["requested", "error", "hangup_false"])
async def test_every_end_hangs_the_call_up(peers: PeerService, offer_sdp: str, ending: str) -> None:
    """Defect 13: the call a conversation created is hung up when it ends, for any reason (unless hangup=False);
    a 404 (the call had already ended) is not a failure."""
    faults = Faults(refuse_sideband_joins=100) if ending == "error" else Faults()
    async with serving(peers, faults=faults) as server, client_for(server, sideband_retries=0) as client:
        with trio.fail_after(10):
            hangup = ending != "hangup_false"
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp, hangup=hangup) as conv:
                if ending == "error":
                    events = await drain(conv)
                    assert ends_of(list(events))[-1] == Closed("error")
                else:
                    await until(conv, SessionUpdated)
        # Like the API, the local server keeps a call whose sideband left: only the hang-up ends it.
        assert server.open_calls == ([] if hangup else [conv.call_id])
        assert server.record.calls[-1].end == ("hangup" if hangup else None)
    assert server.record.hangups == ([conv.call_id] if hangup else [])
    assert server.record.refused_hangups == []
    assert conv.stats.hangups == (1 if hangup else 0)
    assert conv.stats.hangup_failures == 0


@asynccontextmanager
async def _cancelled_during_the_post(peers: PeerService, offer_sdp: str, faults: Faults) -> AsyncIterator[LocalServer]:
    """A start cancelled 0.1 s in, while its POST (delayed by ``faults``) is in flight: the block never runs, the
    cancellation is caught and no engine task is left; then the block runs, with the server, under the same 10 s
    bound."""
    async with serving(peers, faults=faults) as server, client_for(server) as client:
        with trio.fail_after(10):
            with trio.move_on_after(0.1) as scope:
                async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp):
                    raise AssertionError("the start was cancelled; the block never runs")
            assert scope.cancelled_caught
            assert engine_tasks() == []
            yield server


async def test_a_start_cancelled_after_its_post_hangs_the_call_up(peers: PeerService, offer_sdp: str) -> None:
    """Defect 13: cancelled while the answer is awaited, the start still learns the call id and hangs it up."""
    async with _cancelled_during_the_post(peers, offer_sdp, Faults(call_delay=0.3)) as server:
        created = [call.call_id for call in server.record.calls if call.call_id]
    assert len(created) == 1
    assert server.record.hangups == created


async def _slow_to_close_source() -> AsyncIterator[bytes]:
    try:
        while True:
            yield b"\x00\x00" * 480
    finally:
        await trio.sleep(100)  # an app's source that takes forever to clean up


async def test_a_source_that_never_closes_cannot_hold_the_teardown() -> None:
    """Defect 6: every teardown step is bounded — the app's audio source is closed under a deadline."""
    async with (
        webrtc.open_media_engine(loopback=True) as engine,
        serving(engine, audio_ms=200) as server,
        client_for(server, close_timeout=0.5) as client,
    ):
        with trio.fail_after(15):
            media = webrtc.Media(engine, source=_slow_to_close_source(), connect_timeout=5)
            async with rtengine.open_conversation(client, SESSION, media=media) as conv:
                assert conv.media is not None
                media_call = conv.media
                await media_call.peer.connected.wait()
                await trio.sleep(0.2)  # the source is being fed
                start = trio.current_time()
                await conv.close()
                took = trio.current_time() - start
            assert media_call.peer.closed
    assert took < 3.0  # the source's 100 s cleanup was cut at its bound


async def test_an_owner_cancelled_during_the_post_is_cancelled_whatever_the_answer(
    peers: PeerService, offer_sdp: str
) -> None:
    """Review finding: a 400 answered to a POST whose caller had meanwhile been cancelled escaped the cancelled
    scope as CallRejected."""
    async with _cancelled_during_the_post(peers, offer_sdp, Faults(call_delay=0.3, call_status=400)):
        pass
