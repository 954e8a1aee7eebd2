"""Adversarial review of issue #14 (rev14), engine side: a caller whose ``conv.events`` waits are cancelled — by a
timeout, or in the very step the reader delivers the event it waits for — and who then resumes loses no event and
sees them in order, under backpressure; and text the wire cannot carry (a lone surrogate) is the caller's error
(finding 2, fixed)."""

import pytest
import trio
import trio.testing
from engine_helpers import client_for, serving
from hypothesis import given, settings
from hypothesis import strategies as st

import rtengine
from rtengine import ConversationStats
from rtengine.adapters._peer import PeerService
from rtengine.engine._outlet import Outlet
from rtengine.events import Closed, ConversationEvent, Error, Started, UnknownEvent


def _event(n: int) -> UnknownEvent:
    return UnknownEvent(f"e{n}", {})


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(1, 6),
    count=st.integers(1, 40),
    waits=st.lists(st.sampled_from([0.0001, 0.0005, 0.001, 0.002, 1.0]), min_size=1, max_size=16),
    racing=st.lists(st.booleans(), min_size=1, max_size=16),
)
def test_cancelled_waits_lose_nothing(capacity: int, count: int, waits: list[float], racing: list[bool]) -> None:
    outlet = Outlet(capacity, ConversationStats())
    got: list[ConversationEvent] = []
    scopes: list[trio.CancelScope] = []

    async def reader() -> None:
        for n in range(count):
            await trio.sleep(0.001)
            if not outlet.offer(_event(n)):
                await outlet.forward(_event(n))
            if racing[n % len(racing)] and scopes:
                scopes[-1].cancel()  # the caller is woken for this event and cancelled in the same step
        outlet.finish(None)

    async def caller() -> None:
        turn = 0
        while True:
            with trio.CancelScope(deadline=trio.current_time() + waits[turn % len(waits)]) as scope:
                scopes.append(scope)
                try:
                    got.append(await outlet.stream.receive())
                except trio.EndOfChannel:
                    return
            turn += 1

    async def canceller() -> None:  # cancels the caller's current wait at arbitrary schedule points
        step = 0
        while not outlet.finished:
            await trio.lowlevel.checkpoint()
            if racing[step % len(racing)] and scopes:
                scopes[-1].cancel()
            step += 1
            if step % 7 == 0:
                await trio.sleep(0.0003)

    async def main() -> None:
        with trio.fail_after(120):
            outlet.put_now(Started("websocket"))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                nursery.start_soon(caller)
                nursery.start_soon(canceller)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert got == [Started("websocket"), *(_event(n) for n in range(count))]


async def test_a_lone_surrogate_in_any_text_command_is_the_callers_error(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, rtengine.SessionConfig()) as conv:
                with pytest.raises(rtengine.ConfigError, match="lone surrogate"):
                    await conv.send_text("bad \ud800 text")
                with pytest.raises(rtengine.ConfigError, match="lone surrogate"):
                    await conv.send_tool_output("call_1", "\udfff")
                with pytest.raises(rtengine.ConfigError, match="lone surrogate"):
                    await conv.send_event({"type": "conversation.item.create", "note": "\ud800"})
                with pytest.raises(rtengine.ConfigError, match="lone surrogate"):
                    await conv.update_session(instructions="\ud800")
                await conv.send_text("fine")
                with trio.move_on_after(2):
                    async for event in conv.events:
                        assert not isinstance(event, Error | Closed), event
                assert conv.active
