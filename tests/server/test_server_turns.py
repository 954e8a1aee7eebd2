"""The local server's user turns: server VAD (as the real API plays it), commit/clear, and every event strict
against the ``openai`` SDK's types.

The order of a VAD turn is the one recorded against the real API by pydantic-ai
(tests/realtime/cassettes/test_openai_ws/test_audio_in_server_vad_turn.yaml, commit d6d66de54d, MIT):
speech_started → speech_stopped → committed → conversation.item.added/.done (a user message with one
``input_audio`` part, transcript null) → response.created …, with the input transcription alongside.
"""

from typing import Any

import trio
from helpers import direct
from helpers import read_until as until
from turn_helpers import silence, speak

from rtengine import AudioFormat, SessionConfig, TurnDetection
from rtengine.adapters._peer import PeerService
from rtengine.adapters._ws import RealtimeSocket, open_socket
from rtengine.protocol import response_create, session_update, user_text
from rtengine.protocol._audio import tone
from rtengine.protocol._buffer_events import input_audio_clear, input_audio_commit
from rtengine.protocol._g711 import pcm16_to_g711
from rtengine.protocol._payloads import encode
from rtengine.server import LocalServer, ServerOptions, open_local_server

TURN_TYPES = [
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.added",
    "conversation.item.done",
]


def vad_session(**detection: Any) -> SessionConfig:
    return SessionConfig(transcription_model="gpt-realtime-whisper", turn_detection=TurnDetection(**detection))


async def open_turn(sock: RealtimeSocket, config: SessionConfig) -> dict[str, Any]:
    """Skip ``session.created``, apply ``config``; the ``session.updated``."""
    await until(sock, "session.created")
    await sock.send(encode(session_update(config)))
    return (await until(sock, "session.updated"))[-1]


