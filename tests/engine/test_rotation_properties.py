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
from rtengine.adapters._peer import open_peer_service
from rtengine.events import Closed, ConversationEvent, Error, SessionRotated, Started
from rtengine.server import LocalServer, ServerOptions, open_local_server

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
    inputs=st.lists(st.tuples(times, st.sampled_from(["text", "audio", "tool"])), max_size=25).map(
        lambda xs: tuple(sorted(xs))
    ),
    close_at=st.none() | times,
    cancel=st.booleans(),
)


@dataclass
class Outcome:
    events: list[ConversationEvent] = field(default_factory=list)
    queued: dict[str, list[str]] = field(default_factory=lambda: {"text": [], "audio": [], "tool": []})
    sockets: list[list[dict[str, object]]] = field(default_factory=list)
    ends: list[tuple[str | None, int | None]] = field(default_factory=list)
    stats: rtengine.ConversationStats | None = None
    leftover: list[str] = field(default_factory=list)
    started: bool = False


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
            elif item.get("role") == "user":
                got["text"].append(str(item["content"][0]["text"]))
    return got


async def scenario(s: Schedule, out: Outcome) -> None:
    start = trio.current_time()
    options = ServerOptions(api_key=KEY, delta_interval=0.0, session_max_seconds=CAP)
    async with open_peer_service() as peers, open_local_server(options, peers=peers) as server:
        async with trio.open_nursery() as net_nursery:
            net = MemoryNetwork(server, net_nursery)
            client = rtengine.RealtimeClient(
                server.base_url,
                api_key=KEY,
                http_client=net.http,
                open_stream=net.open_stream,
                backoff_base=0.2,
                close_timeout=1.0,
                rand=random.Random(0).random,
            )
            await converse(s, out, client, start)
            directs = [c for c in server.record.directs() if c.accepted]
            out.sockets = [list(c.frames_in) for c in directs]
            out.ends = [(c.end, c.close_code) for c in directs]
            net_nursery.cancel_scope.cancel()
        await net.http.aclose()


async def converse(s: Schedule, out: Outcome, client: rtengine.RealtimeClient, start: float) -> None:
    box: list[rtengine.Conversation] = []
    with trio.CancelScope() as outer:
        if s.cancel and s.close_at is not None:
            outer.deadline = start + s.close_at
        async with rtengine.open_conversation(client, rtengine.SessionConfig(), rotate_margin=MARGIN) as conv:
            box.append(conv)
            out.started = True

            async def consume() -> None:
                async for item in conv.events:
                    out.events.append(item)

            async def close_later() -> None:
                assert s.close_at is not None
                await trio.sleep_until(start + s.close_at)
                await conv.close()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                if s.close_at is not None and not s.cancel:
                    nursery.start_soon(close_later)
                await feed(s.inputs, out.queued, conv, start)
                await trio.sleep_until(start + 11.5)  # past the last input: two rotations at least
                await conv.close()
    if box:
        async for item in box[0].events:
            out.events.append(item)
        out.stats = box[0].stats
    out.leftover = engine_tasks()


def check(s: Schedule, out: Outcome) -> None:
    assert out.leftover == []
    if not out.started:
        return
    events = out.events
    assert isinstance(events[0], Started)
    closed = [e for e in events if isinstance(e, Closed)]
    assert len(closed) == 1
    assert events[-1] is closed[0]
    assert closed[0].reason == "requested"
    assert [e for e in events if isinstance(e, Error)] == []
    stats = out.stats
    assert stats is not None
    rotations = [e for e in events if isinstance(e, SessionRotated)]
    assert len(rotations) == stats.rotations == len(out.sockets) - 1
    assert all(frames[0]["type"] == "session.update" for frames in out.sockets)
    assert all(end == ("client_close", 1000) for end in out.ends[:-1])
    per_socket = [received(frames) for frames in out.sockets]
    for before, after in itertools.pairwise(per_socket):
        assert after["text"][: len(before["text"])] == before["text"]  # the replay: the conversation so far
    texts = per_socket[-1]["text"]
    assert len(set(texts)) == len(texts)
    assert is_subsequence(texts, out.queued["text"])
    assert len(texts) == stats.texts_sent
    for kind in ("audio", "tool"):
        got = [x for socket in per_socket for x in socket[kind]]
        assert len(set(got)) == len(got), f"{kind} delivered twice"
        assert is_subsequence(got, out.queued[kind]), kind
    written = stats.texts_sent + stats.tool_outputs_sent + stats.audio_frames_sent
    unsent = (
        stats.texts_discarded + stats.tool_items_discarded + stats.audio_frames_discarded + stats.audio_frames_expired
    )
    assert sum(map(len, out.queued.values())) == written + unsent + stats.inputs_lost + stats.inputs_interrupted
    if s.close_at is None:
        assert texts == out.queued["text"]
        assert [x for socket in per_socket for x in socket["audio"]] == out.queued["audio"]
        assert [x for socket in per_socket for x in socket["tool"]] == out.queued["tool"]
        assert len(rotations) >= 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules)
def test_rotation_loses_and_reorders_nothing(s: Schedule) -> None:
    out = Outcome()
    trio.run(scenario, s, out, clock=trio.testing.MockClock(autojump_threshold=0))
    check(s, out)
    event(f"rotations: {out.stats.rotations if out.stats else 0}")


def test_rotation_with_a_steady_stream_of_inputs() -> None:
    """An explicit example: an input of each kind every 0.25 s for 11 s, no early end."""
    inputs = tuple((round(i * 0.25, 3), ("text", "audio", "tool")[i % 3]) for i in range(44))
    out = Outcome()
    s = Schedule(inputs, None, False)
    trio.run(scenario, s, out, clock=trio.testing.MockClock(autojump_threshold=0))
    check(s, out)
    assert out.stats is not None
    assert out.stats.rotations >= 2
    _ = LocalServer
