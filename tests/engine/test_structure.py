"""Regression tests for the engine's structural guarantees (issue #9), each pinned with fake seams and gates on the
autojump clock: the exact interleaving the old flag-based engine got wrong."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from engine_fakes import OFFER, FakeCalls, FakeEndpoint, FakeSocket, FakeSockets

import rtengine
from rtengine.engine import start_conversation
from rtengine.events import Closed, Error, Started
from rtengine.protocol import SocketEnd

SESSION = rtengine.SessionConfig(instructions="Be brief.")


def _types(sock: FakeSocket) -> list[str]:
    return [json.loads(text)["type"] for text in sock.log]


def _drain_now(conv: rtengine.Conversation) -> list[object]:
    events: list[object] = []
    while True:
        try:
            events.append(conv.events.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return events


async def test_close_while_a_failed_join_unwinds_opens_nothing_more(autojump_clock: trio.abc.Clock) -> None:
    """Defect 1: the join attempt fails after its handshake and close() runs while it unwinds (its stream close is
    a schedule point). No new connection after close() began, no Error, close() prompt."""
    gate = trio.Event()
    sockets = FakeSockets(make=lambda _n: FakeSocket(fail_sends=True), exit_gate=gate)
    endpoint = FakeEndpoint(sockets=sockets)
    async with rtengine.open_conversation(endpoint, SESSION, offer_sdp=OFFER) as conv:  # type: ignore[arg-type]
        await conv.send_text("queued")
        await trio.testing.wait_all_tasks_blocked()
        assert len(sockets.opened) == 1  # the attempt failed its session.update and parks in its exit
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conv.close)
            await trio.testing.wait_all_tasks_blocked()
            gate.set()
        took = trio.current_time() - start
    events = _drain_now(conv)
    assert len(sockets.opened) == 1
    assert len(sockets.open_times) == 1
    assert events == [Started("webrtc", conv.call_id), Closed("requested")]
    assert took < 0.01
    assert conv.stats.texts_discarded == 1


async def test_a_failing_task_ends_with_error_not_an_exception(autojump_clock: trio.abc.Clock) -> None:
    """Defect 3: a RealtimeError inside a task is one Error then Closed("error"), and does not escape the block."""

    def make(_n: int) -> FakeSocket:
        sock = FakeSocket()
        sock.push(b"\x00binary is reported, not fatal")
        sock.push(SocketEnd(clean=False, detail="reset by peer"))
        return sock

    endpoint = FakeEndpoint(sockets=FakeSockets(make=make), sideband_rejoin_attempts=0)  # re-attach off
    async with rtengine.open_conversation(endpoint, SESSION, offer_sdp=OFFER) as conv:  # type: ignore[arg-type]
        events = [event async for event in conv.events]
    assert [type(e) for e in events] == [Started, Error, Error, Closed]
    assert events[1] == Error(events[1].message, "unexpected_binary_frame", fatal=False)  # type: ignore[union-attr]
    assert events[2] == Error("realtime connection lost: reset by peer", "connection_lost")
    assert events[3] == Closed("error")


async def test_a_bug_in_a_task_is_reported_then_raised_as_itself(autojump_clock: trio.abc.Clock) -> None:
    class Broken(FakeSocket):
        async def receive(self) -> str | bytes | SocketEnd:
            raise RuntimeError("a bug")

    endpoint = FakeEndpoint(sockets=FakeSockets(make=lambda _n: Broken()))
    seen: list[object] = []
    with pytest.raises(RuntimeError, match="a bug"):
        async with rtengine.open_conversation(endpoint, SESSION, offer_sdp=OFFER) as conv:  # type: ignore[arg-type]
            await trio.sleep(1)  # the bug cancels the block, as a crashing child of a nursery does
    seen.extend(_drain_now(conv))
    assert [type(e) for e in seen] == [Started, Error, Closed]
    assert seen[1].code == "internal_error"  # type: ignore[attr-defined]
    assert seen[2] == Closed("error")


@asynccontextmanager
async def _closed_while_starting(endpoint: FakeEndpoint, after: float) -> AsyncIterator[list[BaseException]]:
    """A manager on ``endpoint`` whose ``start`` (inline sideband) is under way when ``close()`` is called, ``after``
    seconds in; the block runs once ``close()`` returned (nothing current), still inside the manager, and gets what
    ``start`` raised."""
    outcome: list[BaseException] = []
    async with rtengine.open_manager(endpoint) as manager:  # type: ignore[arg-type]

        async def start() -> None:
            try:
                await manager.start(SESSION, OFFER, sideband="inline")
            except rtengine.ConversationNotRunning as exc:
                outcome.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(start)
            await trio.sleep(after)
            await manager.close()
        assert manager.current is None
        yield outcome


async def test_manager_close_during_a_start_wins(autojump_clock: trio.abc.Clock) -> None:
    """Defect 4: close() during an in-flight start cancels it; start() raises ConversationNotRunning, the call it
    created is hung up, nothing is left running."""
    sockets = FakeSockets()
    endpoint = FakeEndpoint(sockets=sockets, calls=FakeCalls(delay=1.0))
    async with _closed_while_starting(endpoint, 0.5) as outcome:  # at 0.5 s the POST is in flight
        pass
    assert len(outcome) == 1
    assert sockets.opened == []


async def test_manager_close_during_an_inline_join_hangs_up_the_call(autojump_clock: trio.abc.Clock) -> None:
    sockets = FakeSockets(refuse=100)  # the inline join keeps failing and retrying
    endpoint = FakeEndpoint(sockets=sockets, sideband_retries=50, backoff_base=1.0)
    async with _closed_while_starting(endpoint, 3) as outcome:  # at 3 s the call exists; the join is retrying
        opens = len(sockets.open_times)
        await trio.sleep(10)
        assert len(sockets.open_times) == opens  # nothing retries after close()
    assert len(outcome) == 1
    assert endpoint.calls.hangups == ["rtc_fake1"]


async def test_cancelling_the_owning_nursery_ends_like_close(autojump_clock: trio.abc.Clock) -> None:
    """Defect 5: start_conversation's nursery cancelled → Closed("requested"), inactive, sends raise."""
    endpoint = FakeEndpoint()
    async with trio.open_nursery() as nursery:
        conv = await start_conversation(endpoint, SESSION, nursery, OFFER)  # type: ignore[arg-type]
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert not conv.active
    assert _drain_now(conv)[-1] == Closed("requested")
    with pytest.raises(rtengine.ConversationNotRunning):
        await conv.send_text("too late")
    assert endpoint.calls.hangups == [conv.call_id]


