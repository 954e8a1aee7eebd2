"""What one server event costs the engine in scheduler passes (the CPU of a paced stream is mostly these): a
caller waiting on ``conv.events`` gets the event it was woken for in the same step, and a websocket conversation
reading one audio delta per read takes one step of its reader and one of the caller's per event — as a bare
trio-websocket client does (its reader's step and the caller's)."""

import base64
import json

import pytest
import trio
import trio.testing
import wsproto.events as wse
from engine_helpers import ENGINE_TASK_MARKERS
from loopback import serving_raw
from ws_peer import TaskSteps, WsPeer

import rtengine
from rtengine import ConversationStats
from rtengine.engine._outlet import Outlet
from rtengine.events import AudioOut, ResponseDone, Started, UnknownEvent

DELTAS = 30
AUDIO = base64.b64encode(bytes(960)).decode()


async def test_a_waiting_caller_takes_its_event_in_the_step_it_is_woken() -> None:
    """Ten events offered one at a time to a caller parked in ``receive``: it wakes ten times and each time takes
    the event at once (no second trip through the scheduler); every event arrives once, in order."""
    outlet = Outlet(8, ConversationStats())
    got: list[object] = []
    steps = TaskSteps()

    async def caller() -> None:
        steps.tasks.add(trio.lowlevel.current_task())
        async for event in outlet.stream:
            got.append(event)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller)
            await trio.testing.wait_all_tasks_blocked()
            trio.lowlevel.add_instrument(steps)
            for n in range(10):
                assert outlet.offer(UnknownEvent(f"e{n}", {}))
                await trio.testing.wait_all_tasks_blocked()  # the caller took it and waits again
            outlet.finish(None)
    assert got == [UnknownEvent(f"e{n}", {}) for n in range(10)]
    assert steps.steps == 11  # one per event (was two: a checkpoint after the wait), one for the end


async def test_a_caller_cancelled_while_waiting_takes_nothing() -> None:
    outlet = Outlet(8, ConversationStats())
    with trio.fail_after(10):
        with trio.move_on_after(0.01) as waited:
            await outlet.stream.receive()
        assert waited.cancelled_caught
        outlet.put_now(Started("websocket"))
        assert await outlet.stream.receive() == Started("websocket")


async def test_a_waiting_caller_learns_the_end_and_the_close() -> None:
    """Woken by the end of the stream: ``EndOfChannel``; by ``aclose()`` from another task: ``ClosedResourceError``."""
    with trio.fail_after(10):
        for end in ("finish", "aclose"):
            outlet = Outlet(8, ConversationStats())
            async with trio.open_nursery() as nursery:

                async def ender(outlet: Outlet = outlet, end: str = end) -> None:
                    await trio.testing.wait_all_tasks_blocked()
                    if end == "finish":
                        outlet.finish(None)
                    else:
                        await outlet.stream.aclose()

                nursery.start_soon(ender)
                expected = trio.EndOfChannel if end == "finish" else trio.ClosedResourceError
                with pytest.raises(expected):
                    await outlet.stream.receive()


async def test_one_delta_per_read_costs_one_reader_step_and_one_caller_step() -> None:
    """A websocket conversation against a raw server that writes one audio delta at a time (the next once the
    caller has the last): the engine's tasks and the caller's each take one step per delta, plus a few for the
    start and the end of the stream."""
    seen = [trio.Event() for _ in range(DELTAS)]

    async def handler(stream: trio.SocketStream) -> None:
        peer = WsPeer(stream)
        await peer.accept()
        await peer.next_event()  # session.update
        for n in range(DELTAS):
            delta = {"type": "response.output_audio.delta", "event_id": f"ev_{n}", "response_id": "resp_1",
                     "item_id": "item_1", "output_index": 0, "content_index": 0, "delta": AUDIO}  # fmt: skip
            await peer.send(wse.TextMessage(data=json.dumps(delta)))
            await seen[n].wait()
        done = {"type": "response.done", "event_id": "ev_done", "response": {"id": "resp_1", "status": "completed"}}
        await peer.send(wse.TextMessage(data=json.dumps(done)))
        await peer.until_close()

    steps: dict[trio.lowlevel.Task, int] = {}

    class Census(trio.abc.Instrument):
        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            steps[task] = steps.get(task, 0) + 1

    census = Census()
    audio = 0
    with trio.fail_after(10):
        async with serving_raw(handler, close=True) as port:
            base = f"http://127.0.0.1:{port}/v1"
            async with (
                rtengine.RealtimeClient(base, api_key="sk-test") as client,
                rtengine.open_conversation(client, rtengine.SessionConfig()) as conv,
            ):
                me = trio.lowlevel.current_task()
                async for event in conv.events:
                    if isinstance(event, AudioOut):
                        if audio == 0:
                            trio.lowlevel.add_instrument(census)
                        seen[audio].set()
                        audio += 1
                    elif isinstance(event, ResponseDone):
                        trio.lowlevel.remove_instrument(census)
                        break
    assert audio == DELTAS
    engine = sum(n for task, n in steps.items() if any(m in task.name for m in ENGINE_TASK_MARKERS))
    assert steps[me] <= DELTAS + 2, (engine, steps[me])  # was two per delta
    assert engine <= DELTAS + 2, (engine, steps[me])
