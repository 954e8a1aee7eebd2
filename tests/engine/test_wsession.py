"""Websocket conversations that outlive their sessions (issue #11, behaviours 2 and 3) over real loopback sockets:
rotation before the local server's session cap, and reconnect after an abnormal drop, each replaying the history
into the new session (the server's record shows the replayed items on each connection)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from engine_helpers import client_for, drain, engine_tasks, serving, until

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import (
    AudioOut,
    Closed,
    ConnectionDropped,
    Error,
    RateLimits,
    ResponseDone,
    SessionRestored,
    SessionRotated,
    Started,
)
from rtengine.protocol._audio import tone
from rtengine.server import ConnectionRecord, Faults

SESSION = rtengine.SessionConfig(instructions="rotate", transcription_model="whisper-1", turn_detection="disabled")


def texts_in(conn: ConnectionRecord) -> list[str]:
    """The user texts a connection received, in order (replayed or sent)."""
    return [
        f["item"]["content"][0]["text"]
        for f in conn.frames_in
        if f.get("type") == "conversation.item.create"
        and f["item"].get("role") == "user"
        and f["item"]["content"][0]["type"] == "input_text"
    ]


def items_in(conn: ConnectionRecord) -> list[dict[str, Any]]:
    return [f["item"] for f in conn.frames_in if f.get("type") == "conversation.item.create"]


async def turn(conv: rtengine.Conversation, text: str) -> list[Any]:
    """A text, a response; the events up to its ``response.done``."""
    await conv.send_text(text)
    await conv.request_response()
    return await until(conv, ResponseDone)


async def test_a_conversation_rotates_twice_before_the_cap_and_goes_on(peers: PeerService) -> None:
    async with serving(peers, session_max_seconds=5.0) as server:
        client = client_for(server)
        with trio.fail_after(30):
            async with rtengine.open_conversation(client, SESSION, rotate_margin=2.0) as conv:
                seen = await until(conv, Started)
                seen += await turn(conv, "one")
                seen += await until(conv, SessionRotated)
                seen += await turn(conv, "two")
                seen += await until(conv, SessionRotated)
                seen += await turn(conv, "three")
                await conv.close()
            seen += await drain(conv)
    rotations = [e for e in seen if isinstance(e, SessionRotated)]
    assert len(rotations) == 2
    directs = server.record.directs()
    assert len(directs) == 3
    # Each rotation's old and new session ids are the servers'; the new session is the next connection's.
    assert rotations[0].new_session_id == rotations[1].old_session_id
    assert all(r.old_call_id is None and r.new_call_id is None for r in rotations)
    assert all(r.gap_ms < 250 for r in rotations)
    # The replay: each new session was given the conversation so far, then the new turn — nothing twice.
    assert texts_in(directs[0]) == ["one"]
    assert texts_in(directs[1]) == ["one", "two"]
    assert texts_in(directs[2]) == ["one", "two", "three"]
    assistant = [i for i in items_in(directs[2]) if i.get("role") == "assistant"]
    assert [i["content"][0]["type"] for i in assistant] == ["output_text", "output_text"]
    assert all(c.types_in()[0] == "session.update" for c in directs)
    # The old sessions were closed by rtengine with 1000, before the cap; audio flowed after each rotation.
    assert [(c.end, c.close_code) for c in directs[:2]] == [("client_close", 1000)] * 2
    after = [i for i, e in enumerate(seen) if isinstance(e, SessionRotated)]
    for start in after:
        assert any(isinstance(e, AudioOut) for e in seen[start:])
    assert sum(isinstance(e, AudioOut) for e in seen[after[1] :]) > 0
    assert not [e for e in seen if isinstance(e, Error)]
    assert seen[-1] == Closed("requested")
    assert conv.stats.rotations == 2
    assert engine_tasks() == []


async def test_without_rotation_the_cap_ends_the_conversation(peers: PeerService) -> None:
    async with serving(peers, session_max_seconds=1.0) as server:
        client = client_for(server)
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION, rotate_margin=None) as conv:
                seen = await drain(conv)
    assert isinstance(seen[-1], Closed)
    assert (seen[-1].reason, seen[-1].code) == ("session_expired", 1001)
    assert len(server.record.directs()) == 1


@pytest.mark.parametrize("mode", ["abrupt", "clean"])
async def test_reconnect_after_a_drop_replays_the_history(peers: PeerService, mode: str) -> None:
    async with serving(peers) as server:
        client = client_for(server)
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, reconnect=True) as conv:
                seen = await until(conv, Started)
                seen += await turn(conv, "before")
                seen += await until(conv, RateLimits)  # the turn's last frame (after response.done): now all sent
                sent = len(server.record.directs()[0].frames_out)
                # The next event on this connection drops it: a reset, or (clean) a CLOSE 1000 — not worth a reconnect.
                server.set_faults(Faults(close_after_events=sent + 1, close_mode=mode))  # type: ignore[arg-type]
                await conv.send_text("during")
                if mode == "clean":
                    seen += await drain(conv)
                else:
                    seen += await until(conv, ConnectionDropped)
                    server.set_faults(Faults())
                    seen += await until(conv, SessionRestored)
                    seen += await turn(conv, "after")
                    await conv.close()
                    seen += await drain(conv)
    directs = server.record.directs()
    if mode == "clean":
        assert isinstance(seen[-1], Closed)
        assert (seen[-1].reason, seen[-1].code) == ("transport_closed", 1000)
        assert len(directs) == 1
        return
    restored = next(e for e in seen if isinstance(e, SessionRestored))
    assert restored.state_restored
    assert restored.attempts == 1
    assert len(directs) == 2
    # "during" reached the first session (its write completed) and is replayed, never sent again as an input.
    assert texts_in(directs[0]) == ["before", "during"]
    assert texts_in(directs[1]) == ["before", "during", "after"]
    assert restored.items_replayed == len(items_in(directs[1])) - 1
    assert directs[1].types_in()[0] == "session.update"
    assert seen[-1] == Closed("requested")
    assert not [e for e in seen if isinstance(e, Error)]


async def test_reconnect_exhausted_is_one_error_then_closed(peers: PeerService) -> None:
    async with serving(peers) as server:
        client = client_for(server, sideband_rejoin_attempts=2)
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, reconnect=True) as conv:
                await until(conv, Started)
                sent = len(server.record.directs()[0].frames_out)
                server.set_faults(Faults(close_after_events=sent + 1, close_mode="abrupt", websocket_status=503))
                await conv.send_text("x")
                seen = await drain(conv)
    assert [type(e).__name__ for e in seen if not isinstance(e, rtengine.events.ServerEvent)] == [
        "ConnectionDropped",
        "Error",
        "Closed",
    ]
    error = next(e for e in seen if isinstance(e, Error))
    assert error.code == "connection_lost"
    assert seen[-1] == Closed("error")
    assert conv.stats.reconnect_attempts == 2


async def test_a_restore_is_not_complete_when_spoken_audio_had_no_transcript(peers: PeerService) -> None:
    spoken = rtengine.SessionConfig(instructions="no transcription")  # server VAD, no transcription model
    async with serving(peers) as server:
        client = client_for(server)
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, spoken, reconnect=True) as conv:
                seen = await until(conv, Started)
                audio = tone(440, 300) + b"\x00" * 48 * 600
                for start in range(0, len(audio), 960):
                    assert conv.send_audio(audio[start : start + 960])
                seen += await until(conv, ResponseDone)  # the VAD's turn: a user audio item, then an answer
                sent = len(server.record.directs()[0].frames_out)
                server.set_faults(Faults(close_after_events=sent + 1, close_mode="abrupt"))
                await conv.send_text("typed")
                seen += await until(conv, ConnectionDropped)
                server.set_faults(Faults())
                seen += await until(conv, SessionRestored)
    restored = next(e for e in seen if isinstance(e, SessionRestored))
    assert not restored.state_restored  # the user's audio had no transcript: it could not be replayed
    replayed = items_in(server.record.directs()[1])
    assert [(i["type"], i.get("role")) for i in replayed] == [("message", "assistant"), ("message", "user")]
    assert restored.items_replayed == 2


async def test_a_due_rotation_waits_for_the_response_in_flight(peers: PeerService) -> None:
    async with serving(peers, session_max_seconds=8.0, delta_interval=0.05, audio_ms=1500) as server:
        client = client_for(server)
        with trio.fail_after(30):
            async with rtengine.open_conversation(client, SESSION, rotate_margin=5.0) as conv:
                seen = await until(conv, Started)
                began = trio.current_time()
                await trio.sleep(2.5)
                await conv.send_text("a long answer please")
                await conv.request_response()  # streams ~2 s, across the rotation time (3.5–4 s: half the life)
                seen += await until(conv, ResponseDone)
                ended = trio.current_time() - began
                seen += await until(conv, SessionRotated)
                await conv.close()
            seen += await drain(conv)
    assert ended > 4.0  # the rotation was due while the response streamed
    done = next(i for i, e in enumerate(seen) if isinstance(e, ResponseDone))
    rotated = next(i for i, e in enumerate(seen) if isinstance(e, SessionRotated))
    assert done < rotated  # the rotation waited for the response's end
    response = seen[done]
    assert isinstance(response, ResponseDone)
    assert response.status == "completed"  # not cut by the rotation
    assert sum(isinstance(e, AudioOut) for e in seen[:done]) > 0
    first = server.record.directs()[0]
    assert (first.end, first.close_code) == ("client_close", 1000)


async def test_bad_options_are_refused_before_anything_opens(peers: PeerService) -> None:
    async with serving(peers) as server:
        client = client_for(server)
        for bad in ({"rotate_margin": 0}, {"rotate_margin": float("nan")}, {"history_items": 0}):
            with pytest.raises(rtengine.ConfigError):
                async with rtengine.open_conversation(client, SESSION, **bad):
                    pass
    assert server.record.directs() == []
