"""Sideband re-attach as a property, schedule-as-data on MockClock against the real local server (``memnet``).

Each example draws timed inputs (texts, tool outputs, audio), sideband drops (when the server's ``drop_sideband``
fault is armed, and its mode: an EOF without a close frame or a CLOSE 1011 — on the in-memory network a reset is an
EOF), how many, and when the caller closes or cancels. Invariants, besides the engine's (``Started`` first, one
``Closed`` last, at most one fatal ``Error`` right before it, none once the caller's end won, no engine task left):

* every accepted socket of the call starts with ``session.update``;
* across all sockets, each kind arrived in order and without a duplicate (a subsequence of what was queued);
* every queued input is accounted for exactly once: written (``*_sent``), discarded at the end, lost or
  interrupted — an input written on a socket that was then lost may not have reached the server (a completed
  write is never repeated), so ``received <= written`` and the difference is at most what was written on lost
  sockets; with no drop and no early end, everything queued was received;
* ``SidebandLost``/``SidebandRestored`` alternate, one ``SidebandLost`` per loss counted in the stats.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

import trio
import trio.testing
from engine_helpers import engine_tasks
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from memnet import MemoryNetwork
from rejoin_helpers import feed, is_subsequence, split_audio

import rtengine
from rtengine.adapters._peer import PeerService, open_peer_service
from rtengine.events import Closed, ConversationEvent, Error, SidebandLost, SidebandRestored, Started
from rtengine.server import Faults, LocalServer, ServerOptions, open_local_server

KEY = "sk-rejoin-property"
CLOSE_TIMEOUT = 1.0

_offer: list[str] = []


async def offer_sdp(peers: PeerService) -> str:
    """One real aiortc offer, made once and reused (the server's answerer needs a real one)."""
    if not _offer:
        peer = await peers.create_offer()
        _offer.append(peer.local_sdp)
        await peer.aclose()
    return _offer[0]


def received(frames: list[dict[str, object]]) -> dict[str, list[str]]:
    """The inputs in client frames, per kind, in order."""
    got: dict[str, list[str]] = {"text": [], "audio": [], "tool": []}
    for frame in frames:
        if frame.get("type") == "input_audio_buffer.append":
            got["audio"].extend(split_audio(str(frame["audio"]), 2))
        elif frame.get("type") == "conversation.item.create":
            item = frame["item"]
            assert isinstance(item, dict)
            if item["type"] == "function_call_output":
                got["tool"].append(str(item["call_id"]))
            else:
                got["text"].append(str(item["content"][0]["text"]))
    return got


times = st.floats(0.0, 3.0, allow_nan=False).map(lambda t: round(t, 3))


@dataclass(frozen=True)
class Schedule:
    inputs: tuple[tuple[float, str], ...]
    drops: tuple[tuple[float, str], ...]
    close_at: float | None
    cancel: bool
    attempts: int


schedules = st.builds(
    Schedule,
    inputs=st.lists(st.tuples(times, st.sampled_from(["text", "audio", "tool"])), max_size=25).map(
        lambda xs: tuple(sorted(xs))
    ),
    drops=st.lists(st.tuples(times, st.sampled_from(["eof", "1011", "reset"])), max_size=3).map(
        lambda xs: tuple(sorted(xs))
    ),
    close_at=st.none() | times,
    cancel=st.booleans(),
    attempts=st.integers(1, 4),
)


@dataclass
class Outcome:
    events: list[ConversationEvent] = field(default_factory=list)
    queued: dict[str, list[str]] = field(default_factory=lambda: {"text": [], "audio": [], "tool": []})
    sockets: list[list[dict[str, object]]] = field(default_factory=list)
    stats: rtengine.ConversationStats | None = None
    leftover: list[str] = field(default_factory=list)
    started: bool = False
    closing_index: int | None = None


async def scenario(s: Schedule, out: Outcome) -> None:
    start = trio.current_time()
    options = ServerOptions(api_key=KEY, delta_interval=0.0)
    async with open_peer_service() as peers, open_local_server(options, peers=peers) as server:
        async with trio.open_nursery() as net_nursery:
            net = MemoryNetwork(server, net_nursery)
            client = rtengine.RealtimeClient(
                server.base_url,
                api_key=KEY,
                http_client=net.http,
                open_stream=net.open_stream,
                call_retries=0,
                backoff_base=0.2,
                close_timeout=CLOSE_TIMEOUT,
                rand=random.Random(0).random,
                sideband_rejoin_attempts=s.attempts,
            )
            offer = await offer_sdp(peers)
            await converse(s, out, client, offer, start, server)
            out.sockets = [list(c.frames_in) for c in server.record.sidebands() if c.accepted]
            net_nursery.cancel_scope.cancel()
        await net.http.aclose()


async def converse(
    s: Schedule, out: Outcome, client: rtengine.RealtimeClient, offer: str, start: float, server: LocalServer
) -> None:
    box: list[rtengine.Conversation] = []
    with trio.CancelScope() as outer:
        if s.cancel and s.close_at is not None:
            outer.deadline = start + s.close_at
        async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer) as conv:
            box.append(conv)
            out.started = True

            async def consume() -> None:
                async for item in conv.events:
                    out.events.append(item)

            async def drop_later() -> None:
                for n, (at, mode) in enumerate(s.drops, 1):
                    await trio.sleep_until(start + at)
                    server.set_faults(Faults(drop_sideband=mode, drop_sideband_times=n))  # type: ignore[arg-type]

            async def close_later() -> None:
                assert s.close_at is not None
                await trio.sleep_until(start + s.close_at)
                out.closing_index = len(out.events) + conv.events.pending()
                await conv.close()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                nursery.start_soon(drop_later)
                if s.close_at is not None and not s.cancel:
                    nursery.start_soon(close_later)
                await feed(s.inputs, out.queued, conv, start)
                with trio.move_on_after(20):
                    await server.record.wait_until(lambda: not conv.active or received_all(server, out))
                await conv.close()
    if box:
        async for item in box[0].events:  # what an outer cancellation kept the consumer from reading
            out.events.append(item)
        out.stats = box[0].stats
    out.leftover = engine_tasks()


