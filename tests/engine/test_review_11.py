"""Adversarial review of issue #11 (calls that survive): each test is a confirmed defect, marked
``xfail(strict=True)`` so the suite stays green until it is fixed (then the marker must go)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from engine_helpers import ENGINE_TASK_MARKERS, client_for, drain, live_tasks, serving, until
from rejoin_helpers import texts_created

import rtengine
from rtengine import webrtc
from rtengine.adapters._peer import PeerService
from rtengine.events import (
    Closed,
    ConnectionDropped,
    Error,
    InputTranscriptDone,
    ResponseCancelled,
    ResponseCreated,
    ResponseDone,
    SessionRestored,
    SessionRotated,
    SessionUpdated,
    SidebandRestored,
    Started,
)
from rtengine.protocol import _rotation
from rtengine.protocol._audio import rms, tone
from rtengine.server import ConnectionRecord, Faults

REDIAL = rtengine.SessionConfig(turn_detection="disabled", instructions="redial")
TYPED = rtengine.SessionConfig(instructions="review", transcription_model="whisper-1", turn_detection="disabled")


def items_in(conn: ConnectionRecord) -> list[dict[str, Any]]:
    return [f["item"] for f in conn.frames_in if f.get("type") == "conversation.item.create"]


async def test_a_response_streaming_at_a_drop_is_not_lost_silently(peers: PeerService) -> None:
    """The app asked for a response; it was streaming when the websocket dropped. The new session knows nothing of
    it, and rtengine neither requests it again (as a rotation does when it cuts one) nor tells the app: a caller
    awaiting its ``ResponseDone`` waits forever, and no counter says a request was lost."""
    async with serving(peers, delta_interval=0.05, audio_ms=1500) as server:
        client = client_for(server)
        with trio.fail_after(30):
            async with rtengine.open_conversation(client, TYPED, reconnect=True) as conv:
                seen = await until(conv, Started)
                await conv.send_text("a long answer please")
                await conv.request_response()
                seen += await until(conv, ResponseCreated)
                sent = len(server.record.directs()[0].frames_out)
                server.set_faults(Faults(close_after_events=sent + 2, close_mode="abrupt"))
                seen += await until(conv, ConnectionDropped)
                server.set_faults(Faults())
                seen += await until(conv, SessionRestored)
                after: list[Any] = []
                with trio.move_on_after(6):
                    async for event in conv.events:
                        after.append(event)
                        if isinstance(event, ResponseDone | ResponseCancelled):
                            break
                stats = conv.stats
                await conv.close()
            await drain(conv)
    answered = any(isinstance(e, ResponseDone | ResponseCancelled) for e in after)
    assert answered or stats.inputs_lost > 0, "the requested response vanished: no end event and nothing counted"


async def test_a_rotation_that_loses_spoken_turns_says_so(peers: PeerService) -> None:
    """Rotation is on by default. With spoken audio and no transcription model, the user's turns cannot be
    replayed: the new session's model has lost them. A reconnect says so (``state_restored=False``); a rotation
    — the default path for every long call — reports nothing at all: no flag on ``SessionRotated``, no counter."""
    spoken = rtengine.SessionConfig(instructions="no transcription")  # server VAD, no transcription model
    # Due at 4 s (half the session's life), in the middle of the utterance (1.5 s to 4.5 s, heard to its end at
    # ≈ 5 s); forced at the latest 1 s before the cap (7 s), 2 s after the utterance: time for its transcription
    # on a loaded machine. (With a 6 s session the forced start at 5 s met the utterance's end.)
    async with serving(peers, session_max_seconds=8.0) as server:
        client = client_for(server)
        with trio.fail_after(30):
            async with rtengine.open_conversation(client, spoken, rotate_margin=5.0) as conv:
                seen = await until(conv, Started)
                audio = tone(440, 300) + b"\x00" * 48 * 600
                for start in range(0, len(audio), 960):
                    assert conv.send_audio(audio[start : start + 960])
                seen += await until(conv, ResponseDone)
                seen += await until(conv, SessionRotated)
                stats = conv.stats
                await conv.close()
            seen += await drain(conv)
    rotated = next(e for e in seen if isinstance(e, SessionRotated))
    replayed = items_in(server.record.directs()[1])
    assert [i.get("role") for i in replayed] == ["assistant"]  # the user's spoken turn is gone from the context
    told = any(getattr(rotated, name, True) is False for name in ("state_restored", "complete"))
    assert told or stats.replay_refused > 0, "the model lost the user's turn and neither event nor stats say so"


async def test_the_task_census_sees_every_engine_task(peers: PeerService) -> None:
    """``engine_tasks()`` is how the suite proves "nothing left running"; its markers predate #11, so a leaked
    ``_wsession``/``_follow``/``_sideband`` task would pass every ``engine_tasks() == []`` check."""
    async with serving(peers, session_max_seconds=6.0) as server:
        client = client_for(server)
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, TYPED, rotate_margin=3.0) as conv:
                await until(conv, Started)
                names = sorted(t.name for t in live_tasks() if t.name.startswith("rtengine.engine."))
                await conv.close()
            await drain(conv)
    unseen = [n for n in names if not any(m in n for m in ENGINE_TASK_MARKERS)]
    assert unseen == []


async def test_a_rotation_does_not_cut_the_user_mid_utterance(peers: PeerService) -> None:
    """Server VAD, the user speaks for 3 s across the rotation time. The "quiet moment" only waits for a response
    in flight, so the swap happens mid-utterance: the old session's buffered speech is dropped with it (its
    ``speech_started`` never gets a ``speech_stopped``) and the new session hears only the tail — the model is
    answering half a sentence, and no counter or event says audio was lost."""
    spoken = rtengine.SessionConfig(instructions="vad", transcription_model="whisper-1")
    transcripts: list[str] = []
    # Due at 4 s (half the session's life), in the middle of the utterance (1.5 s to 4.5 s, heard to its end at
    # ≈ 5 s); forced at the latest 1 s before the cap (7 s), 2 s after the utterance: time for its transcription
    # on a loaded machine. (With a 6 s session the forced start at 5 s met the utterance's end.)
    async with serving(peers, session_max_seconds=8.0) as server:
        client = client_for(server)
        with trio.fail_after(30):
            async with rtengine.open_conversation(client, spoken, rotate_margin=5.0) as conv:
                seen = await until(conv, Started)

                async def read() -> None:
                    async for event in conv.events:
                        seen.append(event)
                        if isinstance(event, InputTranscriptDone):
                            transcripts.append(event.transcript)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(read)
                    await trio.sleep(1.5)  # the rotation is due at 3 s: the utterance spans it
                    audio = tone(440, 3000) + b"\x00" * 48 * 1200
                    for start in range(0, len(audio), 960):
                        assert conv.send_audio(audio[start : start + 960])
                        await trio.sleep(0.02)
                    await trio.sleep(3)  # the VAD's silence, the transcription
                    await conv.close()
    assert any(isinstance(e, SessionRotated) for e in seen)
    stats = conv.stats  # a failure under load says whether frames expired in a stall (the declared overload policy)
    timeline = [type(e).__name__ for e in seen if type(e).__name__ not in ("AudioOut", "OutputTranscriptDelta")]
    assert transcripts == ["Tone of 440 Hz for 3.0 seconds."], (
        f"expired {stats.audio_frames_expired}, dropped {stats.audio_frames_dropped}; events {timeline}"
    )


async def test_a_rotation_names_the_new_session(peers: PeerService) -> None:
    """With nothing to replay, the take-over reads no frame of the new session before announcing it, so its
    ``session.created`` is not seen yet: ``new_session_id`` is None, and the next rotation's ``old_session_id``
    names a session the app was never told about."""
    async with serving(peers, session_max_seconds=5.0) as server:
        client = client_for(server)
        with trio.fail_after(30):
            async with rtengine.open_conversation(client, TYPED, rotate_margin=2.0) as conv:
                seen = await until(conv, SessionRotated)
                seen += await until(conv, SessionRotated)
                await conv.close()
            await drain(conv)
    one, two = [e for e in seen if isinstance(e, SessionRotated)]
    assert one.new_session_id is not None
    assert one.new_session_id == two.old_session_id


@pytest.mark.parametrize("rotate", [False, True])
async def test_a_redial_does_not_cut_the_answer_the_user_is_hearing(engine: webrtc.MediaEngine, rotate: bool) -> None:
    """WebRTC, rtengine the media peer. On a WebRTC call ``response.done`` comes when the answer is generated,
    seconds before its audio has played out over RTP; the "quiet moment" of a re-dial only waits for
    ``response.done``, so the old call is hung up mid-sentence. Asked for 0.7 s before the rotation is due, the
    answer is heard in full without rotation (the control case: ≈100 loud 20 ms frames), and cut to under half
    with it (≈40). (The local server also sends ``output_audio_buffer.stopped`` right after ``response.done``,
    not when its RTP playback ends, so a fix keyed on it needs the server to tell the truth first.)"""
    media = webrtc.Media(engine, source=webrtc.tone_source(300, seconds=30.0), connect_timeout=5)
    loud: list[float] = []
    with trio.fail_after(40):
        async with (
            serving(engine, session_max_seconds=6.0, audio_ms=4000, greeting_ms=0) as server,
            client_for(server) as client,
        ):
            margin = 3.0 if rotate else None
            async with rtengine.open_conversation(client, REDIAL, media=media, rotate_margin=margin) as conv:
                assert conv.media is not None
                audio_out = conv.media.audio_out

                async def hear() -> None:
                    async for pcm in audio_out:
                        if rms(pcm) > 0.02:
                            loud.append(trio.current_time())

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(hear)
                    seen = await until(conv, SessionUpdated)
                    await trio.sleep(2.3)  # the rotation is due 3 s after the session began
                    await conv.request_response()
                    seen += await until(conv, ResponseDone)
                    if rotate:
                        seen += await until(conv, SessionRotated)
                    await trio.sleep(5.0)
                    nursery.cancel_scope.cancel()
                await conv.close()
            seen += await drain(conv)
    assert any(isinstance(e, SessionRotated) for e in seen) == rotate
    assert len(loud) >= 80  # 20 ms frames: most of the answer reached the app


@pytest.mark.parametrize("reconnect", [False, True])
async def test_the_next_session_lost_during_the_swap_is_not_a_crash(peers: PeerService, reconnect: bool) -> None:
    """The next session opens, then is reset while the rotation writes the history into it (here: right after its
    third event, the echo of the first early-replayed item). ``write_replay`` raises ``ConnectionLost`` out of
    ``_take_over`` — nothing there catches a ``TransportError`` — so the engine reports ``Error("internal_error")``
    and re-raises ``ConnectionLost`` out of the ``async with`` block: a ``RealtimeError`` escapes the block, and even
    with ``reconnect=True`` nothing reconnects. Expected: a lost socket like any other (reconnected when asked for,
    else one ``Error`` + ``Closed("error")``), never a crash."""
    outcome: BaseException | None = None
    seen: list[Any] = []
    async with serving(peers, session_max_seconds=6.0) as server:
        client = client_for(server)
        with trio.fail_after(30):
            try:
                async with rtengine.open_conversation(client, TYPED, rotate_margin=3.0, reconnect=reconnect) as conv:
                    seen += await until(conv, Started)
                    for word in ("a", "b", "c"):  # enough history for an early replay
                        await conv.send_text(word)
                        await conv.request_response()
                        seen += await until(conv, ResponseDone)
                    server.set_faults(Faults(close_after_events=3, close_mode="abrupt"))
                    with trio.move_on_after(8):
                        async for event in conv.events:
                            seen.append(event)
                            if isinstance(event, ConnectionDropped):
                                server.set_faults(Faults())
                            if isinstance(event, SessionRotated | SessionRestored | Closed):
                                break
                    await conv.close()
                seen += await drain(conv)
            except Exception as exc:
                outcome = exc
    assert outcome is None, f"escaped the block: {outcome!r}"
    assert not [e for e in seen if isinstance(e, Error) and e.code == "internal_error"]
    if reconnect:
        assert any(isinstance(e, SessionRestored) for e in seen)
        assert seen[-1] == Closed("requested")


async def test_a_response_cut_by_a_rotation_is_ended_for_the_app(peers: PeerService) -> None:
    """A response still streaming at the cap is cut by the rotation and requested again on the new session (as
    documented). But the app saw its ``ResponseCreated`` and deltas, and never gets a ``ResponseDone`` (or
    ``ResponseCancelled``) for it: an app that tracks responses by id, or awaits the end of the one it asked for,
    waits forever; the next ``ResponseCreated`` has another id. (With a response longer than a session's life the
    answer restarts at every rotation and never ends — the local server shows it with a 4 s cap.)"""
    async with serving(peers, session_max_seconds=5.0, delta_interval=0.05, audio_ms=6000) as server:
        client = client_for(server)
        with trio.fail_after(30):
            async with rtengine.open_conversation(client, TYPED, rotate_margin=2.0) as conv:
                seen = await until(conv, Started)
                await trio.sleep(2.5)
                await conv.send_text("a very long answer please")
                await conv.request_response()
                seen += await until(conv, ResponseCreated)
                seen += await until(conv, SessionRotated)
                with trio.move_on_after(1.5):
                    async for event in conv.events:
                        seen.append(event)
                await conv.close()
            seen += await drain(conv)
    first = next(e for e in seen if isinstance(e, ResponseCreated))
    ended = {e.response_id for e in seen if isinstance(e, ResponseDone | ResponseCancelled)}
    assert first.response_id in ended


def texts_held(call: Any) -> list[str]:
    """The texts of the items a local server's call holds in its conversation, in order."""
    items = call.conversation.items
    return [part.get("text") for i in items.order for part in items.retrieved(i).get("content", [])]


