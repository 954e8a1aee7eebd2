"""The audio barrier of the input buffers: a command about the input audio buffer (``commit_audio``, ``clear_audio``,
a raw ``input_audio_buffer.*`` event) leaves the control FIFO only once the audio queued before it was handled,
and nothing in the FIFO overtakes it. A hypothesis property drives a control pump and a slow audio pump over any
interleaving of inputs (a fresh ``trio.run`` per example on a virtual clock)."""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from rtengine import ConversationStats
from rtengine.engine._inputs import Inputs
from rtengine.protocol import Command, SendText
from rtengine.protocol._commands import AudioBuffer, audio_barrier, client_event


def _inputs() -> Inputs:
    return Inputs(text=64, tools=64, audio=256, stats=ConversationStats())


async def test_a_commit_waits_for_the_audio_queued_before_it() -> None:
    inputs = _inputs()
    for _ in range(3):
        assert inputs.put_audio(b"\0" * 960)
    await inputs.put(AudioBuffer("commit"))
    with trio.move_on_after(1) as waited:
        await inputs.next_command()
    assert waited.cancelled_caught  # three frames not yet handled: the commit stays queued
    frames = await inputs.next_audio()
    assert len(frames) == 3  # the frames that waited together go out in one append
    inputs.audio_handled(len(frames))
    with trio.fail_after(1):
        assert await inputs.next_command() == AudioBuffer("commit")


async def test_audio_dropped_for_its_age_releases_the_commit_behind_it(autojump_clock: trio.testing.MockClock) -> None:
    inputs = Inputs(text=64, tools=64, audio=256, stats=ConversationStats(), max_audio_age=0.5)
    for _ in range(3):
        assert inputs.put_audio(b"\0" * 960)
    await inputs.put(AudioBuffer("commit"))
    await trio.sleep(1)  # the three frames are too old now: the audio pump will drop them, never write them
    async with trio.open_nursery() as nursery:
        nursery.start_soon(inputs.next_audio)  # drops the stale frames, then waits for fresh ones
        with trio.fail_after(1):
            assert await inputs.next_command() == AudioBuffer("commit")
        nursery.cancel_scope.cancel()


STEP = st.sampled_from(["audio", "text", "commit", "raw_clear", "raw_other"])


@settings(max_examples=60, deadline=None)
@given(st.lists(STEP, max_size=30), st.integers(0, 3))
def test_no_buffer_command_overtakes_its_audio_and_the_fifo_keeps_its_order(steps: list[str], lag: int) -> None:
    log: list[tuple[str, int]] = []  # what a socket would see: ("audio", n) written, ("control", index) taken

    async def scenario() -> None:
        inputs = _inputs()
        expected: list[tuple[int, int]] = []  # per control command: its index and the frames queued before it
        commands: list[Command] = []
        queued = 0
        async with trio.open_nursery() as nursery:

            async def audio_pump() -> None:
                written = 0
                while True:
                    frames = await inputs.next_audio()  # every frame waiting: one append
                    await trio.sleep(0.001 * lag)  # a slow socket
                    written += len(frames)
                    log.append(("audio", written))
                    inputs.audio_handled(len(frames))

            async def control_pump() -> None:
                for index in range(len(expected)):
                    command = await inputs.next_command()
                    log.append(("control", index))
                    assert command is commands[index]  # FIFO: the very object queued at this place

            for step in steps:
                if step == "audio":
                    assert inputs.put_audio(b"\0" * 480)
                    queued += 1
                    continue
                made: dict[str, Command] = {
                    "text": SendText(str(len(expected))),
                    "commit": AudioBuffer("commit"),
                    "raw_clear": client_event({"type": "input_audio_buffer.clear"}),
                    "raw_other": client_event({"type": "conversation.item.delete", "item_id": "i"}),
                }
                command = made[step]
                expected.append((len(expected), queued if audio_barrier(command) else 0))
                commands.append(command)
                await inputs.put(command)
            nursery.start_soon(audio_pump)
            with trio.fail_after(60):
                await control_pump()
            nursery.cancel_scope.cancel()
        for index, frames in expected:
            position = [i for i, entry in enumerate(log) if entry[0] == "control"][index]
            written = max([n for kind, n in log[:position] if kind == "audio"], default=0)
            assert written >= frames, f"control {index} taken after {written} of the {frames} frames before it"

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
