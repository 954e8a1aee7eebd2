"""``rtengine call`` / ``demo`` tell the truth (issue 13, findings 1 and 2): exit status 0 only when the
conversation did what was asked, 1 with one line on stderr otherwise, 2 for usage errors found before any network
work, 130 on Ctrl-C after a clean close, and the summary on every ending. Real subprocesses over loopback."""

import pathlib
import signal

import pytest
import trio
from cli_helpers import cli_env, one_line_error, read_all, read_until, run_cli, start_cli
from helpers import start_serve


async def test_a_call_whose_media_never_connects_exits_1_with_its_reason_and_the_summary(
    tmp_path: pathlib.Path,
) -> None:
    wav_out = tmp_path / "never.wav"
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            serve, base_url = await start_serve(nursery, "--media-unreachable", "--loopback", env=cli_env())
            done = await run_cli(
                "call", "--base-url", base_url, "--loopback", "--seconds", "1", "--timeout", "6",
                "--wav-out", str(wav_out),
            )  # fmt: skip
            serve.send_signal(signal.SIGINT)
            assert await serve.wait() == 0
    out = done.stdout.decode()
    assert done.returncode == 1, out
    one_line_error(done.stderr, "call")
    assert "phase                  ms since start" in out  # the summary is printed on failure too
    assert "result: failed: " in out
    assert not wav_out.exists()  # no empty WAV pretends audio was received


async def test_a_call_whose_server_dies_mid_call_exits_1(tmp_path: pathlib.Path) -> None:
    out, err = bytearray(), bytearray()
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            serve, base_url = await start_serve(nursery, "--loopback", "--delta-interval", "0", env=cli_env())
            call = await start_cli(
                nursery, "call", "--base-url", base_url, "--loopback", "--seconds", "30", "--timeout", "60",
                "--wav-out", str(tmp_path / "dies.wav"),
            )  # fmt: skip
            assert call.stdout is not None
            assert call.stderr is not None
            nursery.start_soon(read_all, call.stderr, err)
            await read_until(call.stdout, b"response.done", out)
            serve.kill()  # the server dies: no close frame, no hang-up
            await serve.wait()
            await read_all(call.stdout, out)
            status = await call.wait()
    assert status == 1, bytes(out).decode()
    one_line_error(bytes(err), "call")
    assert "result: failed: " in bytes(out).decode()


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--wav-in", "missing.wav", "--wav-in missing.wav: no such file"),
        ("--wav-in", "not-audio.wav", "--wav-in not-audio.wav: not an audio file"),
        ("--wav-out", "no-such-dir/out.wav", "--wav-out no-such-dir/out.wav: no such directory"),
        ("--wav-out", ".", "--wav-out .: is a directory"),
    ],
)
async def test_bad_audio_files_are_usage_errors_found_before_any_network_work(
    tmp_path: pathlib.Path, flag: str, value: str, says: str
) -> None:
    (tmp_path / "not-audio.wav").write_text("this is not audio\n")
    with trio.fail_after(60):
        done = await run_cli("demo", flag, value, cwd=tmp_path)
    assert done.returncode == 2
    assert says in one_line_error(done.stderr, "demo")
    assert done.stdout == b""  # the embedded server was never started (its URL is the demo's first line)


@pytest.mark.parametrize("command", ["serve", "web"])
@pytest.mark.parametrize("host", ["rtengine-no-such-host.invalid", "192.0.2.1"])
async def test_an_unbindable_host_is_one_line_on_stderr_and_status_1(command: str, host: str) -> None:
    with trio.fail_after(60):
        done = await run_cli(command, "--host", host, "--port", "0")
    assert done.returncode == 1
    assert f"rtengine {command}: cannot listen on {host}:0: " in one_line_error(done.stderr, command)
    assert done.stdout == b""


@pytest.mark.parametrize(("command", "transport"), [("call", "webrtc"), ("call", "websocket"), ("demo", "webrtc")])
async def test_ctrl_c_closes_the_conversation_prints_the_summary_and_exits_130(
    tmp_path: pathlib.Path, command: str, transport: str
) -> None:
    out, err = bytearray(), bytearray()
    # call: a slow reply (2 s between deltas) keeps the conversation going when Ctrl-C comes; demo: a 30 s source
    args = ["--timeout", "60", "--seconds", "30", "--transport", transport, "--wav-out", str(tmp_path / "out.wav")]
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            serve = None
            if command == "call":
                serve, base_url = await start_serve(nursery, "--loopback", "--delta-interval", "2", env=cli_env())
                args += ["--base-url", base_url, "--loopback"]
            process = await start_cli(nursery, command, *args)
            assert process.stdout is not None
            assert process.stderr is not None
            nursery.start_soon(read_all, process.stderr, err)
            await read_until(process.stdout, b"response.created", out)
            process.send_signal(signal.SIGINT)
            await read_all(process.stdout, out)
            status = await process.wait()
            if serve is not None:
                serve.send_signal(signal.SIGINT)
                assert await serve.wait() == 0
    text = bytes(out).decode()
    assert status == 130, text
    assert "rtengine.closed  requested" in text  # the conversation was closed, not abandoned
    assert "phase                  ms since start" in text
    assert "result: interrupted" in text
    assert "interrupted (Ctrl-C)" in one_line_error(bytes(err), command)
    assert "KeyboardInterrupt" not in bytes(err).decode()