@pytest.mark.parametrize("mode", ["1011", "reset"])
async def test_a_sideband_drop_during_a_redials_replay(engine: webrtc.MediaEngine, mode: str) -> None:
    """WebRTC, rtengine the media peer; every call's first sideband drops after 4 server events, which on a
    rotated call lands in the middle of the history replay (deterministically: the fault counts the sideband's
    events — ``session.updated``, then the echoes of the first replayed items). Once a defect (the replay taken
    once, never finished after the re-join; with a reset a ``ConnectionLost`` escaping the block), now the
    re-joined sideband finishes the replay: the final call holds every text, once, in order: what the first
    call's conversation held, then the texts written since. (A text the first call's server read but dropped with
    its own sideband's reset, before any replay, is not in the first call's conversation: no replay can restore
    it, so it is not expected; the test's gate keeps it from happening.) The session cap leaves a slow rotation
    room, and no second rotation."""
    media = webrtc.Media(engine, connect_timeout=5)
    sent: list[str] = []
    seen: list[Any] = []
    calls: list[Any] = []
    outcome: BaseException | None = None
    with trio.fail_after(40):
        async with (
            serving(engine, session_max_seconds=16.0, greeting_ms=0) as server,
            client_for(server) as client,
        ):
            server.set_faults(Faults(drop_sideband=mode, drop_sideband_after=4))  # type: ignore[arg-type]
            try:
                # The rotation is due 8 s in (half the session's life), the next one 8 s after the new call was
                # made: room for a rotation slowed down by a loaded machine, and none for a second one.
                async with rtengine.open_conversation(client, REDIAL, media=media, rotate_margin=8.0) as conv:
                    live = server._calls.calls  # the server's live calls (private: their conversations)
                    calls.append(live[conv.call_id or ""])

                    async def read() -> None:
                        async for event in conv.events:
                            seen.append(event)
                            if isinstance(event, SidebandRestored):
                                restored.set()
                            if isinstance(event, SessionRotated) and not rotated.is_set():
                                calls.append(live[event.new_call_id or ""])
                                rotated.set()

                    restored, rotated = trio.Event(), trio.Event()
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(read)
                        # The gate: the first call's own drop (its 4th event: the echo of "text 1") comes while
                        # no text is being written, so none is cut mid-write (that one would be counted in
                        # ``inputs_interrupted`` and never repeated: the server may or may not have it).
                        for n in range(2):
                            sent.append(f"text {n}")
                            await conv.send_text(sent[-1])
                        await restored.wait()
                        n = 2
                        while not rotated.is_set() or n % 10:  # texts before, during and after the rotation
                            sent.append(f"text {n}")
                            await conv.send_text(sent[-1])
                            n += 1
                            await trio.sleep(0.1)
                        await trio.sleep(1.0)
                        stats = conv.stats
                        await conv.close()
            except Exception as exc:
                outcome = exc
            await server.record.wait_until(lambda: all(c.end is not None for c in server.record.calls))
    # What the calls' conversations hold, as the server keeps them (not the frames it read: with a reset, a frame
    # read but never acted on is not in the conversation — ``conversation.item.retrieve`` says so — and writing it
    # again is what keeps it; an item added while its sideband dropped is in, though its echo was never sent).
    held, kept = texts_held(calls[-1]), texts_held(calls[0])
    received = texts_created([f for join in server.record.joins(calls[0].call_id) for f in join.frames_in])
    assert outcome is None, f"escaped the block: {outcome!r}"
    assert any(isinstance(e, SessionRotated) for e in seen)
    assert not [e for e in seen if isinstance(e, Error)]
    assert held == [t for t in sent if t in kept or t not in received]
    assert held == sent  # with the gate, every text: none was cut mid-write
    assert stats.inputs_interrupted == 0
    # The scenario took place: the new call's first sideband was lost in the middle of the replay (the fault
    # counts its events: ``session.updated`` and the first echoes), and a second sideband finished it.
    joins = server.record.joins(calls[-1].call_id)
    assert len(joins) >= 2
    assert joins[0].end in ("server_close", "abrupt")
    assert 0 < len(texts_created(joins[0].frames_in)) < len(kept)


