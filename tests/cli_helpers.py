"""Helpers for tests that run the ``rtengine`` command in real subprocesses."""

import functools
import os
import pty
import re
import subprocess
from typing import Any

import trio
from helpers import RTENGINE


def cli_env(**extra: str) -> dict[str, str]:
    """This process's environment without ``OPENAI_API_KEY`` (a developer's key must not leak into tests)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env.update(extra)
    return env


async def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """``rtengine ARGS`` to its end; stdout and stderr captured, any exit status accepted."""
    return await trio.run_process(
        [*RTENGINE, *args], capture_stdout=True, capture_stderr=True, check=False, env=cli_env(), **kwargs
    )


async def run_on_a_busy_port(*args: str) -> tuple[subprocess.CompletedProcess[bytes], int]:
    """``rtengine ARGS --port P`` to its end (as ``run_cli``) while this process listens on 127.0.0.1:P; the
    result and P."""
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with listener:
        port = listener.socket.getsockname()[1]
        return await run_cli(*args, "--port", str(port)), port


#: A log line as the command formats it: ``LEVEL:logger:message``.
LOG_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):([\w.]+):")


def one_line_error(stderr: bytes, command: str) -> str:
    """The single line ``rtengine COMMAND: …`` on stderr besides log lines (asserted: one, no traceback)."""
    text = stderr.decode()
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if not LOG_LINE.match(line)]
    assert len(errors) == 1, text
    assert errors[0].startswith(f"rtengine {command}: "), text
    return errors[0]


async def start_cli(nursery: trio.Nursery, *args: str) -> trio.Process:
    """Start ``rtengine ARGS`` in ``nursery`` with stdout and stderr piped."""
    run = functools.partial(
        trio.run_process,
        [*RTENGINE, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        check=False,
        env=cli_env(),
    )
    process: trio.Process = await nursery.start(run)
    return process


async def read_until(stream: trio.abc.ReceiveStream, marker: bytes, seen: bytearray) -> None:
    """Append what ``stream`` sends to ``seen`` until ``marker`` is in it."""
    while marker not in seen:
        chunk = await stream.receive_some()
        assert chunk, f"the stream ended before {marker!r}: {bytes(seen)[-2000:]!r}"
        seen += chunk


async def read_all(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
    """Append everything ``stream`` sends to ``into`` until it ends."""
    while chunk := await stream.receive_some():
        into += chunk


async def run_on_a_terminal(*args: str) -> tuple[int, bytes]:
    """``rtengine ARGS`` with stdout on a pseudo-terminal: its exit status and what the terminal showed."""
    leader, follower = pty.openpty()
    shown = bytearray()
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            functools.partial(
                trio.run_process,
                [*RTENGINE, *args],
                stdout=follower,
                stderr=subprocess.DEVNULL,
                check=False,
                env=cli_env(COLUMNS="120"),
            )
        )
        os.close(follower)
        terminal = trio.lowlevel.FdStream(leader)
        try:
            while True:
                try:
                    chunk = await terminal.receive_some()
                except trio.BrokenResourceError:  # EIO: the terminal's last writer is gone
                    break
                if not chunk:
                    break
                shown += chunk
        finally:
            await terminal.aclose()
        status = await process.wait()
    return status, bytes(shown)