async def test_a_spoken_turn_is_committed_transcribed_and_answered(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await open_turn(sock, vad_session(silence_duration_ms=200, prefix_padding_ms=300))
            await speak(sock, silence(500) + tone(440, 600) + silence(400))
            events = await until(sock, "response.done")
    types = [e["type"] for e in events]
    assert types[:5] == TURN_TYPES
    started, stopped, committed, added, done = events[:5]
    assert done["item"] == added["item"]
    item_id = started["item_id"]
    assert stopped["item_id"] == committed["item_id"] == added["item"]["id"] == item_id
    assert started["audio_start_ms"] == 500 - 300  # speech at 500 ms, with the prefix padding
    assert stopped["audio_end_ms"] == 1100 + 200  # speech ended at 1100 ms, plus the silence that ended it
    assert committed["previous_item_id"] is None
    assert added["item"] == {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": None}],
    }
    deltas = [e for e in events if e["type"] == "conversation.item.input_audio_transcription.delta"]
    completed = next(e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed")
    assert completed["transcript"] == "Tone of 440 Hz for 0.6 seconds."
    assert "".join(d["delta"] for d in deltas) == completed["transcript"]
    assert completed["usage"] == {"type": "duration", "seconds": 2}  # 1.1 s committed, billed in whole seconds
    assert types.index("conversation.item.input_audio_transcription.completed") < types.index("response.created")
    transcript = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
    assert transcript["transcript"] == "You said: Tone of 440 Hz for 0.6 seconds."
    assert events[-1]["response"]["status"] == "completed"


async def test_no_transcription_no_response_when_not_configured(server: LocalServer) -> None:
    config = SessionConfig(turn_detection=TurnDetection(create_response=False))
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await open_turn(sock, config)
            await speak(sock, tone(300, 300) + silence(300))
            events = await until(sock, "conversation.item.done")
            await sock.send(encode(user_text("marker")))  # the next events are the marker's: nothing came between
            after = await until(sock, "conversation.item.done")
    assert [e["type"] for e in events] == TURN_TYPES
    assert [e["type"] for e in after] == ["conversation.item.added", "conversation.item.done"]
    assert after[0]["previous_item_id"] == events[-1]["item"]["id"]


async def _speech_during_a_response(
    peers: PeerService, options: ServerOptions, interrupt: bool
) -> list[dict[str, Any]]:
    """A response is sending audio when 100 ms of speech comes in; the events from then to ``response.done``."""
    async with open_local_server(options, peers=peers) as server:
        with trio.fail_after(10):
            async with open_socket(direct(server), {}) as sock:
                await open_turn(sock, SessionConfig(turn_detection=TurnDetection(interrupt_response=interrupt)))
                await sock.send(encode(response_create()))
                await until(sock, "response.output_audio.delta")
                await speak(sock, tone(300, 100))
                return await until(sock, "response.done")


async def test_speech_interrupts_the_active_response_as_turn_detected(peers: PeerService) -> None:
    events = await _speech_during_a_response(peers, ServerOptions(delta_interval=0.05, audio_ms=2000), True)
    assert "input_audio_buffer.speech_started" in [e["type"] for e in events]
    response = events[-1]["response"]
    assert response["status"] == "cancelled"
    assert response["status_details"] == {"type": "cancelled", "reason": "turn_detected"}


async def test_speech_does_not_interrupt_when_interrupt_response_is_false(peers: PeerService) -> None:
    events = await _speech_during_a_response(peers, ServerOptions(delta_interval=0.02, audio_ms=400), False)
    assert "input_audio_buffer.speech_started" in [e["type"] for e in events]
    assert events[-1]["response"]["status"] == "completed"


async def test_threshold_decides_what_is_loud_enough(server: LocalServer) -> None:
    quiet = tone(300, 200, amplitude=0.03)  # RMS ≈ 0.021 of full scale
    results = []
    with trio.fail_after(10):
        for threshold in (0.5, 0.1):
            config = SessionConfig(turn_detection=TurnDetection(threshold=threshold, create_response=False))
            async with open_socket(direct(server), {}) as sock:
                await open_turn(sock, config)
                await speak(sock, quiet + silence(300))
                await sock.send(encode(user_text("marker")))
                results.append([e["type"] for e in await until(sock, "conversation.item.done")])
    assert results[0] == ["conversation.item.added", "conversation.item.done"]  # 0.5: the tone was not speech
    assert results[1][:2] == TURN_TYPES[:2]  # 0.1: it was


async def test_silence_duration_sets_when_speech_stops(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await open_turn(sock, SessionConfig(turn_detection=TurnDetection(silence_duration_ms=600)))
            await speak(sock, tone(300, 200) + silence(400) + tone(300, 200) + silence(700))
            events = await until(sock, "input_audio_buffer.speech_stopped")
    assert [e["type"] for e in events] == TURN_TYPES[:2]  # a 400 ms pause did not end the turn
    assert events[-1]["audio_end_ms"] == 800 + 600


async def test_semantic_vad_is_accepted_and_takes_turns(server: LocalServer) -> None:
    config = SessionConfig(transcription_model="whisper-1", turn_detection=TurnDetection(type="semantic_vad"))
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            updated = await open_turn(sock, config)
            await speak(sock, tone(440, 300) + silence(600))
            events = await until(sock, "conversation.item.input_audio_transcription.completed")
    assert updated["session"]["audio"]["input"]["turn_detection"] == {
        "type": "semantic_vad",
        "eagerness": "auto",
        "create_response": True,
        "interrupt_response": True,
    }  # not the server_vad fields it replaced
    assert [e["type"] for e in events][:5] == TURN_TYPES
    assert events[1]["audio_end_ms"] == 300 + 500  # eagerness auto: 500 ms of silence
    assert events[-1]["transcript"] == "Tone of 440 Hz for 0.3 seconds."


async def test_g711_input_is_timed_at_8_khz(server: LocalServer) -> None:
    for kind in ("audio/pcmu", "audio/pcma"):
        config = SessionConfig(
            input_format=AudioFormat(kind, None),
            transcription_model="whisper-1",
            turn_detection=TurnDetection(prefix_padding_ms=100, create_response=False),
        )
        pcm16 = silence(200, bytes_per_ms=16) + tone(440, 500, rate=8000) + silence(300, bytes_per_ms=16)
        audio = pcm16_to_g711(pcm16, kind)
        with trio.fail_after(10):
            async with open_socket(direct(server), {}) as sock:
                await open_turn(sock, config)
                await speak(sock, audio, bytes_per_ms=8)
                events = await until(sock, "conversation.item.input_audio_transcription.completed")
        assert (events[0]["audio_start_ms"], events[1]["audio_end_ms"]) == (100, 900), kind
        assert events[-1]["transcript"] == "Tone of 440 Hz for 0.5 seconds.", kind


async def test_idle_timeout_after_a_response_triggers_a_turn(
    server: LocalServer, autojump_clock: trio.abc.Clock
) -> None:
    """Wall time (here trio's mock clock): the client goes quiet after the response, sending no audio at all, and
    the timeout still fires, ``response.done`` + 200 ms of playback + ``idle_timeout_ms`` later."""
    config = SessionConfig(turn_detection=TurnDetection(idle_timeout_ms=5000))  # the API's minimum
    with trio.fail_after(30):
        async with open_socket(direct(server), {}) as sock:
            await open_turn(sock, config)
            await speak(sock, silence(100))
            await sock.send(encode(response_create()))
            await until(sock, "response.done")
            done_at = trio.current_time()
            events = await until(sock, "response.created")
            fired_after = trio.current_time() - done_at
    types = [e["type"] for e in events]
    assert types == [
        "rate_limits.updated",
        "input_audio_buffer.timeout_triggered",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
    ]
    timeout = events[1]
    assert (timeout["audio_start_ms"], timeout["audio_end_ms"]) == (100, 100)  # no input audio since
    assert timeout["item_id"] == events[2]["item_id"] == events[3]["item"]["id"]
    assert 5.2 <= fired_after < 5.3


async def test_commit_and_clear_by_the_client(server: LocalServer) -> None:
    config = SessionConfig(transcription_model="whisper-1", turn_detection="disabled")
    commit = {**input_audio_commit(), "event_id": "commit_1"}
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await open_turn(sock, config)
            await speak(sock, tone(440, 50))
            await sock.send(encode(commit))
            too_small = (await until(sock, "error"))[-1]
            await speak(sock, tone(440, 150))
            await sock.send(encode(input_audio_commit()))
            events = await until(sock, "conversation.item.input_audio_transcription.completed")
            await speak(sock, tone(440, 300))
            await sock.send(encode(input_audio_clear()))
            cleared = await until(sock, "input_audio_buffer.cleared")
            await sock.send(encode(commit))
            emptied = (await until(sock, "error"))[-1]
    assert too_small["error"] == {
        "type": "invalid_request_error",
        "code": "input_audio_buffer_commit_empty",
        "message": "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
        "but buffer only has 50.00ms of audio.",
        "param": None,
        "event_id": "commit_1",
    }
    assert [e["type"] for e in events][:3] == TURN_TYPES[2:]  # no VAD events: the client committed
    assert events[-1]["transcript"] == "Tone of 440 Hz for 0.2 seconds."  # both appends: 200 ms
    assert [e["type"] for e in cleared] == ["input_audio_buffer.cleared"]
    assert emptied["error"]["message"].endswith("buffer only has 0.00ms of audio.")


async def test_a_commit_creates_no_response(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await open_turn(sock, SessionConfig(turn_detection="disabled"))
            await speak(sock, tone(440, 200))
            await sock.send(encode(input_audio_commit()))
            events = await until(sock, "conversation.item.done")
            await sock.send(encode(user_text("marker")))
            after = await until(sock, "conversation.item.done")
    assert [e["type"] for e in events] == TURN_TYPES[2:]
    assert [e["type"] for e in after] == ["conversation.item.added", "conversation.item.done"]


async def test_audio_positions_count_every_byte_of_the_session(server: LocalServer) -> None:
    """Cleared and committed audio still counts: positions are offsets into all audio written."""
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await open_turn(sock, SessionConfig(turn_detection=TurnDetection(prefix_padding_ms=0)))
            await speak(sock, silence(300))
            await sock.send(encode(input_audio_clear()))
            await until(sock, "input_audio_buffer.cleared")
            await speak(sock, silence(200) + tone(440, 200) + silence(300))
            events = await until(sock, "input_audio_buffer.speech_stopped")
    assert (events[0]["audio_start_ms"], events[1]["audio_end_ms"]) == (500, 900)


#: The recorded turn (pydantic-ai test_audio_in_server_vad_turn, real API, see the module docstring): the client's
#: session.update verbatim, and the server's event types up to the response, input transcription set aside (the API
#: runs it concurrently with the response; the recording has its deltas after ``response.created``).
RECORDED_UPDATE = (
    '{"type": "session.update", "session": {"type": "realtime", "instructions": "Reply in a few words.", '
    '"output_modalities": ["audio"], "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, '
    '"turn_detection": {"type": "server_vad", "create_response": true, "interrupt_response": true}, '
    '"transcription": {"model": "gpt-realtime-whisper"}}, "output": {"format": {"type": "audio/pcm", "rate": 24000}}}}}'
)
RECORDED_TYPES = [
    "session.created",
    "session.updated",
    *TURN_TYPES,
    "response.created",
]


async def test_the_recorded_vad_turn_plays_in_the_recorded_order(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await sock.send(RECORDED_UPDATE)
            await speak(sock, silence(1760) + tone(220, 2300) + silence(400))
            events = await until(sock, "response.created")
    types = [e["type"] for e in events if "input_audio_transcription" not in e["type"]]
    assert types == RECORDED_TYPES
    updated = events[1]["session"]
    assert updated["audio"]["input"]["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }  # the recorded session.updated shows the same defaults
    started, stopped = events[2], events[3]
    assert started["audio_start_ms"] == 1460  # as recorded: speech from 1760 ms, less the 300 ms prefix padding
    assert stopped["audio_end_ms"] == 4260  # recorded 4256; the local VAD works in 10 ms frames
