"""``rtengine demo --session-cap``: the embedded server caps each session, and the demo's WebRTC call is re-dialed
before every cap — the same conversation goes on across the rotations (a real subprocess, real loopback)."""

import itertools
import json
import os
import pathlib
import re

import trio
from helpers import RTENGINE


async def test_demo_with_a_5_s_cap_rotates_the_call_at_least_twice_in_12_s(tmp_path: pathlib.Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    wav_out = tmp_path / "received.wav"
    with trio.fail_after(90):
        result = await trio.run_process(
            [*RTENGINE, "demo", "--json", "--session-cap", "5", "--seconds", "12", "--wav-out", str(wav_out)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=env,
        )
    assert result.returncode == 0, result.stderr.decode()[-2000:]  # e.g. a cap reached before its rotation ended
    report = json.loads(result.stdout)
    out = "\n".join(f"{event['type']}  {event['detail']}" for event in report["events"])
    rotations = re.findall(r"rtengine.session_rotated  call (rtc_\S+) -> (rtc_\S+), no input written for (\d+) ms", out)
    assert len(rotations) >= 2
    for (_, new, _), (old, _, _) in itertools.pairwise(rotations):
        assert old == new  # each rotation starts from the call the previous one made
    timeline = report["timeline_ms"]
    assert timeline["rotated"] < timeline["rotated_2"] < timeline["closed"]
    assert "response.output_audio_transcript.done  'You said: Hello from rtengine!'" in out
    closed = [event["detail"] for event in report["events"] if event["type"] == "rtengine.closed"]
    assert closed == ["requested"]  # the cap never ended it: the demo closed it once its source had played
    assert report["counters"]["rotations"] >= len(rotations)
    assert report["audio"]["frames_sent"] >= 500  # the 12 s source went out over every call (20 ms frames)
    assert report["status"] == 0


async def test_demo_session_cap_needs_the_embedded_server() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    with trio.fail_after(30):
        result = await trio.run_process(
            [*RTENGINE, "demo", "--session-cap", "0"], capture_stderr=True, env=env, check=False
        )
    assert result.returncode == 2
    assert "--session-cap needs a number of seconds > 0" in result.stderr.decode()
