"""Every buffer of a conversation is bounded in bytes as well as in count (issue #15, finding 6).

Counts alone let 256 frames of 16 MiB pile up; here each kind holds at most its byte bound, with the kind's own
policy when full — texts and tool items wait, audio is dropped, server events wait (backpressure onto the socket
reader) — and each is counted in the stats.
"""

import pytest
import trio
import trio.testing

import rtengine
from rtengine.engine._inputs import Inputs
from rtengine.engine._outlet import Outlet
from rtengine.events import Closed
from rtengine.protocol._brain import RequestResponse, SendText, SendToolOutput
from rtengine.protocol._lifecycle import ConversationStats, Started


def inputs(stats: ConversationStats, **bounds: int) -> Inputs:
    return Inputs(text=64, tools=64, audio=256, stats=stats, **bounds)


async def test_audio_beyond_its_byte_bound_is_dropped_and_counted() -> None:
    stats = ConversationStats()
    buffer = inputs(stats, audio_bytes=1000)
    assert buffer.put_audio(b"\0" * 400)
    assert buffer.put_audio(b"\0" * 400)
    assert not buffer.put_audio(b"\0" * 400)  # 1200 > 1000: the frame count (3 of 256) is not the limit
    assert (stats.audio_frames_dropped, stats.audio_bytes_dropped, stats.audio_frames_queued) == (1, 400, 2)
    assert [len(frame) for frame in await buffer.next_audio()] == [400, 400]  # the frames waiting, taken together
    assert buffer.put_audio(b"\0" * 400)  # room again


async def test_one_frame_larger_than_the_bound_passes_an_empty_buffer_only() -> None:
    stats = ConversationStats()
    buffer = inputs(stats, audio_bytes=1000)
    assert buffer.put_audio(b"\0" * 5000)
    assert not buffer.put_audio(b"\0" * 10)
    assert [len(frame) for frame in await buffer.next_audio()] == [5000]
    assert buffer.put_audio(b"\0" * 10)


@pytest.mark.parametrize("kind", ["text", "tool"])
async def test_texts_and_tool_outputs_wait_for_room_in_bytes(kind: str) -> None:
    stats = ConversationStats()
    buffer = inputs(stats, text_bytes=10, tool_bytes=10 + len("c1") * 2)

    def item(body: str) -> SendText | SendToolOutput:
        return SendText(body) if kind == "text" else SendToolOutput("c1", body)

    queued: list[str] = []
    async with trio.open_nursery() as nursery:
        await buffer.put(item("éééé"))  # 8 bytes of UTF-8 (4 characters)

        async def second() -> None:
            await buffer.put(item("abcd"))  # 8 + 4 > 10: waits
            queued.append("second")

        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        assert queued == []
        assert stats.input_waits == 1
        await buffer.put(RequestResponse()) if kind == "text" else None  # other kinds are not held up
        first = await buffer.next_command()
        assert first == item("éééé")
        await trio.testing.wait_all_tasks_blocked()
        assert queued == ["second"]


async def test_a_closed_buffer_wakes_a_sender_waiting_for_bytes() -> None:
    buffer = inputs(ConversationStats(), text_bytes=4)
    await buffer.put(SendText("abcd"))
    outcome: list[str] = []

    async def waiting_sender() -> None:
        try:
            await buffer.put(SendText("e"))
        except rtengine.ConversationNotRunning:
            outcome.append("not running")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiting_sender)
        await trio.testing.wait_all_tasks_blocked()
        buffer.close()
    assert outcome == ["not running"]


async def test_events_wait_for_the_reader_when_their_bytes_fill_the_buffer() -> None:
    stats = ConversationStats()
    outlet = Outlet(256, stats, max_bytes=100)
    delivered: list[int] = []
    async with trio.open_nursery() as nursery:

        async def server() -> None:
            for index in range(3):
                await outlet.forward(Started("websocket", f"s{index}"), 60)
                delivered.append(index)

        nursery.start_soon(server)
        await trio.testing.wait_all_tasks_blocked()
        assert delivered == [0]  # 60 + 60 > 100: the second waits, though 255 events would fit by count
        assert stats.event_waits == 1
        assert await outlet.stream.receive() == Started("websocket", "s0")
        await trio.testing.wait_all_tasks_blocked()
        assert delivered == [0, 1]
        await outlet.stream.receive()
    assert delivered == [0, 1, 2]


async def test_an_event_larger_than_the_bound_passes_an_empty_buffer_and_the_end_always_fits() -> None:
    stats = ConversationStats()
    outlet = Outlet(256, stats, max_bytes=100)
    with trio.fail_after(1):
        await outlet.forward(Started("webrtc", "big"), 5000)
    assert outlet.claim()
    outlet.finish(Closed("requested"))
    assert [event async for event in outlet.stream] == [Started("webrtc", "big"), Closed("requested")]


def test_the_byte_bounds_have_sane_defaults_and_refuse_zero() -> None:
    capacities = rtengine.Capacities()
    assert (capacities.text_bytes, capacities.tool_bytes) == (1 << 20, 4 << 20)
    assert (capacities.audio_bytes, capacities.events_bytes) == (1 << 20, 8 << 20)
    for field in ("text_bytes", "tool_bytes", "audio_bytes", "events_bytes"):
        with pytest.raises(rtengine.ConfigError, match="byte bound"):
            rtengine.Capacities(**{field: 0})
