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

import random
from dataclasses import dataclass, field

import schedule_harness as harness
import trio
import trio.testing
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from memnet import MemoryNetwork

import rtengine
from rtengine.events import ConnectionDropped, SessionRestored
from rtengine.server import LocalServer, ServerOptions

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
    inputs=harness.timed_inputs(times),
    drops=st.lists(times, max_size=3).map(lambda xs: tuple(sorted(xs))),
    close_at=st.none() | times,
    cancel=st.booleans(),
)


@dataclass
class Outcome(harness.Run):
    sockets: list[list[dict[str, object]]] = field(default_factory=list)
    cuts: int = 0


async def scenario(s: Schedule, out: Outcome) -> None:
    start = trio.current_time()
    options = ServerOptions(api_key=KEY, delta_interval=0.0)
    async with harness.memnet_client(
        options, network=CuttableNetwork, backoff_base=0.2, close_timeout=1.0, rand=random.Random(0).random
    ) as on:
        assert isinstance(on.net, CuttableNetwork)
        await converse(s, out, on.client, on.net, start)
        directs = [c for c in on.server.record.directs() if c.accepted]
        out.sockets = [list(c.frames_in) for c in directs]


async def converse(
    s: Schedule, out: Outcome, client: rtengine.RealtimeClient, net: CuttableNetwork, start: float
) -> None:
    async def drop_later() -> None:
        for at in s.drops:
            await trio.sleep_until(start + at)
            out.cuts += net.drop()

    body = harness.feed_then_close(s.inputs, out.queued, start, 5.0)  # past the last input and drop: all reconnected

    await harness.run_on_schedule(
        client, out, start, s.close_at, s.cancel, body, also=drop_later, reconnect=True, rotate_margin=None
    )


def check(s: Schedule, out: Outcome) -> None:
    stats = harness.ended_as_requested(out)
    if stats is None:
        return
    dropped = [e for e in out.events if isinstance(e, ConnectionDropped)]
    restored = [e for e in out.events if isinstance(e, SessionRestored)]
    assert len(dropped) <= out.cuts
    assert len(restored) <= len(dropped) <= len(restored) + 1  # the last may be cut short by the caller's end
    assert len(out.sockets) == len(restored) + 1
    per_socket = harness.websocket_sessions(out.sockets, out.queued)
    texts = per_socket[-1]["text"]
    harness.assert_accounted(stats, out.queued, expired=False)
    if s.close_at is None:
        assert texts == out.queued["text"]  # every text, in order, once, in the session the caller ended with
        if out.cuts == 0:
            assert [x for socket in per_socket for x in socket["audio"]] == out.queued["audio"]
            assert [x for socket in per_socket for x in socket["tool"]] == out.queued["tool"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules)
def test_reconnect_loses_duplicates_and_reorders_no_text(s: Schedule) -> None:
    out = Outcome()
    harness.examine(scenario, check, s, out)
    event(f"cuts: {out.cuts}")
    event(f"sessions: {len(out.sockets)}")


def test_reconnect_with_a_steady_stream_of_inputs_and_three_drops() -> None:
    """An explicit example: an input of each kind every 0.05 s for 3 s, the connection cut three times."""
    inputs = tuple((round(i * 0.05, 3), ("text", "audio", "tool")[i % 3]) for i in range(60))
    out = Outcome()
    s = Schedule(inputs, (0.512, 1.337, 2.2), None, False)
    harness.run_virtual(scenario, s, out)
    check(s, out)
    assert out.cuts == 3
    assert len(out.sockets) == 4
