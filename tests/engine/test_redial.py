"""Session-cap rotation of WebRTC calls against the local server's 5 s cap (real loopback: ICE, DTLS, RTP, websockets).

rtengine as the media peer re-dials before the cap: the same ``conv`` goes on across two rotations, audio flows both
ways on every call, the old calls are hung up, the history is replayed into each new call. A browser-held call
cannot be rotated from the server: the app is warned (``session_expiring``), then the cap ends it
(``Closed("session_expired")``). Real clock, under ``fail_after``.
"""

import itertools
from typing import Any, Literal

import pytest
import trio
from engine_helpers import client_for, drain, engine_tasks, serving, until
from rejoin_helpers import texts_created

import rtengine
from rtengine import webrtc
from rtengine.adapters._peer import PeerService
from rtengine.engine._media import MediaCall
from rtengine.events import Closed, Error, ResponseDone, SessionRotated, SessionUpdated
from rtengine.protocol._audio import dominant_frequency, rms
from rtengine.server import Faults

MEDIA_ONLY = rtengine.SessionConfig(turn_detection="disabled", instructions="redial")
CAP = "Your session hit the maximum duration of 0.08 minutes."


class Heard:
    """Frames the app received from ``conv.media.audio_out``, with their arrival times."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.loud: list[float] = []

    async def pull(self, media: MediaCall) -> None:
        async for pcm in media.audio_out:
            now = trio.current_time()
            self.times.append(now)
            if rms(pcm) > 0.02:
                self.loud.append(now)

    def longest_gap_around(self, at: float, window: float = 2.0) -> float:
        near = [t for t in self.times if at - window <= t <= at + window]
        return max((b - a for a, b in itertools.pairwise(near)), default=float("inf"))


async def test_a_media_peer_call_is_redialed_before_the_cap_twice_and_goes_on(
    engine: webrtc.MediaEngine,
) -> None:
    media = webrtc.Media(engine, source=webrtc.tone_source(300, seconds=30.0), connect_timeout=5)
    heard = Heard()
    rotations: list[tuple[float, SessionRotated]] = []
    events: list[Any] = []
    with trio.fail_after(40):
        async with (
            serving(engine, session_max_seconds=5.0, audio_ms=400, greeting_ms=0) as server,
            client_for(server) as client,
        ):
            async with rtengine.open_conversation(client, MEDIA_ONLY, media=media, rotate_margin=2.0) as conv:
                assert conv.media is not None
                same_media, first_call = conv.media, conv.call_id
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(heard.pull, conv.media)
                    events += await until(conv, SessionUpdated)
                    await conv.send_text("remember the word teal")
                    async for event in conv.events:
                        events.append(event)
                        if isinstance(event, SessionRotated):
                            rotations.append((trio.current_time(), event))
                            if len(rotations) == 2:
                                break
                    await conv.request_response()  # answered over RTP on the third call
                    events += await until(conv, ResponseDone)
                    await trio.sleep(1.0)
                    nursery.cancel_scope.cancel()
                assert conv.media is same_media
                final_call = conv.call_id
                timeline = dict(conv.timeline)
                stats = conv.stats
            events += await drain(conv)
            await server.record.wait_until(lambda: all(call.end is not None for call in server.record.calls))
            calls = {call.call_id: call for call in server.record.calls}
            sidebands = {conn.call_id: conn for conn in server.record.sidebands()}
    assert not [e for e in events if isinstance(e, Error)]
    assert events[-1] == Closed("requested")
    (at1, one), (at2, two) = rotations
    assert one.old_call_id == first_call
    assert two.old_call_id == one.new_call_id
    assert final_call == two.new_call_id
    assert len({first_call, one.new_call_id, two.new_call_id}) == 3
    assert stats.rotations == 2
    assert "rotated" in timeline
    assert "rotated_2" in timeline
    # every call was hung up: the two old ones by the rotations, the last one when the block ended
    assert [calls[c].end for c in (first_call, one.new_call_id, two.new_call_id)] == ["hangup"] * 3
    assert server.record.hangups[:2] == [first_call, one.new_call_id]
    # audio both ways on every call: the server heard the source on each, the app heard each call
    for call_id in (first_call, one.new_call_id, two.new_call_id):
        assert calls[call_id].connected
        assert calls[call_id].audio_frames_in >= 25, call_id
        assert dominant_frequency(bytes(calls[call_id].audio_in)) == pytest.approx(300, rel=0.05), call_id
    assert len([t for t in heard.times if at1 < t < at2]) >= 25
    assert len([t for t in heard.times if t > at2]) >= 25
    assert [t for t in heard.loud if t > at2]  # the reply, asked for after the second rotation
    for at in (at1, at2):
        assert heard.longest_gap_around(at) < 1.0
    # the history went into each new call: the text written on the first call is replayed on the second and third
    for call_id in (one.new_call_id, two.new_call_id):
        frames = sidebands[call_id].frames_in
        assert frames[0]["type"] == "session.update"
        assert "remember the word teal" in texts_created(frames), call_id
    assert texts_created(sidebands[first_call].frames_in) == ["remember the word teal"]
    assert engine_tasks() == []


async def test_texts_sent_across_a_rotation_go_out_once_in_order_after_the_replay(engine: webrtc.MediaEngine) -> None:
    """A text every 20 ms while the call is rotated: the old call got a prefix, the new call the replay of that
    prefix (first, right after ``session.update``) then the rest — each text written once, in order."""
    media = webrtc.Media(engine, connect_timeout=5)
    sent: list[str] = []
    with trio.fail_after(30):
        async with (
            serving(engine, session_max_seconds=5.0, greeting_ms=0) as server,
            client_for(server) as client,
        ):
            async with rtengine.open_conversation(client, MEDIA_ONLY, media=media, rotate_margin=2.0) as conv:
                first_call = conv.call_id
                rotated = trio.Event()

                async def send_until_after_rotation() -> None:
                    n = 0
                    while not rotated.is_set() or n % 25:  # at least until the next multiple of 25 after it
                        sent.append(f"text {n}")
                        await conv.send_text(sent[-1])
                        n += 1
                        await trio.sleep(0.02)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(send_until_after_rotation)
                    rotation = (await until(conv, SessionRotated))[-1]
                    rotated.set()
                assert isinstance(rotation, SessionRotated)
                new_call = rotation.new_call_id or ""
                await server.record.wait_until(
                    lambda: sent[-1] in texts_created(server.record.joins(new_call)[0].frames_in)
                )
            old = texts_created(server.record.joins(first_call or "")[0].frames_in)
            new_frames = server.record.joins(new_call)[0].frames_in
    new = texts_created(new_frames)
    assert len(sent) > 25
    assert old
    assert old + new[len(old) :] == sent  # each text once, in order, across the two calls
    assert new[: len(old)] == old  # the replay: the old call's texts, first
    assert new_frames[0]["type"] == "session.update"
    assert [f["type"] for f in new_frames[1 : len(old) + 1]] == ["conversation.item.create"] * len(old)


async def test_a_rotation_that_cannot_dial_is_reported_and_the_cap_then_ends_the_call(
    engine: webrtc.MediaEngine,
) -> None:
    """The next call's POST fails: a non-fatal ``Error("rotation_failed")``, the call goes on, and its cap ends the
    conversation with ``Closed("session_expired")``."""
    media = webrtc.Media(engine, connect_timeout=5)
    with trio.fail_after(30):
        async with (
            serving(engine, session_max_seconds=4.0, greeting_ms=0) as server,
            client_for(server) as client,
        ):
            async with rtengine.open_conversation(client, MEDIA_ONLY, media=media, rotate_margin=2.0) as conv:
                server.set_faults(Faults(call_status=500))
                events = await drain(conv)
                stats = conv.stats
            await server.record.wait_until(lambda: server.record.calls[0].end is not None)
    ends = [e for e in events if isinstance(e, Error | Closed)]
    assert len(ends) == 2
    failed, closed = ends
    assert isinstance(failed, Error)
    assert (failed.code, failed.fatal) == ("rotation_failed", False)
    assert closed == Closed("session_expired", 1001, "Your session hit the maximum duration of 0.07 minutes.")
    assert (stats.rotations, stats.rotations_failed) == (0, 1)
    made = [call for call in server.record.calls if call.call_id is not None]
    assert [call.end for call in made] == ["session_expired"]
    assert {call.status for call in server.record.calls[1:]} == {500}  # the rotation's POSTs (with retries)
    assert engine_tasks() == []


@pytest.mark.parametrize("ending", ["close", "cancel"])
@pytest.mark.parametrize("sideband", ["background", "inline"])
async def test_an_end_during_a_rotation_hangs_up_both_calls_and_closes_once(
    engine: webrtc.MediaEngine, sideband: Literal["background", "inline"], ending: str
) -> None:
    """``close()`` (or the owner's cancellation) right after the next call was created: one ``Closed``, no
    ``Error``, both calls hung up, nothing left running."""
    media = webrtc.Media(engine, source=webrtc.tone_source(300, seconds=30.0), connect_timeout=5)
    with trio.fail_after(30):
        async with (
            serving(engine, session_max_seconds=4.0, greeting_ms=0) as server,
            client_for(server) as client,
        ):
            with trio.CancelScope() as owner:
                async with rtengine.open_conversation(
                    client, MEDIA_ONLY, media=media, rotate_margin=2.0, sideband=sideband
                ) as conv:
                    first_call = conv.call_id
                    await server.record.wait_until(lambda: len(server.record.calls) == 2)  # the rotation dialed
                    if ending == "close":
                        await conv.close()
                    else:
                        owner.cancel()
                        await trio.sleep_forever()
            events = await drain(conv)
            await server.record.wait_until(lambda: all(call.end is not None for call in server.record.calls))
            ends = [call.end for call in server.record.calls]
    assert [e for e in events if isinstance(e, Error | Closed)] == [Closed("requested")]
    assert server.record.calls[0].call_id == first_call
    assert ends == ["hangup", "hangup"]
    assert engine_tasks() == []


async def test_a_browser_held_call_is_warned_before_the_cap_then_ends_session_expired(
    peers: PeerService, offer_sdp: str
) -> None:
    async with serving(peers, session_max_seconds=5.0) as server, client_for(server) as client:
        with trio.fail_after(15):
            async with rtengine.open_conversation(client, MEDIA_ONLY, offer_sdp=offer_sdp, rotate_margin=2.5) as conv:
                began = trio.current_time()
                timed: list[tuple[float, Any]] = []
                async for event in conv.events:
                    timed.append((trio.current_time() - began, event))
            await server.record.wait_until(lambda: server.record.calls[0].end is not None)
    ends = [(at, e) for at, e in timed if isinstance(e, Error | Closed)]
    assert len(ends) == 2
    (warned_at, warning), (closed_at, closed) = ends
    assert isinstance(warning, Error)
    assert (warning.code, warning.fatal) == ("session_expiring", False)
    assert "re-offer" in warning.message  # the browser holds the offer: a new one carries on
    assert closed == Closed("session_expired", 1001, CAP)
    assert closed_at - warned_at > 1.0  # a margin before the cap, not at it
    assert server.record.calls[0].end == "session_expired"