async def test_each_drop_of_a_flapping_connection_gets_its_own_deadline(peers: PeerService) -> None:
    """README: an abnormal drop is re-joined "at most ``sideband_rejoin_attempts`` times within
    ``sideband_rejoin_deadline`` seconds". A loss less than the deadline after a restore continues the same
    ``Budget``, whose deadline counts from the streak's *first* loss: a connection that drops every 1.2 s with a 2 s
    deadline (every reconnect succeeding at once, in milliseconds) is given up at its third drop — "not back within
    2 s" — although each gap was a few ms. (Likewise the attempts: five instant restores inside a streak leave none
    for the sixth drop.)"""
    async with serving(peers) as server:
        client = client_for(server, sideband_rejoin_deadline=2.0)
        with trio.fail_after(30):
            async with rtengine.open_conversation(client, TYPED, reconnect=True) as conv:
                seen = await until(conv, Started)
                for n in range(3):
                    conn = server.record.directs()[-1]
                    server.set_faults(Faults(close_after_events=len(conn.frames_out) + 1, close_mode="abrupt"))
                    await conv.send_text(f"drop {n}")
                    seen += await until(conv, ConnectionDropped)
                    server.set_faults(Faults())
                    seen += await until(conv, SessionRestored | Closed)  # type: ignore[arg-type]
                    if isinstance(seen[-1], Closed):
                        break
                    await trio.sleep(1.2)
                await conv.close()
            seen += await drain(conv)
    restores = [e for e in seen if isinstance(e, SessionRestored)]
    assert [e for e in seen if isinstance(e, Error)] == []
    assert len(restores) == 3
    assert all(r.gap_ms < 500 for r in restores)


