"""Sideband re-attach (issue #11, behaviour 1) against the local server over real loopback sockets.

The server's ``drop_sideband`` fault loses a call's sideband abnormally — a reset, an EOF without a close frame,
a CLOSE 1011 — while the call lives on; its record keeps every join of the call with the frames each connection
carried, so exactly-once delivery across sockets is checked on the wire.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from engine_helpers import client_for, drain, engine_tasks, serving, until
from rejoin_helpers import delivered, joins_of, quiet

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import (
    Closed,
    Error,
    SessionUpdated,
    SidebandLost,
    SidebandRestored,
    Started,
)
from rtengine.server import Faults, LocalServer

SESSION = rtengine.SessionConfig(instructions="re-attach")


class Inputs:
    """Queues a batch of every kind and remembers what was queued."""

    def __init__(self, conv: rtengine.Conversation) -> None:
        self.conv = conv
        self.queued: dict[str, list[str]] = {"text": [], "tool": [], "audio": []}

    async def batch(self, label: str, n: int = 3) -> None:
        for i in range(n):
            await self.conv.send_text(f"{label}-text-{i}")
            self.queued["text"].append(f"{label}-text-{i}")
            await self.conv.send_tool_output(f"{label}_call_{i}", "ok", respond=False)
            self.queued["tool"].append(f"{label}_call_{i}")
            frame = bytes([len(self.queued["audio"]) % 256, 1]) * 2
            assert self.conv.send_audio(frame)
            self.queued["audio"].append(frame.hex())


async def wait_delivered(server: LocalServer, conv: rtengine.Conversation, inputs: Inputs) -> None:
    def done() -> bool:
        got = delivered(joins_of(server, conv), 4)
        return all(got[k] == v for k, v in inputs.queued.items())

    with trio.move_on_after(5):
        await server.record.wait_until(done)
    assert {k: delivered(joins_of(server, conv), 4)[k] for k in inputs.queued} == inputs.queued


@pytest.mark.parametrize("mode", ["reset", "eof", "1011"])
async def test_a_dropped_sideband_is_joined_again_and_every_input_arrives_once(
    peers: PeerService, offer_sdp: str, mode: str
) -> None:
    """Inputs queued before the join, before the drop, during the gap and after the re-join each reach the server
    exactly once, FIFO per kind, across the two sockets; each socket starts with ``session.update``."""
    async with serving(peers) as server, client_for(server, backoff_base=0.2) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                inputs = Inputs(conv)
                await inputs.batch("before_join")
                seen = await until(conv, SessionUpdated)
                await wait_delivered(server, conv, inputs)
                await quiet(server, conv)
                # The next server event drops the sideband; the first re-join is refused, so the gap lasts ≥ 0.2 s.
                server.set_faults(Faults(drop_sideband=mode, refuse_sideband_joins=1))  # type: ignore[arg-type]
                await conv.send_text("before_drop-text-0")  # the server's item.added for it is the last event
                inputs.queued["text"].append("before_drop-text-0")
                seen += await until(conv, SidebandLost)
                await inputs.batch("gap")
                assert "sideband_lost" in conv.timeline
                assert "sideband_restored" not in conv.timeline
                seen += await until(conv, SidebandRestored)
                await inputs.batch("after")
                await wait_delivered(server, conv, inputs)
                await conv.request_response()
                seen += await until(conv, rtengine.events.ResponseDone)
            seen += await drain(conv)
    joins = joins_of(server, conv)
    assert [(j.accepted, j.status) for j in joins] == [(True, 101), (False, 503), (True, 101)]
    accepted = [j for j in joins if j.accepted]
    for conn in accepted:
        assert conn.types_in()[0] == "session.update"
    got = delivered(accepted, 4)
    for kind, queued in inputs.queued.items():
        assert got[kind] == queued, kind
    assert got["response"] == ["response.create"]
    lost = next(e for e in seen if isinstance(e, SidebandLost))
    restored = next(e for e in seen if isinstance(e, SidebandRestored))
    if mode == "1011":
        assert (lost.code, lost.reason) == (1011, "rtengine local server: drop_sideband")
    else:
        assert lost.code is None
        assert lost.reason
    assert restored.attempts == 2
    assert restored.gap_ms >= 150
    kinds = [type(e) for e in seen]
    assert kinds.index(SidebandLost) < kinds.index(SidebandRestored)
    assert not [e for e in seen if isinstance(e, Error)]
    assert seen[-1] == Closed("requested")
    assert conv.timeline["sideband_lost"] < conv.timeline["sideband_restored"]
    stats = conv.stats
    assert (stats.sideband_losses, stats.sideband_rejoin_attempts) == (1, 2)
    assert stats.inputs_lost == stats.inputs_interrupted == 0
    assert server.record.calls[-1].end == "hangup"
    assert engine_tasks() == []


async def test_a_sideband_dropped_twice_is_joined_twice(peers: PeerService, offer_sdp: str) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                inputs = Inputs(conv)
                await until(conv, SessionUpdated)
                await quiet(server, conv)
                for times, label in enumerate(("one", "two"), 1):
                    server.set_faults(Faults(drop_sideband="reset", drop_sideband_times=times))  # one more drop
                    await conv.send_text(f"{label}-drop")  # answered by an item.added: the sideband drops
                    inputs.queued["text"].append(f"{label}-drop")
                    await until(conv, SidebandLost)
                    await inputs.batch(f"{label}-gap", 2)
                    await until(conv, SidebandRestored)
                    await wait_delivered(server, conv, inputs)
                    await quiet(server, conv)
                await inputs.batch("after", 2)
                await wait_delivered(server, conv, inputs)
                await conv.close()
            events = await drain(conv)
    accepted = [j for j in joins_of(server, conv) if j.accepted]
    assert [j.end for j in accepted] == ["abrupt", "abrupt", "client_close"]
    assert all(j.types_in()[0] == "session.update" for j in accepted)
    got = delivered(accepted, 4)
    assert {k: got[k] for k in inputs.queued} == inputs.queued
    assert events[-1] == Closed("requested")
    assert not [e for e in events if isinstance(e, Error)]
    assert conv.stats.sideband_losses == 2
    assert "sideband_lost_2" in conv.timeline
    assert "sideband_restored_2" in conv.timeline


async def test_a_call_gone_during_the_gap_is_call_ended(peers: PeerService, offer_sdp: str) -> None:
    """The sideband drops abnormally, and the call ends on the server while the engine is re-joining: the next
    re-join is answered 404 ``call_id_not_found`` and the conversation ends with ``Closed("call_ended")``, no
    ``Error``."""
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                await until(conv, SessionUpdated)
                assert conv.call_id is not None
                server.set_faults(Faults(drop_sideband="eof", refuse_sideband_joins=100))
                await conv.send_text("drops the sideband")
                before = await until(conv, SidebandLost)
                assert await server.end_call(conv.call_id)
                events = [before[-1], *await drain(conv)]
    assert not [e for e in before if isinstance(e, Error | Closed)]
    assert [type(e) for e in events] == [SidebandLost, Closed]
    closed = events[-1]
    assert isinstance(closed, Closed)
    assert closed.reason == "call_ended"
    last = joins_of(server, conv)[-1]
    assert (last.accepted, last.status) == (False, 404)
    assert conv.stats.sideband_rejoin_attempts >= 1


async def test_a_call_ended_by_the_server_closes_its_sideband_cleanly(peers: PeerService, offer_sdp: str) -> None:
    """The call ends on the server while the sideband is joined: the server closes it with CLOSE 1000, which means
    the call ended — ``Closed("call_ended")`` at once, no re-join."""
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                await until(conv, SessionUpdated)
                assert conv.call_id is not None
                assert await server.end_call(conv.call_id)
                events = await drain(conv)
    assert [type(e) for e in events] == [Closed]
    closed = events[-1]
    assert isinstance(closed, Closed)
    assert (closed.reason, closed.code) == ("call_ended", 1000)
    assert conv.stats.sideband_rejoin_attempts == 0
    assert len(joins_of(server, conv)) == 1


async def test_attempts_exhausted_is_one_error_then_closed_and_the_call_is_hung_up(
    peers: PeerService, offer_sdp: str
) -> None:
    async with serving(peers) as server, client_for(server, sideband_rejoin_attempts=3) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                await until(conv, SessionUpdated)
                server.set_faults(Faults(drop_sideband="eof", refuse_sideband_joins=100))
                await conv.send_text("drops the sideband")
                events = await drain(conv)
            await server.record.wait_until(lambda: server.record.calls[-1].end is not None)
    assert [type(e) for e in events][-3:] == [SidebandLost, Error, Closed]
    error, closed = events[-2], events[-1]
    assert isinstance(error, Error)
    assert error.code == "sideband_lost"
    assert error.fatal
    assert closed == Closed("error")
    joins = joins_of(server, conv)
    assert [j.status for j in joins] == [101, 503, 503, 503]
    assert server.record.hangups == [conv.call_id]
    assert server.record.calls[-1].end == "hangup"


async def test_the_rejoin_deadline_bounds_the_gap(peers: PeerService, offer_sdp: str) -> None:
    """A server that never answers the re-join handshake: the deadline ends the wait, not the attempts."""
    settings: dict[str, Any] = {"sideband_rejoin_deadline": 0.5, "connect_timeout": 5.0}
    async with serving(peers) as server, client_for(server, **settings) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                await until(conv, SessionUpdated)
                server.set_faults(Faults(drop_sideband="reset", sideband_accept_delay=30.0))
                await conv.send_text("drops the sideband")
                await until(conv, SidebandLost)
                lost_at = trio.current_time()
                events = await drain(conv)
                took = trio.current_time() - lost_at
    assert 0.4 <= took < 2.0
    error = events[-2]
    assert isinstance(error, Error)
    assert error.code == "sideband_lost"
    assert "0.5 s" in error.message
    assert events[-1] == Closed("error")


async def test_a_clean_close_of_the_sideband_means_the_call_ended(peers: PeerService, offer_sdp: str) -> None:
    """CLOSE 1000 from the server: ``Closed("call_ended")``, no re-join."""
    async with serving(peers, faults=Faults(close_after_events=1)) as server, client_for(server) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                events = await drain(conv)
    assert [type(e) for e in events] == [Started, SessionUpdated, Closed]
    assert events[-1] == Closed("call_ended", 1000, "rtengine local server: close_after_events")
    assert len(joins_of(server, conv)) == 1


async def test_re_attach_off_keeps_the_old_ending(peers: PeerService, offer_sdp: str) -> None:
    async with serving(peers) as server, client_for(server, sideband_rejoin_attempts=0) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                await until(conv, SessionUpdated)
                server.set_faults(Faults(drop_sideband="1011"))
                await conv.send_text("drops the sideband")
                events = await drain(conv)
    assert events[-1] == Closed("transport_closed", 1011, "rtengine local server: drop_sideband")
    assert len(joins_of(server, conv)) == 1
