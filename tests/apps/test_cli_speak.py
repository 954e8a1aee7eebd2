"""``rtengine demo --speak``: a spoken turn over a plain websocket, answered by the local server's VAD."""

import os
import pathlib

import trio
from helpers import RTENGINE


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}


async def test_demo_speaks_a_turn_and_the_server_vad_answers(tmp_path: pathlib.Path) -> None:
    with trio.fail_after(60):
        result = await trio.run_process(
            [*RTENGINE, "demo", "--transport", "websocket", "--speak", "--wav-out", str(tmp_path / "out.wav")],
            capture_stdout=True,
            env=_env(),
        )
    lines = result.stdout.decode().splitlines()
    assert result.returncode == 0

    def first(text: str) -> int:
        return next(i for i, line in enumerate(lines) if text in line)

    started = first("input_audio_buffer.speech_started  audio 0 ms")
    stopped = first("input_audio_buffer.speech_stopped  audio 1000 ms")
    heard = first("conversation.item.input_audio_transcription.completed  'Tone of 440 Hz for 0.8 seconds.'")
    answered = first("response.output_audio_transcript.done  'You said: Tone of 440 Hz for 0.8 seconds.'")
    user_item = first("conversation.item.added  message, user")
    assert started < stopped < user_item < heard < first("response.created") < answered
    assert answered < first("response.done  completed")


async def test_speak_needs_the_websocket_transport() -> None:
    with trio.fail_after(60):
        result = await trio.run_process(
            [*RTENGINE, "demo", "--transport", "webrtc", "--speak"],
            capture_stdout=True,
            capture_stderr=True,
            env=_env(),
            check=False,
        )
    assert result.returncode == 2  # a usage error, found before any network work
    assert result.stdout == b""
    assert "--speak needs --transport websocket" in result.stderr.decode()
