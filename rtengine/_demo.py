"""``rtengine demo``: one WebRTC call against the embedded local server (or any base URL), step by step.

Creates an aiortc offer, creates the call (``POST /realtime/calls``), joins the sideband, sends
``session.update``, one user text and ``response.create``, prints the events as they arrive and a timeline
(ms since the call started). This first version drives the adapters directly; the engine will take over its
internals without changing the command.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import httpx
import trio

from . import events as ev
from ._calls import multipart_body
from ._errors import ConfigError, RealtimeError
from ._headers import bearer
from ._http import create_call
from ._parse import parse_server_event
from ._payloads import response_create, session_update, user_text
from ._peer import open_peer_service
from ._session import SessionConfig
from ._urls import calls_url, sideband_url
from ._ws import open_socket
from .server import Faults, ServerOptions, open_local_server

__all__ = ["DemoOptions", "run_demo"]

log = logging.getLogger("rtengine")


@dataclass(frozen=True, slots=True)
class DemoOptions:
    text: str = "Hello from rtengine!"
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    sideband_delay: float = 0.0
    timeout: float = 30.0


def _describe(event: object) -> str:
    match event:
        case ev.OutputTranscriptDelta(delta=delta):
            return f"transcript delta {delta!r}"
        case ev.OutputTranscriptDone(transcript=transcript):
            return f"transcript done {transcript!r}"
        case ev.ServerErrorEvent(message=message, code=code):
            return f"error {code}: {message}"
        case ev.UnknownEvent(type=event_type):
            return event_type
        case ev.ProtocolWarning(detail=detail):
            return f"protocol warning: {detail}"
        case _:
            return type(event).__name__


async def run_demo(options: DemoOptions, out: Callable[[str], None] = print) -> int:
    """Run the demo; returns the process exit status. Every step is bounded by ``options.timeout``."""
    timeline: list[tuple[str, float]] = []
    with trio.fail_after(options.timeout):
        async with AsyncExitStack() as stack:
            peers = await stack.enter_async_context(open_peer_service())
            base_url = options.base_url
            api_key = options.api_key or os.environ.get("OPENAI_API_KEY")
            if base_url is None:
                api_key = api_key or "sk-local-demo"
                server_options = ServerOptions(
                    api_key=api_key, faults=Faults(sideband_accept_delay=options.sideband_delay)
                )
                server = await stack.enter_async_context(open_local_server(server_options, peers=peers))
                base_url = server.base_url
                out(f"local realtime server at {base_url}")
            if api_key is None:
                raise ConfigError("realtime conversation requires API key auth: set OPENAI_API_KEY or --api-key")
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=10.0))
            start = trio.current_time()

            def mark(phase: str) -> None:
                timeline.append((phase, (trio.current_time() - start) * 1000))

            peer = await peers.create_offer()
            stack.push_async_callback(peer.aclose)
            mark("offer_created")
            session = SessionConfig(instructions="You are the rtengine demo. Answer in one sentence.")
            body = multipart_body(peer.local_sdp, session.call_session_json())
            answer = await create_call(http, calls_url(base_url), body, bearer(api_key))
            mark("answer")
            out(f"call {answer.call_id}: SDP answer received ({len(answer.sdp)} bytes)")
            async with open_socket(sideband_url(base_url, answer.call_id), bearer(api_key)) as sock:
                mark("sideband_joined")
                await sock.send(session_update(session))
                await sock.send(user_text(options.text))
                await sock.send(response_create())
                out(f"> {options.text}")
                while True:
                    frame = await sock.receive()
                    if frame is None:
                        out(f"sideband closed by the server ({sock.close_code})")
                        return 1
                    event = parse_server_event(frame)
                    out(f"  {(trio.current_time() - start) * 1000:8.1f} ms  {_describe(event)}")
                    if isinstance(event, ev.SessionUpdated) and "session_updated" not in dict(timeline):
                        mark("session_updated")
                    if isinstance(event, ev.ServerErrorEvent) and event.fatal:
                        out(f"server error: {event.message}")
                        return 1
                    if isinstance(event, ev.ResponseDone):
                        mark("response_done")
                        break
    out("")
    out("phase              ms since start")
    for phase, ms in timeline:
        out(f"{phase:<18} {ms:10.1f}")
    out(json.dumps({"timeline_ms": {phase: round(ms, 3) for phase, ms in timeline}}))
    return 0


def main(options: DemoOptions) -> int:
    try:
        return trio.run(run_demo, options)
    except RealtimeError as exc:
        print(f"rtengine demo failed: {exc}")
        return 1
    except trio.TooSlowError:
        print(f"rtengine demo timed out after {options.timeout:g} s")
        return 1
