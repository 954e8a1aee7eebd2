"""Ordering and cancellation races as properties, schedule-as-data (stack-notes §5).

Each example draws a schedule — transport, join delay, refused joins and retries, timed inputs of every kind,
when the caller closes or cancels, server-side endings (a clean close — also after the very first server event —,
a fatal error), a benign server error (``response_cancel_not_active``) and buffer sizes — and runs
it in a fresh ``trio.run`` on ``MockClock(autojump_threshold=0)`` against the real local server, reached through
an in-memory network (see ``memnet``). The invariants:

* ``Started`` first, exactly one ``Closed`` last, nothing after it; at most one fatal ``Error``, always right
  before ``Closed("error")``; never an ``Error`` when the caller's close won; a benign error never ends anything;
* on the server, ``session.update`` is frame #0 and each input kind arrived as an in-order, duplicate-free prefix
  of what the caller queued — all of it when nothing ended the conversation early;
* every dropped audio frame is counted; sends after the end raise ``ConversationNotRunning``;
* no engine task outlives the block; ``close()`` and the whole run stay within virtual-time bounds.

Post-handshake join failures (a sideband whose ``session.update`` write fails) are not drawn here: no server fault
makes the client's write fail after an accepted handshake; ``test_sweep`` covers them with fake seams.
"""

import random
from dataclasses import dataclass, field

import trio
import trio.testing
from engine_helpers import engine_tasks
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from memnet import MemoryNetwork
from rejoin_helpers import split_audio

import rtengine
from rtengine.adapters._peer import PeerService, open_peer_service
from rtengine.events import Closed, ConversationEvent, Error, Started
from rtengine.server import Faults, ServerOptions, ServerRecord, open_local_server

KEY = "sk-property-test"
CLOSE_TIMEOUT = 1.0
BACKOFF = 0.2

_offer: list[str] = []


async def offer_sdp(peers: PeerService) -> str:
    """One real aiortc offer, made once and reused (the server's answerer needs a real one)."""
    if not _offer:
        peer = await peers.create_offer()
        _offer.append(peer.local_sdp)
        await peer.aclose()
    return _offer[0]


@dataclass(frozen=True)
class Schedule:
    transport: str
    join_delay: float
    refused: int
    retries: int
    inputs: tuple[tuple[float, str], ...]
    close_at: float | None
    cancel: bool
    server_close_after: int | None
    fatal_error: bool
    benign_error: bool
    text_capacity: int
    audio_capacity: int
    tool_capacity: int


times = st.floats(0.0, 3.0, allow_nan=False).map(lambda t: round(t, 3))
schedules = st.builds(
    Schedule,
    transport=st.sampled_from(["webrtc", "webrtc", "websocket"]),
    join_delay=times,
    refused=st.integers(0, 3),
    retries=st.integers(0, 3),
    inputs=st.lists(
        st.tuples(times, st.sampled_from(["text", "audio", "audio_burst", "tool", "request"])), max_size=25
    ).map(lambda xs: tuple(sorted(xs))),
    close_at=st.none() | times,
    cancel=st.booleans(),
    server_close_after=st.none() | st.just(1) | st.integers(2, 40),
    fatal_error=st.sampled_from([False, False, False, True]),
    benign_error=st.booleans(),
    text_capacity=st.integers(1, 4),
    audio_capacity=st.integers(1, 6),
    tool_capacity=st.integers(1, 4),
)


@dataclass
class Outcome:
    events: list[ConversationEvent] = field(default_factory=list)
    queued: dict[str, list[str]] = field(default_factory=lambda: {"text": [], "audio": [], "tool": []})
    audio_refused: int = 0
    not_running_after_end: bool = True
    close_took: float | None = None
    elapsed: float = 0.0
    frames: list[list[dict[str, object]]] = field(default_factory=list)
    leftover_tasks: list[str] = field(default_factory=list)
    stats: rtengine.ConversationStats | None = None
    started: bool = False


async def scenario(s: Schedule, out: Outcome) -> None:
    faults = Faults(
        sideband_accept_delay=s.join_delay if s.transport == "webrtc" else 0.0,
        websocket_accept_delay=s.join_delay if s.transport == "websocket" else 0.0,
        refuse_sideband_joins=s.refused,
        close_after_events=s.server_close_after,
        inject=(("error:response_cancel_not_active",) if s.benign_error else ())
        + (("error:server_error",) if s.fatal_error else ()),
    )
    options = ServerOptions(api_key=KEY, delta_interval=0.0, faults=faults)
    start = trio.current_time()
    async with open_peer_service() as peers, open_local_server(options, peers=peers) as server:
        async with trio.open_nursery() as net_nursery:
            net = MemoryNetwork(server, net_nursery)
            client = rtengine.RealtimeClient(
                server.base_url,
                api_key=KEY,
                http_client=net.http,
                open_stream=net.open_stream,
                sideband_retries=s.retries,
                call_retries=0,
                backoff_base=BACKOFF,
                close_timeout=CLOSE_TIMEOUT,
                connect_timeout=10.0,
                rand=random.Random(0).random,
            )
            capacities = rtengine.Capacities(text=s.text_capacity, tools=s.tool_capacity, audio=s.audio_capacity)
            offer = await offer_sdp(peers) if s.transport == "webrtc" else None
            await run_conversation(s, out, client, capacities, offer, start, server.record)
            out.frames = [list(c.frames_in) for c in server.record.connections if c.accepted]
            net_nursery.cancel_scope.cancel()
        await net.http.aclose()
    out.elapsed = trio.current_time() - start


