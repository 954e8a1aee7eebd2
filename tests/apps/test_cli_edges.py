"""The CLI's edges, as a newcomer (and a hostile pipe) meets them (issue 13): ordinary mistakes are usage errors or one
line, ordinary signals end the run cleanly — each in a real subprocess (the embedded local server, loopback only),
each bounded in time."""

import json
import os
import pathlib
import signal

import pytest
import trio
from cli_helpers import cli_env, one_line_error, read_all, run_cli, start_cli
from helpers import RTENGINE, start_serve

#: A ``demo`` run on this loaded machine takes a few seconds; a hang is far beyond this.
BOUND = 90


async def test_an_uncreatable_wav_out_is_one_line_not_a_traceback() -> None:
    with trio.fail_after(BOUND):
        done = await run_cli("demo", "--wav-out", "/proc/rtengine-review.wav", "--seconds", "1")
    stderr = done.stderr.decode()
    assert "Traceback" not in stderr, stderr[-1500:]
    assert done.returncode in (1, 2)


@pytest.mark.parametrize("seconds", ["inf", "nan"])
async def test_a_non_finite_seconds_is_a_usage_error(seconds: str) -> None:
    with trio.fail_after(BOUND):
        done = await run_cli("demo", "--seconds", seconds)
    stderr = done.stderr.decode()
    assert "Traceback" not in stderr, stderr[-1500:]
    assert done.returncode == 2


async def test_a_negative_sideband_delay_is_a_usage_error() -> None:
    with trio.fail_after(BOUND):
        done = await run_cli("demo", "--sideband-delay", "-1")
    stderr = done.stderr.decode()
    assert "Traceback" not in stderr, stderr[-1500:]
    assert done.returncode == 2


async def test_a_huge_seconds_does_not_outlive_the_timeout() -> None:
    with trio.move_on_after(60) as waited:
        await run_cli("demo", "--seconds", "1e9", "--timeout", "3", "--json")
    assert not waited.cancelled_caught, "demo --seconds 1e9 --timeout 3 still running after 60 s"


async def test_a_closed_stdout_is_not_a_traceback() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (head -1) has gone
    try:
        with trio.fail_after(BOUND):
            done = await trio.run_process(
                [*RTENGINE, "demo", "--seconds", "1"],
                stdout=write_end,
                capture_stderr=True,
                check=False,
                env=cli_env(),
            )
    finally:
        os.close(write_end)
    stderr = done.stderr.decode()
    assert "Traceback" not in stderr, stderr[-1500:]


async def test_an_early_ctrl_c_exits_130_without_a_traceback() -> None:
    err = bytearray()
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            process = await start_cli(nursery, "demo", "--seconds", "1")
            assert process.stdout is not None
            assert process.stderr is not None
            nursery.start_soon(read_all, process.stdout, bytearray())
            nursery.start_soon(read_all, process.stderr, err)
            await trio.sleep(0.2)
            process.send_signal(signal.SIGINT)
    assert "Traceback" not in err.decode(), err.decode()[-1500:]
    assert process.returncode == 130


async def test_sigterm_mid_call_prints_the_summary() -> None:
    out = bytearray()
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            process = await start_cli(nursery, "demo", "--json", "--seconds", "30", "--timeout", "60")
            assert process.stdout is not None
            assert process.stderr is not None
            nursery.start_soon(read_all, process.stdout, out)
            nursery.start_soon(read_all, process.stderr, bytearray())
            await trio.sleep(8)  # well into the call on this machine (imports take 1-3 s)
            process.send_signal(signal.SIGTERM)
    assert process.returncode != -signal.SIGTERM, "killed by SIGTERM: no summary, the conversation not closed"
    assert json.loads(out)["result"] != "ok"


async def test_a_refused_sideband_join_is_one_line_and_a_json_summary(tmp_path: pathlib.Path) -> None:
    with trio.fail_after(BOUND + 30):
        async with trio.open_nursery() as nursery:
            serve, base_url = await start_serve(nursery, "--loopback", "--websocket-status", "500", env=cli_env())
            args = ("--base-url", base_url, "--loopback", "--timeout", "20", "--json")
            done = await run_cli("call", *args, "--wav-out", str(tmp_path / "out.wav"))
            serve.send_signal(signal.SIGINT)
    stderr = done.stderr.decode()
    assert "Traceback" not in stderr, stderr[-1500:]
    assert done.returncode == 1
    assert json.loads(done.stdout)["result"] == "failed"


async def test_a_wav_out_write_failure_mid_call_is_one_line_and_exit_1() -> None:
    with trio.fail_after(BOUND):
        done = await run_cli("demo", "--json", "--seconds", "1", "--wav-out", "/dev/full")  # ENOSPC on every write
    line = one_line_error(done.stderr, "demo")
    assert "--wav-out /dev/full" in line
    assert "No space left on device" in line
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["result"] == "failed"
    assert report["audio"]["wav_out"] is None


async def test_a_wav_out_check_leaves_no_file_when_no_audio_arrives(tmp_path: pathlib.Path) -> None:
    wav = tmp_path / "never.wav"
    with trio.fail_after(BOUND):
        done = await run_cli("call", "--base-url", "http://127.0.0.1:9", "--timeout", "5", "--wav-out", str(wav))
    assert done.returncode == 1
    assert not wav.exists()


async def test_web_refuses_an_impossible_port_as_a_usage_error() -> None:
    with trio.fail_after(BOUND):
        done = await run_cli("web", "--port", "99999")
    assert done.returncode == 2
    assert "0..65535" in done.stderr.decode()


@pytest.mark.parametrize(("path", "says"), [("/tmp", "is a directory"), ("/dev/zero", "not a regular file")])
async def test_a_wav_in_that_is_not_a_file_says_what_it_is(path: str, says: str) -> None:
    with trio.fail_after(BOUND):
        done = await run_cli("demo", "--wav-in", path)
    assert done.returncode == 2
    line = one_line_error(done.stderr, "demo")
    assert says in line
    assert "no such file" not in line


async def test_the_help_states_the_bounds() -> None:
    with trio.fail_after(BOUND):
        done = await run_cli("demo", "--help")
    text = " ".join(done.stdout.decode().split())
    assert "at most 3600" in text
    assert "0 to 60" in text
