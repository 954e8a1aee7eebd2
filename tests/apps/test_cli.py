"""The ``rtengine`` command as a user runs it: ``demo`` and ``serve`` in real subprocesses."""

import functools
import json
import os
import pathlib
import re
import signal
import subprocess
import wave

import httpx
import pytest
import trio
from helpers import RTENGINE, start_serve

from rtengine.protocol._audio import rms


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env.update(extra)
    return env


def _timeline(stdout: str) -> dict[str, float]:
    last = stdout.strip().splitlines()[-1]
    value = json.loads(last)["timeline_ms"]
    assert isinstance(value, dict)
    return value


async def test_demo_runs_a_media_call_against_the_embedded_server(tmp_path: pathlib.Path) -> None:
    wav_out = tmp_path / "received.wav"
    with trio.fail_after(60):
        result = await trio.run_process(
            [*RTENGINE, "demo", "--text", "ping", "--seconds", "1", "--wav-out", str(wav_out)],
            capture_stdout=True,
            env=_env(),
        )
    out = result.stdout.decode()
    assert "local realtime server at http://127.0.0.1:" in out
    assert "transcript done 'You said: ping'" in out
    timeline = _timeline(out)
    for phase in (
        "offer_created",
        "answer",
        "answer_applied",
        "dtls_connected",
        "data_channel_open",
        "sideband_joined",
        "session_updated",
        "first_audio_sent",
        "first_audio_received",
        "closed",
    ):
        assert phase in timeline, phase
    assert timeline["answer"] < timeline["closed"]
    assert "phase                  ms since start" in out
    frames = re.search(r"audio: frames sent (\d+), frames received (\d+)", out)
    assert frames is not None
    assert int(frames.group(1)) >= 45
    assert int(frames.group(2)) >= 45
    with wave.open(str(wav_out), "rb") as wav:
        assert wav.getframerate() == 24000
        assert rms(wav.readframes(wav.getnframes())) > 0.01


async def test_demo_over_a_plain_websocket() -> None:
    with trio.fail_after(60):
        result = await trio.run_process(
            [*RTENGINE, "demo", "--transport", "websocket", "--text", "socket"], capture_stdout=True, env=_env()
        )
    out = result.stdout.decode()
    assert "transcript done 'You said: socket'" in out
    assert "audio out (" in out  # output audio travels in events on a websocket
    assert list(_timeline(out))[:2] == ["connected", "session_update_sent"]


async def test_demo_sideband_delay_shows_in_the_timeline(tmp_path: pathlib.Path) -> None:
    with trio.fail_after(60):
        result = await trio.run_process([*RTENGINE, "demo", "--sideband-delay", "0.4"], capture_stdout=True, env=_env())
    timeline = _timeline(result.stdout.decode())
    assert timeline["sideband_joined"] - timeline["answer"] >= 400
    assert timeline["dtls_connected"] < timeline["sideband_joined"]  # media did not wait for the sideband


async def test_serve_prints_its_url_serves_and_stops_on_ctrl_c() -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            process, base_url = await start_serve(
                nursery, "--api-key", "sk-cli-test", "--call-status", "503", env=_env()
            )
            assert base_url.startswith("http://127.0.0.1:")
            assert base_url.endswith("/v1")
            async with httpx.AsyncClient() as http:
                unauthorized = await http.post(base_url + "/realtime/calls", content=b"v=0")
                assert unauthorized.status_code == 401
                injected = await http.post(
                    base_url + "/realtime/calls",
                    content=b"v=0\r\nm=audio 9 UDP 0\r\n",
                    headers={"authorization": "Bearer sk-cli-test", "content-type": "application/sdp"},
                )
                assert injected.status_code == 503
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0
        assert process.returncode == 0


async def test_call_against_a_separate_serve_process(tmp_path: pathlib.Path) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            process, base_url = await start_serve(
                nursery, "--api-key", "sk-two", "--delta-interval", "0", "--loopback", env=_env()
            )
            refused = await trio.run_process(
                [*RTENGINE, "call", "--base-url", base_url], capture_stdout=True, check=False, env=_env()
            )
            assert refused.returncode == 1
            assert b"OPENAI_API_KEY" in refused.stdout
            for transport in ("webrtc", "websocket"):
                call = await trio.run_process(
                    [
                        *RTENGINE,
                        "call",
                        "--base-url",
                        base_url,
                        "--transport",
                        transport,
                        "--text",
                        "two processes",
                        "--loopback",
                        "--seconds",
                        "0.5",
                        "--wav-out",
                        str(tmp_path / f"{transport}.wav"),
                    ],
                    capture_stdout=True,
                    env=_env(OPENAI_API_KEY="sk-two"),
                )
                assert "You said: two processes" in call.stdout.decode(), call.stdout.decode()[-3000:]
                assert "sk-two" not in call.stdout.decode()
            wrong = await trio.run_process(
                [*RTENGINE, "call", "--base-url", base_url, "--transport", "websocket"],
                capture_stdout=True,
                check=False,
                env=_env(OPENAI_API_KEY="sk-wrong"),
            )
            assert wrong.returncode == 1
            assert b"401" in wrong.stdout
            assert b"sk-wrong" not in wrong.stdout
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0


async def test_serve_rejects_bad_fault_flags() -> None:
    with trio.fail_after(60):
        result = await trio.run_process(
            [*RTENGINE, "serve", "--inject", "nonsense"], capture_stderr=True, check=False, env=_env()
        )
    assert result.returncode == 2
    assert b"unknown injection" in result.stderr
    with trio.fail_after(60):
        status = await trio.run_process(
            [*RTENGINE, "serve", "--call-status", "200"], capture_stderr=True, check=False, env=_env()
        )
    assert status.returncode == 2
    assert b"call_status must be an HTTP error status" in status.stderr


async def test_web_serves_the_page_and_stops_on_ctrl_c() -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            run = functools.partial(
                trio.run_process, [*RTENGINE, "web", "--port", "0"], stdout=subprocess.PIPE, check=False, env=_env()
            )
            process: trio.Process = await nursery.start(run)
            assert process.stdout is not None
            line = b""
            while not line.endswith(b"\n"):
                line += await process.stdout.receive_some(1)
            url = line.decode().split(" on ", 1)[1].split(" ", 1)[0]
            async with httpx.AsyncClient() as http:
                page = await http.get(url)
                assert page.status_code == 200
                assert 'id="start"' in page.text
                refused = await http.post(url, content=b"v=0", headers={"origin": "https://evil.example"})
                assert refused.status_code == 403
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0


async def test_web_without_a_key_for_a_real_provider_fails_clearly() -> None:
    with trio.fail_after(60):
        result = await trio.run_process(
            [*RTENGINE, "web", "--port", "0", "--base-url", "https://api.openai.com/v1"],
            capture_stderr=True,
            check=False,
            env=_env(),
        )
    assert result.returncode == 1
    assert b"OPENAI_API_KEY" in result.stderr


@pytest.mark.parametrize("command", ["serve", "web"])
async def test_a_busy_port_is_one_line_on_stderr_and_status_1(command: str) -> None:
    """A port already in use is the commonest first-run mistake: one line naming the port, no traceback."""
    with trio.fail_after(60):
        (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
        async with listener:
            port = listener.socket.getsockname()[1]
            done = await trio.run_process(
                [*RTENGINE, command, "--port", str(port)],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                env=_env(),
            )
    err = done.stderr.decode()
    assert done.returncode == 1
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    assert f"rtengine {command}: cannot listen on 127.0.0.1:{port}" in err
    assert done.stdout == b""  # no URL was printed for a server that never listened
