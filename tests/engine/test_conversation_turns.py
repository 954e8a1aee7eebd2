"""A microphone turn through the engine over the websocket transport: loud PCM then silence, with server VAD on,
yields the turn's typed events and the automatic response (the local server plays the real API's VAD turn)."""

import trio
from engine_helpers import client_for, serving, until

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import (
    InputTranscriptDelta,
    InputTranscriptDone,
    ItemAdded,
    ItemDone,
    OutputTranscriptDone,
    ResponseCreated,
    ResponseDone,
    SpeechStarted,
    SpeechStopped,
)
from rtengine.protocol._audio import tone

FRAME = 480 * 2  # 20 ms of PCM16 at 24 kHz


def frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FRAME] for i in range(0, len(pcm), FRAME)]


async def test_a_spoken_turn_yields_speech_the_user_item_its_transcript_and_an_answer(peers: PeerService) -> None:
    session = rtengine.SessionConfig(
        instructions="test",
        transcription_model="gpt-realtime-whisper",
        turn_detection=rtengine.TurnDetection(create_response=True, interrupt_response=True),
    )
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, session) as conv:
                for frame in frames(tone(440, 600) + b"\x00" * 48 * 400):  # speech, then the user falls silent
                    assert conv.send_audio(frame)
                events = await until(conv, ResponseDone)
    kinds = [type(e) for e in events]
    for kind in (SpeechStarted, SpeechStopped, ItemAdded, ItemDone, InputTranscriptDone, ResponseCreated):
        assert kind in kinds, kind.__name__
    order = [SpeechStarted, SpeechStopped, InputTranscriptDone, ResponseCreated, ResponseDone]
    assert [k for k in kinds if k in order] == order
    started = next(e for e in events if isinstance(e, SpeechStarted))
    stopped = next(e for e in events if isinstance(e, SpeechStopped))
    user_item = next(e for e in events if isinstance(e, ItemAdded))
    assert started.item_id == stopped.item_id == user_item.item_id
    assert (started.audio_start_ms, stopped.audio_end_ms) == (0, 600 + 200)
    assert user_item.item["role"] == "user"
    assert user_item.item["content"] == [{"type": "input_audio", "transcript": None}]
    done = next(e for e in events if isinstance(e, InputTranscriptDone))
    deltas = [e.delta for e in events if isinstance(e, InputTranscriptDelta)]
    assert done.item_id == started.item_id
    assert done.transcript == "".join(deltas) == "Tone of 440 Hz for 0.6 seconds."
    answer = next(e for e in events if isinstance(e, OutputTranscriptDone))
    assert answer.transcript == "You said: Tone of 440 Hz for 0.6 seconds."
    final = events[-1]
    assert isinstance(final, ResponseDone)
    assert final.status == "completed"
    record = server.record.directs()[-1]
    assert "response.create" not in record.types_in()  # the server answered on its own


async def test_a_turn_without_create_response_is_not_answered(peers: PeerService) -> None:
    session = rtengine.SessionConfig(turn_detection=rtengine.TurnDetection(create_response=False))
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, session) as conv:
                for frame in frames(tone(440, 200) + b"\x00" * 48 * 300):
                    assert conv.send_audio(frame)
                turn = await until(conv, ItemDone)
                await conv.send_text("marker")  # the next item is the marker's: no response came between
                after = await until(conv, ItemDone)
    assert any(isinstance(e, SpeechStopped) for e in turn)
    assert not any(isinstance(e, ResponseCreated) for e in after)
    record = server.record.directs()[-1]
    assert "response.created" not in record.types_out()
