"""The ``rtengine`` command as a user runs it: ``demo`` and ``serve`` in real subprocesses."""

import functools
import json
import os
import pathlib
import signal
import subprocess
import wave
from typing import Any

import httpx
import pytest
import trio
from cli_helpers import run_on_a_busy_port
from helpers import RTENGINE, start_serve

from rtengine.protocol._audio import rms


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env.update(extra)
    return env


def _report(stdout: bytes) -> dict[str, Any]:
    """The one JSON document ``--json`` prints (nothing else is on stdout)."""
    value = json.loads(stdout)
    assert isinstance(value, dict)
    return value


def _lines(report: dict[str, Any]) -> list[str]:
    return [f"{event['type']}  {event['detail']}" for event in report["events"]]


async def test_demo_runs_a_media_call_against_the_embedded_server(tmp_path: pathlib.Path) -> None:
    wav_out = tmp_path / "received.wav"
    with trio.fail_after(60):
        result = await trio.run_process(
            [*RTENGINE, "demo", "--json", "--text", "ping", "--seconds", "1", "--wav-out", str(wav_out)],
            capture_stdout=True,
            env=_env(),
        )
    report = _report(result.stdout)
    assert report["server"].startswith("http://127.0.0.1:")
    assert "response.output_audio_transcript.done  'You said: ping'" in _lines(report)
    timeline = report["timeline_ms"]
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
    assert (report["result"], report["status"], report["reason"]) == ("ok", 0, None)
    assert report["audio"]["frames_sent"] >= 45
    assert report["audio"]["frames_received"] >= 45
    assert report["audio"]["wav_out"] == wav_out.as_posix()
    with wave.open(str(wav_out), "rb") as wav:
        assert wav.getframerate() == 24000
        assert rms(wav.readframes(wav.getnframes())) > 0.01


async def test_demo_over_a_plain_websocket(tmp_path: pathlib.Path) -> None:
    with trio.fail_after(60):
        result = await trio.run_process(
            [*RTENGINE, "demo", "--json", "--transport", "websocket", "--text", "socket", "--wav-out", "out.wav"],
            capture_stdout=True,
            env=_env(),
            cwd=tmp_path,
        )
    report = _report(result.stdout)
    assert "response.output_audio_transcript.done  'You said: socket'" in _lines(report)
    assert any(line.startswith("response.output_audio.delta") for line in _lines(report))  # audio in events
    assert list(report["timeline_ms"])[:2] == ["connected", "session_update_sent"]


async def test_demo_sideband_delay_shows_in_the_timeline(tmp_path: pathlib.Path) -> None:
    with trio.fail_after(60):
        result = await trio.run_process(
            [*RTENGINE, "demo", "--json", "--sideband-delay", "0.4", "--wav-out", str(tmp_path / "out.wav")],
            capture_stdout=True,
            env=_env(),
        )
    timeline = _report(result.stdout)["timeline_ms"]
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
                [*RTENGINE, "call", "--base-url", base_url], capture_stderr=True, check=False, env=_env()
            )
            assert refused.returncode == 1
            assert b"401" in refused.stderr
            assert b"OPENAI_API_KEY" in refused.stderr
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
                capture_stderr=True,
                check=False,
                env=_env(OPENAI_API_KEY="sk-wrong"),
            )
            assert wrong.returncode == 1
            assert b"401" in wrong.stderr
            assert b"sk-wrong" not in wrong.stdout + wrong.stderr
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
    assert b"--call-status must be an HTTP error status" in status.stderr


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
        done, port = await run_on_a_busy_port(command)
    err = done.stderr.decode()
    assert done.returncode == 1
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    assert f"rtengine {command}: cannot listen on 127.0.0.1:{port}" in err
    assert done.stdout == b""  # no URL was printed for a server that never listened