async def test_inputs_never_sent_are_counted(autojump_clock: trio.abc.Clock) -> None:
    """Defect 8: inputs accepted and still buffered at the end are counted per kind."""
    endpoint = FakeEndpoint(sockets=FakeSockets(refuse=100), sideband_retries=50, backoff_base=1.0)
    async with rtengine.open_conversation(endpoint, SESSION, offer_sdp=OFFER) as conv:  # type: ignore[arg-type]
        for n in range(60):
            await conv.send_text(f"text {n}")
        await conv.request_response()
        await conv.send_tool_output("call_1", "{}")
        for _ in range(5):
            conv.send_audio(b"\x00\x00" * 480)
    stats = conv.stats
    assert (stats.texts_discarded, stats.tool_items_discarded, stats.audio_frames_discarded) == (60, 2, 5)
    assert stats.texts_sent == 0


async def test_closing_the_events_channel_never_stalls_the_engine(autojump_clock: trio.abc.Clock) -> None:
    """Defect 9: conv.events.aclose() means "not listening": events are dropped and counted, owed creates go out."""
    sock = FakeSocket()
    endpoint = FakeEndpoint(sockets=FakeSockets(make=lambda _n: sock))
    async with rtengine.open_conversation(endpoint, SESSION, offer_sdp=OFFER) as conv:  # type: ignore[arg-type]
        await conv.events.aclose()
        for n in range(300):
            sock.push(json.dumps({"type": "rtengine.filler", "n": n}))
        await conv.request_response()
        await conv.request_response()  # owed: goes out after the first response ends
        await trio.testing.wait_all_tasks_blocked()
        sock.push(json.dumps({"type": "response.created", "response": {"id": "resp_1"}}))
        sock.push(json.dumps({"type": "response.done", "response": {"id": "resp_1", "status": "completed"}}))
        await trio.testing.wait_all_tasks_blocked()
        assert _types(sock).count("response.create") == 2
        assert conv.active
    assert conv.stats.events_dropped >= 300


async def test_a_slow_reader_still_gets_started_first(autojump_clock: trio.abc.Clock) -> None:
    """Defect 10: the end never drops Started (the final events have reserved room)."""
    sock = FakeSocket()
    endpoint = FakeEndpoint(sockets=FakeSockets(make=lambda _n: sock))
    capacities = rtengine.Capacities(events=3)
    async with rtengine.open_conversation(endpoint, SESSION, offer_sdp=OFFER, capacities=capacities) as conv:  # type: ignore[arg-type]
        for n in range(10):
            sock.push(json.dumps({"type": "rtengine.filler", "n": n}))
        await trio.sleep(1)  # nobody reads: the buffer is full, the reader waits (backpressure)
    events = _drain_now(conv)
    assert isinstance(events[0], Started)
    assert len(events) == 4  # Started, two fillers, Closed in its reserved slot
    assert events[-1] == Closed("requested")
    assert conv.stats.events_dropped == 1  # the filler the reader held when the end came


