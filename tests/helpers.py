"""Small helpers for tests that talk to the local server over loopback."""

import functools
import json
import subprocess
import sys
from typing import Any

import httpx
import trio

from rtengine import SessionConfig
from rtengine.protocol import multipart_body, sideband_url
from rtengine.server import LocalServer

#: The ``rtengine`` command, run by this interpreter.
RTENGINE = [sys.executable, "-m", "rtengine"]


async def start_serve(nursery: trio.Nursery, *args: str, env: dict[str, str] | None = None) -> tuple[trio.Process, str]:
    """Start ``rtengine serve --port 0 ARGS`` in ``nursery``; return the process and the base URL it printed."""
    command = [*RTENGINE, "serve", "--port", "0", *args]
    run = functools.partial(trio.run_process, command, stdout=subprocess.PIPE, check=False, env=env)
    process: trio.Process = await nursery.start(run)
    assert process.stdout is not None
    line = b""
    while not line.endswith(b"\n"):
        line += await process.stdout.receive_some(1)
    return process, line.decode().strip()


async def create_call(server: LocalServer, offer_sdp: str, session: SessionConfig | None = None) -> httpx.Response:
    body = multipart_body(offer_sdp, (session or SessionConfig()).call_session_json())
    async with httpx.AsyncClient() as http:
        return await http.post(
            server.base_url + "/realtime/calls", content=body.content, headers={"content-type": body.content_type}
        )


def call_id_of(response: httpx.Response) -> str:
    return str(response.headers["location"].rsplit("/", 1)[1])


def sideband(server: LocalServer, call_id: str) -> str:
    return sideband_url(server.base_url, call_id)


def direct(server: LocalServer, model: str = "gpt-realtime") -> str:
    return server.base_url.replace("http://", "ws://") + f"/realtime?model={model}"


async def read_until(sock: Any, event_type: str) -> list[dict[str, Any]]:
    """Server events read from ``sock`` (a ``RealtimeSocket``) up to and including the first of ``event_type``.
    (Every event a local server sends is checked against the SDK's types by the suite-wide fixture.)"""
    seen: list[dict[str, Any]] = []
    while True:
        seen.append(loads(await sock.receive()))
        if seen[-1]["type"] == event_type:
            return seen


def loads(frame: object) -> dict[str, Any]:
    assert isinstance(frame, str), frame
    value = json.loads(frame)
    assert isinstance(value, dict)
    return value


def exception_chain(exc: BaseException | None) -> str:
    """Everything an exception carries: str, repr, args, and its cause/context chain."""
    seen = ""
    while exc is not None:
        seen += f"{exc}|{exc!r}|{exc.args!r}|"
        exc = exc.__cause__ or exc.__context__
    return seen
