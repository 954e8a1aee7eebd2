"""Session-cap rotation of a websocket conversation as a property, on MockClock against the real local server over
the in-memory network (``memnet``), with a 4 s cap and a 1.5 s margin: over 0–11 s a conversation rotates two or
three times while texts, tool outputs and audio are queued at random times and the caller closes or cancels at a
random time. Invariants, besides the engine's (``Started`` first, one ``Closed`` last, no ``Error`` at all, no engine
task left):

* every connection starts with ``session.update``; every connection but the last was closed by rtengine (1000);
* texts: each connection received the previous one's texts again (the replay) and then its own, so the last
  connection holds every text written, in order, each once — nothing lost or reordered across rotations;
* audio and tool outputs (not replayed here: audio is not an item, the outputs answer no call) arrived in order,
  each at most once, across the connections; with no early end, every queued input arrived;
* every queued input is accounted for exactly once (written, discarded at the end, lost or interrupted).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import schedule_harness as harness
import trio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import rtengine
from rtengine.events import SessionRotated
from rtengine.server import ServerOptions

KEY = "sk-rotation-property"
CAP = 4.0
MARGIN = 1.5

times = st.floats(0.0, 11.0, allow_nan=False).map(lambda t: round(t, 3))


@dataclass(frozen=True)
class Schedule:
    inputs: tuple[tuple[float, str], ...]
    close_at: float | None
    cancel: bool


schedules = st.builds(
    Schedule,
    inputs=harness.timed_inputs(times),
    close_at=st.none() | times,
    cancel=st.booleans(),
)


@dataclass
class Outcome(harness.Run):
    sockets: list[list[dict[str, object]]] = field(default_factory=list)
    ends: list[tuple[str | None, int | None]] = field(default_factory=list)


async def scenario(s: Schedule, out: Outcome) -> None:
    start = trio.current_time()
    options = ServerOptions(api_key=KEY, delta_interval=0.0, session_max_seconds=CAP)
    async with harness.memnet_client(options, backoff_base=0.2, close_timeout=1.0, rand=random.Random(0).random) as on:
        await converse(s, out, on.client, start)
        directs = [c for c in on.server.record.directs() if c.accepted]
        out.sockets = [list(c.frames_in) for c in directs]
        out.ends = [(c.end, c.close_code) for c in directs]


async def converse(s: Schedule, out: Outcome, client: rtengine.RealtimeClient, start: float) -> None:
    body = harness.feed_then_close(s.inputs, out.queued, start, 11.5)  # past the last input: two rotations at least

    await harness.run_on_schedule(client, out, start, s.close_at, s.cancel, body, rotate_margin=MARGIN)


def check(s: Schedule, out: Outcome) -> None:
    stats = harness.ended_as_requested(out)
    if stats is None:
        return
    rotations = [e for e in out.events if isinstance(e, SessionRotated)]
    assert len(rotations) == stats.rotations == len(out.sockets) - 1
    assert all(end == ("client_close", 1000) for end in out.ends[:-1])
    per_socket = harness.websocket_sessions(out.sockets, out.queued)
    texts = per_socket[-1]["text"]
    assert len(texts) == stats.texts_sent
    harness.assert_accounted(stats, out.queued)
    if s.close_at is None:
        assert texts == out.queued["text"]
        assert [x for socket in per_socket for x in socket["audio"]] == out.queued["audio"]
        assert [x for socket in per_socket for x in socket["tool"]] == out.queued["tool"]
        assert len(rotations) >= 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules)
def test_rotation_loses_and_reorders_nothing(s: Schedule) -> None:
    out = Outcome()
    harness.examine(scenario, check, s, out)
    event(f"rotations: {out.stats.rotations if out.stats else 0}")


def test_rotation_with_a_steady_stream_of_inputs() -> None:
    """An explicit example: an input of each kind every 0.25 s for 11 s, no early end."""
    inputs = tuple((round(i * 0.25, 3), ("text", "audio", "tool")[i % 3]) for i in range(44))
    out = Outcome()
    s = Schedule(inputs, None, False)
    harness.run_virtual(scenario, s, out)
    check(s, out)
    assert out.stats is not None
    assert out.stats.rotations >= 2