async def test_a_rotation_started_mid_response_lets_it_finish_or_asks_again(
    peers: PeerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``_wsession`` says a rotation that waited ``RESPONSE_WAIT`` in vain starts anyway, lets the response "play to
    its end here, up to the cap", and requests it again on the new session if the cap cut it. But ``hand_over``
    sets the deadline of the pumps' cancel scope to ``WRITE_GRACE`` (1 s) — and the reader and the rotation task run
    inside that scope: 1 s later they are cancelled, the response is cut mid-stream, the re-request code never runs,
    and the app gets no ``ResponseDone``. With the defaults (60 min cap, 30 s margin, 10 s wait) any answer still
    streaming 20 s before the cap dies this way. Here ``RESPONSE_WAIT`` is 0.5 s and the cap 8 s so it fits a test."""
    monkeypatch.setattr(_rotation, "RESPONSE_WAIT", 0.5)
    async with serving(peers, session_max_seconds=8.0, delta_interval=0.05, audio_ms=6000) as server:
        client = client_for(server)
        with trio.fail_after(30):
            async with rtengine.open_conversation(client, TYPED, rotate_margin=5.0) as conv:
                seen = await until(conv, Started)
                began = trio.current_time()
                await trio.sleep_until(began + 3.0)
                await conv.send_text("a very long answer please")
                await conv.request_response()  # streams ~6 s: past the rotation's start (4.5 s), up to the cap (8 s)
                seen += await until(conv, SessionRotated)
                rotated_at = trio.current_time() - began
                with trio.move_on_after(5):
                    async for event in conv.events:
                        seen.append(event)
                        if isinstance(event, ResponseDone):
                            break
                await conv.close()
            seen += await drain(conv)
    directs = server.record.directs()
    asked_again = "response.create" in directs[1].types_in()
    first = next(e for e in seen if isinstance(e, ResponseCreated))
    ended = any(isinstance(e, ResponseDone) and e.response_id == first.response_id for e in seen)
    assert rotated_at < 7.0  # cut well before the cap: not by it
    assert ended or asked_again, "the response was cut by the rotation, never ended and never requested again"