async def test_every_close_returns_after_closed_is_delivered(autojump_clock: trio.abc.Clock) -> None:
    """Defect 11: of two concurrent close() calls, neither returns before Closed is in events."""
    endpoint = FakeEndpoint()
    seen: list[bool] = []
    async with rtengine.open_conversation(endpoint, SESSION, offer_sdp=OFFER) as conv:  # type: ignore[arg-type]
        await trio.sleep(1)

        async def closer() -> None:
            await conv.close()
            seen.append(conv.events.pending() > 0 and conv._outlet.finished)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(closer)
    assert seen == [True, True, True]


async def test_the_block_exception_comes_out_exactly_as_raised(autojump_clock: trio.abc.Clock) -> None:
    """Defect 12: no rewritten __context__, no unwrapped app group."""
    endpoint = FakeEndpoint()
    original = ValueError("the app's")

    async def body() -> None:
        async with rtengine.open_conversation(endpoint, SESSION, offer_sdp=OFFER):  # type: ignore[arg-type]
            try:
                raise KeyError("context")
            except KeyError:
                raise original from None

    with pytest.raises(ValueError, match="the app's") as info:
        await body()
    assert info.value is original
    assert info.value.__suppress_context__
    assert isinstance(info.value.__context__, KeyError)

    group = ExceptionGroup("the app's own group", [KeyError("one")])

    async def group_body() -> None:
        async with rtengine.open_conversation(endpoint, SESSION, offer_sdp=OFFER):  # type: ignore[arg-type]
            raise group

    with pytest.raises(ExceptionGroup) as caught:
        await group_body()
    assert caught.value is group


@pytest.mark.parametrize("hangup", [True, False])
async def test_a_created_call_is_hung_up_when_the_conversation_ends(
    autojump_clock: trio.abc.Clock, hangup: bool
) -> None:
    """Defect 13: every end hangs the call up, unless hangup=False."""
    endpoint = FakeEndpoint()
    async with rtengine.open_conversation(endpoint, SESSION, offer_sdp=OFFER, hangup=hangup) as conv:  # type: ignore[arg-type]
        await trio.sleep(1)
    assert endpoint.calls.hangups == ([conv.call_id] if hangup else [])
    assert conv.stats.hangups == (1 if hangup else 0)


@pytest.mark.parametrize("offer", [OFFER, None])
async def test_a_start_into_a_closed_nursery_leaves_no_call(autojump_clock: trio.abc.Clock, offer: str | None) -> None:
    """Review finding: the call was created, the task could not start, and the call was never hung up."""
    endpoint = FakeEndpoint()
    async with trio.open_nursery() as nursery:
        pass
    with pytest.raises(rtengine.ConversationNotRunning):
        await start_conversation(endpoint, SESSION, nursery, offer)  # type: ignore[arg-type]
    assert endpoint.calls.hangups == (["rtc_fake1"] if offer else [])
    async with rtengine.open_manager(endpoint) as manager:  # type: ignore[arg-type]
        pass
    with pytest.raises(rtengine.ConversationNotRunning):
        await manager.start(SESSION, offer)


async def test_every_accepted_input_is_accounted_for(autojump_clock: trio.abc.Clock) -> None:
    """Review finding: an audio frame taken off the buffer and cancelled mid-send, and a deferred response.create
    still owed at the end, were counted nowhere."""
    gate = trio.Event()
    sock = FakeSocket()
    endpoint = FakeEndpoint(sockets=FakeSockets(make=lambda _n: sock))
    async with rtengine.open_conversation(endpoint, SESSION, offer_sdp=OFFER) as conv:  # type: ignore[arg-type]
        await trio.sleep(1)  # joined
        await conv.request_response()
        await conv.request_response()  # deferred: the first is still active (no response.done ever comes)
        await trio.sleep(1)
        sock.send_gate = gate  # writes now hang: the pumps hold what they took
        for _ in range(20):
            conv.send_audio(b"\x00\x00" * 480)
        await trio.sleep(1)
    stats = conv.stats
    assert stats.audio_frames_queued == stats.audio_frames_sent + stats.audio_frames_discarded + stats.inputs_lost
    assert stats.inputs_lost == 20  # the 20 frames waited together: one append, cut mid-send, counted per frame
    assert stats.audio_frames_expired == 0  # taken at once: none waited past the age bound
    assert stats.responses_requested == 1
    assert stats.tool_items_discarded == 1  # the owed create
