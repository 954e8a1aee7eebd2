"""The events outlet under a reader that delivers whole reads at once (``Outlet.offer``, then ``forward`` when
full) and a caller that reads at its own pace: every event arrives once, in order, within the bounds, and neither
side waits forever."""

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from rtengine import ConversationStats
from rtengine.engine._outlet import Outlet
from rtengine.events import ConversationEvent, Started, UnknownEvent


def _event(n: int) -> UnknownEvent:
    return UnknownEvent(f"e{n}", {})


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(1, 8),
    max_bytes=st.integers(1, 64),
    reads=st.lists(st.lists(st.integers(0, 40), min_size=1, max_size=12), min_size=1, max_size=12),
    reader_pauses=st.lists(st.sampled_from([0, 0, 0, 0.001, 0.01]), min_size=1, max_size=20),
)
def test_batched_delivery_keeps_order_and_bounds(
    capacity: int, max_bytes: int, reads: list[list[int]], reader_pauses: list[float]
) -> None:
    stats = ConversationStats()
    outlet = Outlet(capacity, stats, max_bytes=max_bytes)
    sizes = [size for read in reads for size in read]
    got: list[ConversationEvent] = []
    highest = {"count": 0, "bytes": 0}

    async def reader() -> None:  # the socket reader: a read's events in one wake-up, waiting only when full
        n = 0
        for read in reads:
            await trio.sleep(0.001)  # the next read
            for size in read:
                event = _event(n)
                n += 1
                if not outlet.offer(event, size):
                    await outlet.forward(event, size)
                highest["count"] = max(highest["count"], outlet.stream.pending())
                highest["bytes"] = max(highest["bytes"], outlet._bytes)
        outlet.finish(None)

    async def caller() -> None:
        turn = 0
        async for event in outlet.stream:
            got.append(event)
            await trio.sleep(reader_pauses[turn % len(reader_pauses)])
            turn += 1

    async def main() -> None:
        with trio.fail_after(60):
            outlet.put_now(Started("websocket"))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                nursery.start_soon(caller)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert got[0] == Started("websocket")
    assert got[1:] == [_event(n) for n in range(len(sizes))]  # each once, in order
    assert stats.events_dropped == 0
    assert highest["count"] <= capacity + 1  # Started may sit in the buffer with a full capacity's worth
    # A bound in bytes holds except for one event larger than it, which passes when the buffer is empty.
    assert highest["bytes"] <= max(max_bytes, max(sizes))
