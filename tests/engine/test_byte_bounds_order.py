"""Byte bounds keep the order of inputs (issue #15, finding 6, tried harder: many small inputs vs one huge one).

A text larger than the room left waits for the buffer to drain; texts sent after it used to slip past while it
waited (they fit), so the model got them first — and under a steady stream of small texts the huge one never went.
Each kind is first come, first served: a later input waits behind an earlier one that is waiting.
"""

import pytest
import trio
import trio.testing

from rtengine.engine._inputs import Inputs
from rtengine.protocol._brain import SendText, SendToolOutput
from rtengine.protocol._lifecycle import ConversationStats


def _item(kind: str, body: str) -> SendText | SendToolOutput:
    return SendText(body) if kind == "text" else SendToolOutput("c1", body)


def _body(command: object) -> str:
    assert isinstance(command, SendText | SendToolOutput)
    return command.text if isinstance(command, SendText) else command.output


@pytest.mark.parametrize("kind", ["text", "tool"])
async def test_a_huge_input_waiting_for_room_is_not_overtaken_by_small_ones(kind: str) -> None:
    buffer = Inputs(text=64, tools=64, audio=8, stats=ConversationStats(), text_bytes=1000, tool_bytes=1000)
    sent: list[str] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await buffer.put(_item(kind, "a" * 600))

            async def send(body: str) -> None:
                await buffer.put(_item(kind, body))
                sent.append(body[:1])

            nursery.start_soon(send, "H" * 5000)  # larger than the bound: waits for an empty buffer
            await trio.testing.wait_all_tasks_blocked()
            for small in "bcd":  # each would fit next to the 600 bytes held
                nursery.start_soon(send, small * 10)
                await trio.testing.wait_all_tasks_blocked()
            assert sent == []  # all wait behind the huge one
            taken = [_body(await buffer.next_command())[:1] for _ in range(5)]
    assert taken == ["a", "H", "b", "c", "d"]


async def test_a_cancelled_waiter_lets_the_next_one_in() -> None:
    buffer = Inputs(text=64, tools=64, audio=8, stats=ConversationStats(), text_bytes=1000)
    sent: list[str] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await buffer.put(SendText("a" * 600))
            waiting = trio.CancelScope()

            async def huge_sender() -> None:
                with waiting:
                    await buffer.put(SendText("H" * 5000))
                    sent.append("H")

            async def small_sender() -> None:
                await buffer.put(SendText("b" * 10))
                sent.append("b")

            nursery.start_soon(huge_sender)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(small_sender)
            await trio.testing.wait_all_tasks_blocked()
            assert sent == []
            waiting.cancel()  # the huge sender gives up: the small one, next in line, fits
            await trio.testing.wait_all_tasks_blocked()
            assert sent == ["b"]
            assert [_body(await buffer.next_command())[:1] for _ in range(2)] == ["a", "b"]
