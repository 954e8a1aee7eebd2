"""Websocket reconnect (``reconnect=True``) as a property, on MockClock against the real local server over the
in-memory network (``memnet``).

Each example draws timed inputs (texts, tool outputs, audio), up to three drops of the connection at any moment
(the client's stream is cut: the engine reads an EOF without a close frame, or its write fails; the server sees the
client vanish) and when the caller closes or cancels. Invariants, besides the engine's (``Started`` first, one
``Closed`` last and ``requested`` — every drop is reconnected —, no ``Error`` at all, no engine task left):

* every connection starts with ``session.update``; one ``SessionRestored`` per drop the engine noticed;
* texts: each new session is given the conversation so far (the replay) and then the texts written since, so the
  last connection holds every text in the order queued, each once — nothing lost, duplicated or reordered across
  the drops; with no early end, it holds every text queued;
* audio and tool outputs (not replayed: audio is not an item, these outputs answer no call) arrive in order and
  at most once across the connections; what was written on a connection that was then cut may not have arrived;
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
from rtengine.events import Closed, ConnectionDropped, ConversationEvent, Error, SessionRestored, Started
from rtengine.server import LocalServer, ServerOptions, open_local_server

KEY = "sk-reconnect-property"

times = st.floats(0.0, 3.0, allow_nan=False).map(lambda t: round(t, 3))


class CutStream(trio.abc.Stream):
    """The client's end of an in-memory connection, which the test can cut at any moment: from then on the client
    reads an EOF (no close frame) and its writes fail; the server reads an EOF and its writes fail."""

    def __init__(self, inner: trio.StapledStream[trio.testing.MemorySendStream, trio.testing.MemoryReceiveStream]):
        self._inner = inner
        self.cut = False

    def drop(self) -> None:
        self.cut = True
        self._inner.send_stream.close()
        self._inner.receive_stream.close()  # wakes a pending read of ours (ClosedResourceError: an EOF here)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.cut:
            await trio.lowlevel.checkpoint()
            raise trio.BrokenResourceError("the connection was cut")
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if not self.cut:
            try:
                return await self._inner.receive_some(max_bytes)
            except trio.ClosedResourceError:
                if not self.cut:
                    raise
        await trio.lowlevel.checkpoint()
        return b""

    async def aclose(self) -> None:
        await self._inner.aclose()


class CuttableNetwork(MemoryNetwork):
    """The in-memory network, keeping every client stream so the test can cut the live one."""

    def __init__(self, server: LocalServer, nursery: trio.Nursery) -> None:
        super().__init__(server, nursery)
        self.streams: list[CutStream] = []

    async def open_stream(self, host: str, port: int) -> trio.abc.Stream:
        inner = await super().open_stream(host, port)
        assert isinstance(inner, trio.StapledStream)
        stream = CutStream(inner)
        self.streams.append(stream)
        return stream

    def drop(self) -> bool:
        """Cut the newest connection, if it is not cut yet; whether one was cut."""
        if not self.streams or self.streams[-1].cut:
            return False
        self.streams[-1].drop()
        return True


@dataclass(frozen=True)
class Schedule:
    inputs: tuple[tuple[float, str], ...]
    drops: tuple[float, ...]
    close_at: float | None
    cancel: bool


schedules = st.builds(
    Schedule,
    inputs=st.lists(st.tuples(times, st.sampled_from(["text", "audio", "tool"])), max_size=25).map(
        lambda xs: tuple(sorted(xs))
    ),
    drops=st.lists(times, max_size=3).map(lambda xs: tuple(sorted(xs))),
    close_at=st.none() | times,
    cancel=st.booleans(),
)


@dataclass
class Outcome:
    events: list[ConversationEvent] = field(default_factory=list)
    queued: dict[str, list[str]] = field(default_factory=lambda: {"text": [], "audio": [], "tool": []})
    sockets: list[list[dict[str, object]]] = field(default_factory=list)
    stats: rtengine.ConversationStats | None = None
    leftover: list[str] = field(default_factory=list)
    started: bool = False
    cuts: int = 0
    closing_index: int | None = None


def received(frames: list[dict[str, object]]) -> dict[str, list[str]]:
    """The inputs in client frames, per kind, in order."""
    got: dict[str, list[str]] = {"text": [], "audio": [], "tool": []}
    for frame in frames:
        if frame.get("type") == "input_audio_buffer.append":
            got["audio"].extend(split_audio(str(frame["audio"]), 2))  # frames that waited together: one append
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
    options = ServerOptions(api_key=KEY, delta_interval=0.0)
    async with open_peer_service() as peers, open_local_server(options, peers=peers) as server:
        async with trio.open_nursery() as net_nursery:
            net = CuttableNetwork(server, net_nursery)
            client = rtengine.RealtimeClient(
                server.base_url,
                api_key=KEY,
                http_client=net.http,
                open_stream=net.open_stream,
                backoff_base=0.2,
                close_timeout=1.0,
                rand=random.Random(0).random,
            )
            await converse(s, out, client, net, start)
            directs = [c for c in server.record.directs() if c.accepted]
            out.sockets = [list(c.frames_in) for c in directs]
            net_nursery.cancel_scope.cancel()
        await net.http.aclose()


async def converse(
    s: Schedule, out: Outcome, client: rtengine.RealtimeClient, net: CuttableNetwork, start: float
) -> None:
    box: list[rtengine.Conversation] = []
    with trio.CancelScope() as outer:
        if s.cancel and s.close_at is not None:
            outer.deadline = start + s.close_at
        async with rtengine.open_conversation(
            client, rtengine.SessionConfig(), reconnect=True, rotate_margin=None
        ) as conv:
            box.append(conv)
            out.started = True

            async def consume() -> None:
                async for item in conv.events:
                    out.events.append(item)

            async def drop_later() -> None:
                for at in s.drops:
                    await trio.sleep_until(start + at)
                    out.cuts += net.drop()

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
                await trio.sleep_until(start + 5.0)  # past the last input and drop: every reconnect done
                await conv.close()
    if box:
        async for item in box[0].events:  # what an outer cancellation kept the consumer from reading
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
    dropped = [e for e in events if isinstance(e, ConnectionDropped)]
    restored = [e for e in events if isinstance(e, SessionRestored)]
    assert len(dropped) <= out.cuts
    assert len(restored) <= len(dropped) <= len(restored) + 1  # the last may be cut short by the caller's end
    assert len(out.sockets) == len(restored) + 1
    assert all(frames[0]["type"] == "session.update" for frames in out.sockets)
    per_socket = [received(frames) for frames in out.sockets]
    texts = per_socket[-1]["text"]
    assert len(set(texts)) == len(texts), "a text twice in the last session"
    assert is_subsequence(texts, out.queued["text"]), "texts reordered"
    for before, after in itertools.pairwise(per_socket):
        assert after["text"][: len(before["text"])] == before["text"]  # the replay: the conversation so far
    for kind in ("audio", "tool"):
        got = [x for socket in per_socket for x in socket[kind]]
        assert len(set(got)) == len(got), f"{kind} delivered twice"
        assert is_subsequence(got, out.queued[kind]), kind
    written = stats.texts_sent + stats.tool_outputs_sent + stats.audio_frames_sent
    unsent = stats.texts_discarded + stats.tool_items_discarded + stats.audio_frames_discarded
    assert sum(map(len, out.queued.values())) == written + unsent + stats.inputs_lost + stats.inputs_interrupted
    if s.close_at is None:
        assert texts == out.queued["text"]  # every text, in order, once, in the session the caller ended with
        if out.cuts == 0:
            assert [x for socket in per_socket for x in socket["audio"]] == out.queued["audio"]
            assert [x for socket in per_socket for x in socket["tool"]] == out.queued["tool"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules)
def test_reconnect_loses_duplicates_and_reorders_no_text(s: Schedule) -> None:
    out = Outcome()
    trio.run(scenario, s, out, clock=trio.testing.MockClock(autojump_threshold=0))
    check(s, out)
    event(f"cuts: {out.cuts}")
    event(f"sessions: {len(out.sockets)}")


def test_reconnect_with_a_steady_stream_of_inputs_and_three_drops() -> None:
    """An explicit example: an input of each kind every 0.05 s for 3 s, the connection cut three times."""
    inputs = tuple((round(i * 0.05, 3), ("text", "audio", "tool")[i % 3]) for i in range(60))
    out = Outcome()
    s = Schedule(inputs, (0.512, 1.337, 2.2), None, False)
    trio.run(scenario, s, out, clock=trio.testing.MockClock(autojump_threshold=0))
    check(s, out)
    assert out.cuts == 3
    assert len(out.sockets) == 4
