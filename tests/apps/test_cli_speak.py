"""``rtengine demo --speak``: a spoken turn over a plain websocket, answered by the local server's VAD."""

import os

import trio
from helpers import RTENGINE


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}


async def test_demo_speaks_a_turn_and_the_server_vad_answers() -> None:
    with trio.fail_after(60):
        result = await trio.run_process(
            [*RTENGINE, "demo", "--transport", "websocket", "--speak"], capture_stdout=True, env=_env()
        )
    lines = result.stdout.decode().splitlines()
    assert result.returncode == 0

    def first(text: str) -> int:
        return next(i for i, line in enumerate(lines) if text in line)

    started, stopped = first("speech started (audio 0 ms)"), first("speech stopped (audio 1000 ms)")
    heard = first("input transcript 'Tone of 440 Hz for 0.8 seconds.'")
    answered = first("transcript done 'You said: Tone of 440 Hz for 0.8 seconds.'")
    assert started < stopped < first("item added (message, user)") < heard < first("ResponseCreated") < answered
    assert answered < first("ResponseDone")


async def test_speak_needs_the_websocket_transport() -> None:
    with trio.fail_after(60):
        result = await trio.run_process(
            [*RTENGINE, "demo", "--transport", "webrtc", "--speak"], capture_stdout=True, env=_env(), check=False
        )
    assert result.returncode == 1
    assert "--speak needs --transport websocket" in result.stdout.decode()
