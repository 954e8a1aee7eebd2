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

import schedule_harness as harness
import trio
from engine_helpers import engine_tasks
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import rtengine
from rtengine.events import Error
from rtengine.server import Faults, ServerOptions, ServerRecord

KEY = "sk-property-test"
CLOSE_TIMEOUT = 1.0
BACKOFF = 0.2


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
    inputs=harness.timed_inputs(times, ["text", "audio", "audio_burst", "tool", "request"]),
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
class Outcome(harness.Run):
    audio_refused: int = 0
    not_running_after_end: bool = True
    elapsed: float = 0.0
    frames: list[list[dict[str, object]]] = field(default_factory=list)


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
    async with harness.memnet_client(
        options,
        sideband_retries=s.retries,
        call_retries=0,
        backoff_base=BACKOFF,
        close_timeout=CLOSE_TIMEOUT,
        connect_timeout=10.0,
        rand=random.Random(0).random,
    ) as on:
        capacities = rtengine.Capacities(text=s.text_capacity, tools=s.tool_capacity, audio=s.audio_capacity)
        offer = await harness.offer_sdp(on.peers) if s.transport == "webrtc" else None
        await run_conversation(s, out, on.client, capacities, offer, start, on.server.record)
        out.frames = [list(c.frames_in) for c in on.server.record.connections if c.accepted]
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
    async def body(conv: rtengine.Conversation) -> None:
        await feed(s, out, conv, start)
        if conv.active:
            with trio.move_on_after(30):
                await record.wait_until(lambda: not conv.active or server_has_everything(record, out))
            began = trio.current_time()
            await conv.close()
            out.close_took = out.close_took or trio.current_time() - began

    conv = await harness.run_on_schedule(
        client, out, start, s.close_at, s.cancel, body, offer_sdp=offer, capacities=capacities
    )
    if conv is not None:
        try:
            await conv.send_text("after the end")
            out.not_running_after_end = False
        except rtengine.ConversationNotRunning:
            pass
    out.leftover = engine_tasks()


def server_has_everything(record: ServerRecord, out: Outcome) -> bool:
    accepted = [c for c in record.connections if c.accepted]
    return bool(accepted) and harness.received(accepted[-1].frames_in[1:]) == out.queued


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


def check(s: Schedule, out: Outcome) -> None:
    assert out.leftover == []
    if not out.started:
        return  # cancelled while starting: no conversation, no events, nothing left behind
    events = out.events
    closed = harness.closed_last(events)
    fatal = [e for e in events if isinstance(e, Error) and e.fatal]
    assert len(fatal) <= 1
    benign = [e for e in events if isinstance(e, Error) and not e.fatal]
    assert [e.code for e in benign] == (["response_cancel_not_active"] if s.benign_error else [])[: len(benign)]
    if closed.reason == "error":
        assert len(fatal) == 1
        assert events[-2] is fatal[0]
    else:
        assert fatal == []
    assert out.not_running_after_end
    assert out.leftover == []
    assert out.stats is not None
    assert out.stats.audio_frames_dropped == out.audio_refused
    assert len(out.frames) <= 1  # at most one accepted connection per conversation
    for frames in out.frames:
        if not frames:
            continue  # accepted at the instant the caller left: nothing was sent
        assert frames[0]["type"] == "session.update"
        got = harness.received(frames[1:])
        for kind in ("text", "audio", "tool"):
            assert got[kind] == out.queued[kind][: len(got[kind])], kind
    ended_early = (
        s.close_at is not None
        or s.server_close_after is not None
        or s.fatal_error
        or (s.transport == "webrtc" and s.refused > s.retries)
    )
    if not ended_early:
        assert closed.reason == "requested"
        if any(out.queued.values()):
            assert out.frames, "inputs were queued but the join never happened"
            assert harness.received(out.frames[0][1:]) == out.queued
    if out.close_took is not None:
        assert out.close_took <= CLOSE_TIMEOUT + 1.0 + 1e-6
    worst_join = (s.retries + 1) * s.join_delay + sum(BACKOFF * 2**n * 1.1 for n in range(s.retries))
    last = max([at for at, _ in s.inputs] + [s.close_at or 0.0])
    assert out.elapsed <= last + worst_join + 30 + 2 * (CLOSE_TIMEOUT + 1.0) + 1.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules)
def test_conversation_invariants_under_random_schedules(s: Schedule) -> None:
    out = Outcome()
    harness.examine(scenario, check, s, out)
    harness.note_ending(out.events)
    event(f"joined: {bool(out.frames)}")
    delivered = harness.received(out.frames[0][1:] if out.frames else [])
    event(f"inputs delivered: {sum(len(v) for v in delivered.values()) > 0}")
    event(f"audio dropped: {out.audio_refused > 0}")
