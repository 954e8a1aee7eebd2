"""SIP conversations on the fake seams: accept inline, then the sideband in the background (the WebRTC runner)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing
from engine_fakes import FakeCalls, FakeEndpoint, FakeSocket, FakeSockets
from engine_helpers import drain, ends
from sip_helpers import placed_call

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import Closed, DtmfReceived, Error, SessionUpdated, Started
from rtengine.server import Faults, SipScript

SESSION = rtengine.SessionConfig(instructions="You answer the phone.")
CALL = "rtc_u1_9c6574da8b8a41a18da9308f4ad974ce"
UPDATED = json.dumps({"type": "session.updated", "session": {"id": "sess_1"}})


def _open(endpoint: FakeEndpoint, offer_sdp: str | None = None, **options: Any) -> Any:
    return rtengine.open_conversation(endpoint, SESSION, offer_sdp, **options)  # type: ignore[arg-type]


def _endpoint(*, accept_delay: float = 0.0, refuse: int = 0) -> FakeEndpoint:
    def make(_n: int) -> FakeSocket:
        sock = FakeSocket()
        sock.push(UPDATED)
        return sock

    return FakeEndpoint(calls=FakeCalls(delay=accept_delay), sockets=FakeSockets(make=make, refuse=refuse))


async def test_accept_inline_then_sideband_in_background_inputs_queue_in_order(
    autojump_clock: trio.abc.Clock,
) -> None:
    endpoint = _endpoint(accept_delay=0.2, refuse=2)  # the join needs two retries: it is well behind the accept
    with trio.fail_after(30):
        start = trio.current_time()
        async with _open(endpoint, accept_call_id=CALL) as conv:
            answered = trio.current_time() - start
            assert endpoint.calls.accepted == [CALL]
            assert (conv.transport, conv.call_id, conv.answer_sdp) == ("sip", CALL, None)
            assert endpoint.sockets.opened == []  # the block started before any join
            assert "answer" in conv.timeline
            for text in ("one", "two", "three"):
                await conv.send_text(text)
            first = await conv.events.receive()
            assert first == Started("sip", CALL)
            assert isinstance(await conv.events.receive(), SessionUpdated)
            await trio.testing.wait_all_tasks_blocked()  # the queued inputs went out
            joined = endpoint.sockets.open_times[-1] - start
        events = await drain(conv)
    assert answered == pytest.approx(0.2)
    assert joined > answered
    log = [json.loads(f) for f in endpoint.sockets.opened[0].log]
    assert log[0]["type"] == "session.update"
    texts = [f["item"]["content"][0]["text"] for f in log if f["type"] == "conversation.item.create"]
    assert texts == ["one", "two", "three"]
    assert ends(events) == [Closed("requested")]
    assert endpoint.calls.hangups == [CALL]
    assert endpoint.calls.created == 0


async def test_join_failure_is_one_error_then_closed(autojump_clock: trio.abc.Clock) -> None:
    endpoint = _endpoint(refuse=1000)
    with trio.fail_after(60):
        async with _open(endpoint, accept_call_id=CALL) as conv:
            events = await drain(conv)
            assert not conv.active
            with pytest.raises(rtengine.ConversationNotRunning):
                await conv.send_text("too late")
    assert events[0] == Started("sip", CALL)
    assert [type(e) for e in events[1:]] == [Error, Closed]
    assert events[-1] == Closed("error")
    assert endpoint.calls.hangups == [CALL]


async def test_close_during_the_join_and_hangup_false(autojump_clock: trio.abc.Clock) -> None:
    endpoint = _endpoint()
    endpoint.sockets.refuse = 1000
    with trio.fail_after(30):
        async with _open(endpoint, accept_call_id=CALL, hangup=False) as conv:
            await trio.sleep(0.05)  # the join is retrying
            await conv.close()
        events = await drain(conv)
    assert [type(e) for e in events] == [Started, Closed]
    assert events[-1] == Closed("requested")
    assert endpoint.calls.hangups == []  # hangup=False: the app hands the call on


async def test_refer_goes_to_the_accepted_call_and_not_after_the_end(autojump_clock: trio.abc.Clock) -> None:
    endpoint = _endpoint()
    with trio.fail_after(30):
        async with _open(endpoint, accept_call_id=CALL) as conv:
            await conv.refer("tel:+14155550123")
        with pytest.raises(rtengine.ConversationNotRunning):
            await conv.refer("tel:+14155550123")
    assert endpoint.calls.referred == [(CALL, "tel:+14155550123")]


async def test_bad_arguments_fail_before_any_request(autojump_clock: trio.abc.Clock) -> None:
    endpoint = _endpoint()
    with pytest.raises(rtengine.InvalidCallId):
        async with _open(endpoint, accept_call_id="rtc_x/../y"):
            pass
    with pytest.raises(rtengine.ConfigError):
        async with _open(endpoint, "v=0", accept_call_id=CALL):
            pass
    with pytest.raises(rtengine.ConfigError):
        _open(endpoint, accept_call_id=CALL, sideband="inline")
    assert endpoint.calls.accepted == []
    async with _open(endpoint, "v=0\r\nm=audio 9 x 0\r\n") as conv:
        with pytest.raises(rtengine.ConfigError, match="SIP calls only"):
            await conv.refer("tel:+1")


async def test_a_cancelled_accept_hangs_the_call_up(autojump_clock: trio.abc.Clock) -> None:
    endpoint = _endpoint(accept_delay=5.0)
    with trio.move_on_after(1.0):
        async with _open(endpoint, accept_call_id=CALL):
            pytest.fail("the accept was still running")
    assert endpoint.calls.hangups == [CALL]


async def test_accept_answers_before_a_delayed_sideband_against_the_local_server(peers: PeerService) -> None:
    script = SipScript(calls=0, speech_ms=0, dtmf="7", dtmf_delay=0.0)
    faults = Faults(sideband_accept_delay=0.8)
    async with placed_call(peers, script, faults=faults) as call:
        server, client, placed = call.server, call.client, call.call_id
        start = trio.current_time()
        async with rtengine.open_conversation(client, SESSION, accept_call_id=placed) as conv:
            answered = trio.current_time() - start
            assert server.sip.calls[placed].state == "accepted"
            await conv.send_text("queued before the join")
            events = [await conv.events.receive()]
            while not isinstance(events[-1], DtmfReceived):
                events.append(await conv.events.receive())
            joined = conv.timeline["sideband_joined"]
        frames = server.record.sidebands()[-1].types_in()
    assert answered < 0.5 <= 0.8 <= joined + 0.05
    assert events[0] == Started("sip", placed)
    assert isinstance(events[-1], DtmfReceived)
    assert events[-1].key == "7"
    assert frames[:2] == ["session.update", "conversation.item.create"]
    assert server.sip.calls[placed].end_reason == "BYE (app hung up)"