async def run_conversation(
    s: Schedule,
    out: Outcome,
    client: rtengine.RealtimeClient,
    capacities: rtengine.Capacities,
    offer: str | None,
    start: float,
    record: ServerRecord,
) -> None:
    box: list[rtengine.Conversation] = []
    with trio.CancelScope() as outer:
        if s.cancel and s.close_at is not None:
            outer.deadline = start + s.close_at
        async with rtengine.open_conversation(
            client, rtengine.SessionConfig(), offer_sdp=offer, capacities=capacities
        ) as conv:
            box.append(conv)
            out.started = True

            async def consume() -> None:
                async for event in conv.events:
                    out.events.append(event)

            async def close_later() -> None:
                assert s.close_at is not None
                await trio.sleep_until(start + s.close_at)
                began = trio.current_time()
                await conv.close()
                out.close_took = trio.current_time() - began

            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                if s.close_at is not None and not s.cancel:
                    nursery.start_soon(close_later)
                await feed(s, out, conv, start)
                if conv.active:
                    with trio.move_on_after(30):
                        await record.wait_until(lambda: not conv.active or server_has_everything(record, out))
                    began = trio.current_time()
                    await conv.close()
                    out.close_took = out.close_took or trio.current_time() - began
    if box:
        conv = box[0]
        async for event in conv.events:  # what an outer cancellation kept the consumer from reading
            out.events.append(event)
        out.stats = conv.stats
        try:
            await conv.send_text("after the end")
            out.not_running_after_end = False
        except rtengine.ConversationNotRunning:
            pass
    out.leftover_tasks = engine_tasks()


def server_has_everything(record: ServerRecord, out: Outcome) -> bool:
    accepted = [c for c in record.connections if c.accepted]
    return bool(accepted) and received(accepted[-1].frames_in[1:]) == out.queued


async def feed(s: Schedule, out: Outcome, conv: rtengine.Conversation, start: float) -> None:
    for index, (at, kind) in enumerate(s.inputs):
        await trio.sleep_until(start + at)
        try:
            if kind == "text":
                await conv.send_text(f"text-{index}")
                out.queued["text"].append(f"text-{index}")
            elif kind in ("audio", "audio_burst"):
                for frame in range(index * 100, index * 100 + (8 if kind == "audio_burst" else 1)):
                    if conv.send_audio(frame.to_bytes(2, "little")):
                        out.queued["audio"].append(str(frame))
                    else:
                        out.audio_refused += 1
            elif kind == "tool":
                await conv.send_tool_output(f"call_{index}", "ok", respond=False)
                out.queued["tool"].append(f"call_{index}")
            else:
                await conv.request_response()
        except rtengine.ConversationNotRunning:
            return


def received(frames: list[dict[str, object]]) -> dict[str, list[str]]:
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


def check(s: Schedule, out: Outcome) -> None:
    assert out.leftover_tasks == []
    if not out.started:
        return  # cancelled while starting: no conversation, no events, nothing left behind
    events = out.events
    assert events, "no events at all"
    assert isinstance(events[0], Started)
    closed = [e for e in events if isinstance(e, Closed)]
    assert len(closed) == 1, [type(e).__name__ for e in events]
    assert events[-1] is closed[0]
    fatal = [e for e in events if isinstance(e, Error) and e.fatal]
    assert len(fatal) <= 1
    benign = [e for e in events if isinstance(e, Error) and not e.fatal]
    assert [e.code for e in benign] == (["response_cancel_not_active"] if s.benign_error else [])[: len(benign)]
    if closed[0].reason == "error":
        assert len(fatal) == 1
        assert events[-2] is fatal[0]
    else:
        assert fatal == []
    assert out.not_running_after_end
    assert out.leftover_tasks == []
    assert out.stats is not None
    assert out.stats.audio_frames_dropped == out.audio_refused
    assert len(out.frames) <= 1  # at most one accepted connection per conversation
    for frames in out.frames:
        if not frames:
            continue  # accepted at the instant the caller left: nothing was sent
        assert frames[0]["type"] == "session.update"
        got = received(frames[1:])
        for kind in ("text", "audio", "tool"):
            assert got[kind] == out.queued[kind][: len(got[kind])], kind
    ended_early = (
        s.close_at is not None
        or s.server_close_after is not None
        or s.fatal_error
        or (s.transport == "webrtc" and s.refused > s.retries)
    )
    if not ended_early:
        assert closed[0].reason == "requested"
        if any(out.queued.values()):
            assert out.frames, "inputs were queued but the join never happened"
            assert received(out.frames[0][1:]) == out.queued
    if out.close_took is not None:
        assert out.close_took <= CLOSE_TIMEOUT + 1.0 + 1e-6
    worst_join = (s.retries + 1) * s.join_delay + sum(BACKOFF * 2**n * 1.1 for n in range(s.retries))
    last = max([at for at, _ in s.inputs] + [s.close_at or 0.0])
    assert out.elapsed <= last + worst_join + 30 + 2 * (CLOSE_TIMEOUT + 1.0) + 1.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules)
def test_conversation_invariants_under_random_schedules(s: Schedule) -> None:
    out = Outcome()
    trio.run(scenario, s, out, clock=trio.testing.MockClock(autojump_threshold=0))
    check(s, out)
    closed = out.events[-1] if out.events else None
    event(f"closed: {closed.reason if isinstance(closed, Closed) else 'never started'}")
    event(f"joined: {bool(out.frames)}")
    event(f"inputs delivered: {sum(len(v) for v in received(out.frames[0][1:] if out.frames else []).values()) > 0}")
    event(f"audio dropped: {out.audio_refused > 0}")
