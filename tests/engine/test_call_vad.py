"""Server VAD on a WebRTC call: rtengine as the media peer plays a tone and then silence over real RTP (loopback
UDP, Opus), and the local server runs its VAD on the call's audio as the API does: a full turn and an automatic
response, seen through the sideband as typed events and on the call's data channel too. Real clock, under
``fail_after``."""

from collections.abc import AsyncIterator
from typing import cast

import trio
from engine_helpers import API_KEY, client_for, until

import rtengine
from rtengine import webrtc
from rtengine.adapters._peer import Peer
from rtengine.events import (
    InputTranscriptDone,
    ItemAdded,
    ResponseCreated,
    ResponseDone,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
)
from rtengine.protocol._audio import tone
from rtengine.server import LocalServer, ServerOptions

TONE_MS = 600
#: 20 ms frames of PCM16 mono 24 kHz.
FRAME_BYTES = 960
#: The local server of ``media_server`` (``tests/conftest.py``).
MEDIA_SERVER = ServerOptions(api_key=API_KEY, delta_interval=0.0, audio_ms=300, greeting_ms=0)


async def tone_then_silence(started: trio.Event) -> AsyncIterator[bytes]:
    """Silence until ``started`` (the session is set up), then ``TONE_MS`` of a loud 300 Hz tone, then a second of
    silence: one spoken turn (the pump paces the frames in real time; after the source ends it sends silence)."""
    while not started.is_set():
        yield b"\x00" * FRAME_BYTES
    pcm = tone(300, TONE_MS, amplitude=0.5) + b"\x00" * 48 * 1000
    for start in range(0, len(pcm), FRAME_BYTES):
        yield pcm[start : start + FRAME_BYTES]


async def test_a_call_gets_a_vad_turn_and_an_automatic_response(
    engine: webrtc.MediaEngine, media_server: LocalServer
) -> None:
    started = trio.Event()
    media = webrtc.Media(engine, source=tone_then_silence(started), connect_timeout=5, data_channel=True)
    session = rtengine.SessionConfig(transcription_model="whisper-1")  # server VAD is on by default, as in the API
    async with client_for(media_server) as client:
        with trio.fail_after(30):
            async with rtengine.open_conversation(client, session, media=media) as conv:
                assert conv.media is not None
                peer = cast(Peer, conv.media.peer)
                await until(conv, SessionUpdated)
                await trio.sleep(0.5)  # silence first: the prefix padding has audio to reach back into
                started.set()
                events = await until(conv, ResponseDone)
                await media_server.record.wait_until(
                    lambda: "response.done" in [f.get("type") for f in media_server.record.calls[-1].data_frames_out]
                )
                assert peer.channel_open.is_set()
    kinds = [type(e) for e in events]
    for kind in (SpeechStarted, SpeechStopped, ItemAdded, InputTranscriptDone, ResponseCreated, ResponseDone):
        assert kind in kinds, kind.__name__
    assert kinds.index(SpeechStarted) < kinds.index(SpeechStopped) < kinds.index(ResponseCreated)
    started_at = next(e for e in events if isinstance(e, SpeechStarted))
    stopped_at = next(e for e in events if isinstance(e, SpeechStopped))
    assert started_at.item_id == stopped_at.item_id
    assert started_at.audio_start_ms is not None
    assert stopped_at.audio_end_ms is not None
    # the turn spans the prefix padding before the tone (300 ms), the tone (600 ms) and the silence that ends it
    # (200 ms); Opus and the jitter buffer blur its edges by a few frames
    assert 1000 <= stopped_at.audio_end_ms - started_at.audio_start_ms <= 1250
    assert started_at.audio_start_ms >= 200  # half a second of silence came before the tone
    user = next(e for e in events if isinstance(e, ItemAdded) and e.item.get("role") == "user")
    assert user.item_id == started_at.item_id
    assert [p["type"] for p in user.item["content"]] == ["input_audio"]
    transcript = next(e for e in events if isinstance(e, InputTranscriptDone))
    assert transcript.transcript.startswith("Tone of 300 Hz")  # the fake transcription heard the call's tone
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert done.status == "completed"
    sideband = media_server.record.sidebands()[-1]
    assert "response.create" not in sideband.types_in()  # the response was the VAD's, nobody asked for one
    turn = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "response.created",
    ]
    assert [t for t in sideband.types_out() if t in turn] == turn
    data_channel = [f.get("type") for f in media_server.record.calls[-1].data_frames_out]
    assert [t for t in data_channel if t in turn] == turn  # the data channel hears the same turn
