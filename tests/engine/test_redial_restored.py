"""A re-dialed WebRTC call says whether the new session got the whole context (``SessionRotated.state_restored``).

rtengine is the media peer and speaks one turn over real RTP (loopback UDP, Opus); the local server's VAD takes the
turn and answers it. Without a transcription model the spoken turn has no text: the rotation cannot replay it, the
new call's model has only the answer, and the app is told so (``state_restored=False``, counted in
``stats.rotations_incomplete``). With one, the turn is replayed as its transcript and the context is whole.
"""

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from engine_helpers import client_for, drain, serving, until

import rtengine
from rtengine import webrtc
from rtengine.events import ResponseDone, SessionRotated, SessionUpdated
from rtengine.protocol._audio import tone

#: 20 ms frames of PCM16 mono 24 kHz.
FRAME_BYTES = 960


async def one_turn(started: trio.Event) -> AsyncIterator[bytes]:
    """Silence until ``started``, then 600 ms of a loud tone and silence: one spoken turn for the server's VAD."""
    while not started.is_set():
        yield b"\x00" * FRAME_BYTES
    pcm = tone(300, 600, amplitude=0.5) + b"\x00" * 48 * 1000
    for start in range(0, len(pcm), FRAME_BYTES):
        yield pcm[start : start + FRAME_BYTES]


def replayed(frames: list[Any]) -> list[tuple[str, str]]:
    """(role, content type) of each item a sideband was given, in order."""
    return [
        (f["item"].get("role", ""), f["item"]["content"][0]["type"])
        for f in frames
        if isinstance(f, dict) and f.get("type") == "conversation.item.create"
    ]


@pytest.mark.parametrize("transcribed", [False, True])
async def test_a_redial_says_whether_the_spoken_turns_reached_the_new_call(
    engine: webrtc.MediaEngine, transcribed: bool
) -> None:
    session = rtengine.SessionConfig(instructions="spoken", transcription_model="whisper-1" if transcribed else None)
    started = trio.Event()
    media = webrtc.Media(engine, source=one_turn(started), connect_timeout=5)
    with trio.fail_after(40):
        async with (
            serving(engine, session_max_seconds=8.0, greeting_ms=0) as server,
            client_for(server) as client,
        ):
            async with rtengine.open_conversation(client, session, media=media, rotate_margin=4.0) as conv:
                seen = await until(conv, SessionUpdated)
                started.set()
                seen += await until(conv, ResponseDone)  # the turn was heard and answered on the first call
                seen += await until(conv, SessionRotated)
                stats = conv.stats
                await conv.close()
            seen += await drain(conv)
    rotated = next(e for e in seen if isinstance(e, SessionRotated))
    items = replayed(server.record.joins(rotated.new_call_id or "")[0].frames_in)
    assert rotated.state_restored is transcribed
    assert stats.rotations_incomplete == (0 if transcribed else 1)
    if transcribed:
        assert items == [("user", "input_text"), ("assistant", "output_text")]  # the turn as its transcript
    else:
        assert items == [("assistant", "output_text")]  # the spoken turn could not be replayed