def received_all(server: LocalServer, out: Outcome) -> bool:
    sockets = [c.frames_in[1:] for c in server.record.sidebands() if c.accepted]
    got = received([f for frames in sockets for f in frames])
    return got == out.queued


def check(s: Schedule, out: Outcome) -> None:
    assert out.leftover == []
    if not out.started:
        return
    events = out.events
    assert isinstance(events[0], Started)
    closed = [e for e in events if isinstance(e, Closed)]
    assert len(closed) == 1
    assert events[-1] is closed[0]
    fatal = [e for e in events if isinstance(e, Error) and e.fatal]
    assert len(fatal) <= 1
    if closed[0].reason == "error":
        assert events[-2] is fatal[0]
        assert fatal[0].code == "sideband_lost"
    else:
        assert fatal == []
    if out.closing_index is not None:
        assert not any(isinstance(e, Error) for e in events[out.closing_index :])
    markers = [type(e) for e in events if isinstance(e, SidebandLost | SidebandRestored)]
    assert all(a is not b for a, b in itertools.pairwise(markers)), markers  # they alternate
    assert not markers or markers[0] is SidebandLost
    stats = out.stats
    assert stats is not None
    assert markers.count(SidebandLost) == stats.sideband_losses
    for frames in out.sockets:
        if frames:
            assert frames[0]["type"] == "session.update"
    got = received([f for frames in out.sockets for f in frames[1:]])
    for kind in ("text", "audio", "tool"):
        assert is_subsequence(got[kind], out.queued[kind]), kind
        assert len(set(got[kind])) == len(got[kind]), f"{kind} delivered twice"
    written = stats.texts_sent + stats.tool_outputs_sent + stats.audio_frames_sent
    unsent = (
        stats.texts_discarded + stats.tool_items_discarded + stats.audio_frames_discarded + stats.audio_frames_expired
    )
    assert sum(map(len, out.queued.values())) == written + unsent + stats.inputs_lost + stats.inputs_interrupted
    assert sum(map(len, got.values())) <= written
    if stats.sideband_losses == 0:
        assert sum(map(len, got.values())) == written  # nothing written is lost without a loss
        if s.close_at is None and closed[0].reason == "requested":
            assert got == out.queued


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules)
def test_rejoin_invariants_under_random_drops(s: Schedule) -> None:
    out = Outcome()
    trio.run(scenario, s, out, clock=trio.testing.MockClock(autojump_threshold=0))
    check(s, out)
    closed = out.events[-1] if out.events else None
    event(f"closed: {closed.reason if isinstance(closed, Closed) else 'never started'}")
    event(f"losses: {out.stats.sideband_losses if out.stats else 0}")
    event(f"sockets: {len(out.sockets)}")
