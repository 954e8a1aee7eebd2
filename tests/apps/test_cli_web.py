"""``rtengine web``'s command line: the bind warning, ``--workers`` arguments, a busy port with several workers."""

import os
import signal
import subprocess
from functools import partial

import httpx
import pytest
import trio
from cli_helpers import run_on_a_busy_port
from helpers import RTENGINE

WARNING = "WARNING: rtengine web is listening on 0.0.0.0"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.1", False), ("0.0.0.0", True)])
async def test_any_host_but_loopback_gets_a_loud_warning(host: str, warned: bool) -> None:
    errors = bytearray()
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            command = [*RTENGINE, "web", "--host", host, "--port", "0"]
            run = partial(trio.run_process, command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
            process: trio.Process = await nursery.start(partial(run, env=_env()))
            assert process.stdout is not None
            assert process.stderr is not None

            async def collect(stream: trio.abc.ReceiveStream) -> None:
                async for chunk in stream:
                    errors.extend(chunk)

            nursery.start_soon(collect, process.stderr)
            line = b""
            while not line.endswith(b"\n"):
                line += await process.stdout.receive_some(1)
            port = int(line.decode().split(" on ", 1)[1].split("/", 3)[2].rsplit(":", 1)[1])
            async with httpx.AsyncClient() as http:
                page = await http.get(f"http://127.0.0.1:{port}/")
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0
    assert page.status_code == 200
    assert (WARNING in errors.decode()) is warned
    assert "Traceback" not in errors.decode()


async def test_bad_worker_arguments_are_usage_errors() -> None:
    with trio.fail_after(60):
        done = await trio.run_process(
            [*RTENGINE, "web", "--workers", "0"], capture_stdout=True, capture_stderr=True, check=False, env=_env()
        )
    assert done.returncode == 2
    assert done.stderr.decode().count("\n") == 1
    assert "--workers" in done.stderr.decode()


async def test_a_busy_port_with_several_workers_is_one_line() -> None:
    with trio.fail_after(60):
        done, port = await run_on_a_busy_port("web", "--workers", "2")
    err = done.stderr.decode()
    assert done.returncode == 1
    assert err.count("\n") == 1, err
    assert f"rtengine web: cannot listen on 127.0.0.1:{port}" in err
    assert done.stdout == b""
