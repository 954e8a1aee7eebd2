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
            [*RTENGINE, "demo", "--session-cap", "5", "--seconds", "12", "--wav-out", str(wav_out)],
            capture_stdout=True,
            env=env,
        )
    out = result.stdout.decode()
    rotations = re.findall(r"session rotated: call (rtc_\S+) -> (rtc_\S+) \(no input written for (\d+) ms\)", out)
    assert len(rotations) >= 2
    for (_, new, _), (old, _, _) in itertools.pairwise(rotations):
        assert old == new  # each rotation starts from the call the previous one made
    timeline = json.loads(out.strip().splitlines()[-1])["timeline_ms"]
    assert timeline["rotated"] < timeline["rotated_2"] < timeline["closed"]
    assert "transcript done 'You said: Hello from rtengine!'" in out
    assert "closed (" not in out  # the cap never ended it: the block's exit did (no Closed event printed)
    stats = re.search(r"rotations (\d+)", out)
    assert stats is not None
    assert int(stats.group(1)) >= len(rotations)  # one may land after the demo stopped printing events
    frames = re.search(r"audio: frames sent (\d+), frames received (\d+)", out)
    assert frames is not None
    assert int(frames.group(1)) >= 500  # the 12 s source went out over every call (20 ms frames)


async def test_demo_session_cap_needs_the_embedded_server() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    with trio.fail_after(30):
        result = await trio.run_process(
            [*RTENGINE, "demo", "--session-cap", "0"], capture_stdout=True, env=env, check=False
        )
    assert result.returncode == 1
    assert "--session-cap needs a number of seconds > 0" in result.stdout.decode()
