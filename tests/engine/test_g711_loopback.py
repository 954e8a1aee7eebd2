"""G.711 output end to end: the engine against the local server over a real websocket, with ``audio/pcmu`` or
``audio/pcma`` as the session's output format. The server sends its answer encoded at 8 kHz; the engine's
``AudioOut`` says so, ``pcm()`` is PCM16 of the right length and tone, and a barge-in truncates at the milliseconds
actually received (PCM16 24 kHz assumed would make them six times too short)."""

import base64

import pytest
import trio
from engine_helpers import client_for, serving, until

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import AudioOut, ResponseDone, SpeechStarted
from rtengine.protocol._audio import dominant_frequency, tone
from rtengine.protocol._g711 import alaw_to_pcm16, ulaw_to_pcm16

DECODERS = {"audio/pcmu": ulaw_to_pcm16, "audio/pcma": alaw_to_pcm16}


def _session(fmt: str) -> rtengine.SessionConfig:
    return rtengine.SessionConfig(
        output_format=rtengine.AudioFormat(fmt, None),
        turn_detection=rtengine.TurnDetection(interrupt_response=True),
    )


@pytest.mark.parametrize("fmt", sorted(DECODERS))
async def test_g711_answer_arrives_as_pcm16_of_the_right_duration(peers: PeerService, fmt: str) -> None:
    async with serving(peers, audio_ms=600) as server, client_for(server) as client:
        with trio.fail_after(15):
            async with rtengine.open_conversation(client, _session(fmt)) as conv:
                await conv.request_response()
                events = await until(conv, ResponseDone)
    audio = [e for e in events if isinstance(e, AudioOut)]
    assert {(a.format, a.sample_rate) for a in audio} == {(fmt, 8000)}
    assert sum(a.duration_ms for a in audio) == 600
    pcm = b"".join(a.pcm() for a in audio)
    assert len(pcm) == 2 * 8000 * 600 // 1000  # PCM16, one sample per G.711 byte
    sent = b"".join(
        base64.b64decode(f["delta"])
        for f in server.record.directs()[-1].frames_out
        if f.get("type") == "response.output_audio.delta"
    )
    assert len(sent) == 8000 * 600 // 1000  # the server sent G.711, one byte a sample
    assert pcm == DECODERS[fmt](sent)
    assert dominant_frequency(pcm, rate=8000) == pytest.approx(440, rel=0.05)  # the server's 440 Hz answer


@pytest.mark.parametrize("fmt", sorted(DECODERS))
async def test_g711_barge_in_truncates_at_the_received_milliseconds(peers: PeerService, fmt: str) -> None:
    async with serving(peers, delta_interval=0.03, audio_ms=2000) as server, client_for(server) as client:
        with trio.fail_after(15):
            async with rtengine.open_conversation(client, _session(fmt)) as conv:
                await conv.request_response()
                received = 0
                async for event in conv.events:
                    if isinstance(event, AudioOut):
                        assert event.format == fmt
                        received += len(event.pcm()) // 16  # PCM16 at 8 kHz: 16 bytes a millisecond
                        if received >= 300:
                            break
                conv.send_audio(tone(300, 100, amplitude=0.5))  # the user starts speaking
                events = await until(conv, ResponseDone)
                record = server.record.directs()[-1]
                await server.record.wait_until(lambda: "conversation.item.truncated" in record.types_out())
    assert any(isinstance(e, SpeechStarted) for e in events)
    truncate = next(f for f in record.frames_in if f["type"] == "conversation.item.truncate")
    deltas = [f for f in record.frames_out if f.get("type") == "response.output_audio.delta"]
    assert 300 <= truncate["audio_end_ms"] <= 50 * len(deltas)  # 50 ms a delta, whatever the format
    truncated = next(f for f in record.frames_out if f.get("type") == "conversation.item.truncated")
    assert truncated["audio_end_ms"] == truncate["audio_end_ms"]  # within the audio: not clamped, no error
    assert "error" not in record.types_out()
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert done.status == "cancelled"
