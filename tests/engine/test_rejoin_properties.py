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

import schedule_harness as harness
import trio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rejoin_helpers import feed

import rtengine
from rtengine.events import Error, SidebandLost, SidebandRestored
from rtengine.server import Faults, LocalServer, ServerOptions

KEY = "sk-rejoin-property"
CLOSE_TIMEOUT = 1.0

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
    inputs=harness.timed_inputs(times),
    drops=st.lists(st.tuples(times, st.sampled_from(["eof", "1011", "reset"])), max_size=3).map(
        lambda xs: tuple(sorted(xs))
    ),
    close_at=st.none() | times,
    cancel=st.booleans(),
    attempts=st.integers(1, 4),
)


@dataclass
class Outcome(harness.Run):
    sockets: list[list[dict[str, object]]] = field(default_factory=list)


async def scenario(s: Schedule, out: Outcome) -> None:
    start = trio.current_time()
    options = ServerOptions(api_key=KEY, delta_interval=0.0)
    async with harness.memnet_client(
        options,
        call_retries=0,
        backoff_base=0.2,
        close_timeout=CLOSE_TIMEOUT,
        rand=random.Random(0).random,
        sideband_rejoin_attempts=s.attempts,
    ) as on:
        offer = await harness.offer_sdp(on.peers)
        await converse(s, out, on.client, offer, start, on.server)
        out.sockets = [list(c.frames_in) for c in on.server.record.sidebands() if c.accepted]


async def converse(
    s: Schedule, out: Outcome, client: rtengine.RealtimeClient, offer: str, start: float, server: LocalServer
) -> None:
    async def drop_later() -> None:
        for n, (at, mode) in enumerate(s.drops, 1):
            await trio.sleep_until(start + at)
            server.set_faults(Faults(drop_sideband=mode, drop_sideband_times=n))  # type: ignore[arg-type]

    async def body(conv: rtengine.Conversation) -> None:
        await feed(s.inputs, out.queued, conv, start)
        with trio.move_on_after(20):
            await server.record.wait_until(lambda: not conv.active or received_all(server, out))
        await conv.close()

    await harness.run_on_schedule(client, out, start, s.close_at, s.cancel, body, also=drop_later, offer_sdp=offer)


def received_all(server: LocalServer, out: Outcome) -> bool:
    sockets = [c.frames_in[1:] for c in server.record.sidebands() if c.accepted]
    got = harness.received([f for frames in sockets for f in frames])
    return got == out.queued


def check(s: Schedule, out: Outcome) -> None:
    assert out.leftover == []
    if not out.started:
        return
    events = out.events
    closed = harness.closed_last(events)
    fatal = [e for e in events if isinstance(e, Error) and e.fatal]
    assert len(fatal) <= 1
    if closed.reason == "error":
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
    got = harness.received([f for frames in out.sockets for f in frames[1:]])
    for kind in ("text", "audio", "tool"):
        harness.assert_once_in_order([got], out.queued, kind)
    harness.assert_accounted(stats, out.queued)
    written = stats.texts_sent + stats.tool_outputs_sent + stats.audio_frames_sent
    assert sum(map(len, got.values())) <= written
    if stats.sideband_losses == 0:
        assert sum(map(len, got.values())) == written  # nothing written is lost without a loss
        if s.close_at is None and closed.reason == "requested":
            assert got == out.queued


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules)
def test_rejoin_invariants_under_random_drops(s: Schedule) -> None:
    out = Outcome()
    harness.examine(scenario, check, s, out)
    harness.note_ending(out.events)
    event(f"losses: {out.stats.sideband_losses if out.stats else 0}")
    event(f"sockets: {len(out.sockets)}")
