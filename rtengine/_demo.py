"""``rtengine demo`` and ``rtengine call``: one conversation on the engine, its events and its timeline.

``demo`` runs against the embedded local realtime server (offline); ``call`` against any base URL (the real
API with ``OPENAI_API_KEY``, or ``rtengine serve``). With ``--transport webrtc`` an aiortc offer is created and
the conversation is a WebRTC call controlled over the sideband (rtengine is not yet the media peer, so the
answer is not applied); with ``websocket`` the conversation runs on a plain realtime websocket.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Literal

import trio

from . import events as ev
from ._client import RealtimeClient
from ._conversation import open_conversation
from ._errors import ConfigError, RealtimeError
from ._peer import open_peer_service
from ._session import SessionConfig
from .server import Faults, ServerOptions, open_local_server

__all__ = ["DemoOptions", "run_demo"]

Transport = Literal["webrtc", "websocket"]


@dataclass(frozen=True, slots=True)
class DemoOptions:
    text: str = "Hello from rtengine!"
    transport: Transport = "webrtc"
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    sideband_delay: float = 0.0
    model: str | None = None
    timeout: float = 30.0


def describe(event: object) -> str:
    """One line for an event, as the demo prints it."""
    match event:
        case ev.OutputTranscriptDelta(delta=delta):
            return f"transcript delta {delta!r}"
        case ev.OutputTranscriptDone(transcript=transcript):
            return f"transcript done {transcript!r}"
        case ev.AudioOut(audio=audio):
            return f"audio out ({len(audio) * 3 // 4} bytes)"
        case ev.Error(message=message, code=code, fatal=fatal):
            return f"{'fatal ' if fatal else ''}error {code or ''}: {message}"
        case ev.Closed(reason=reason):
            return f"closed ({reason})"
        case ev.UnknownEvent(type=event_type):
            return event_type
        case _:
            return type(event).__name__


async def run_demo(options: DemoOptions, out: Callable[[str], None] = print) -> int:
    """Run one conversation and print it; returns the process exit status. Bounded by ``options.timeout``."""
    with trio.fail_after(options.timeout):
        async with AsyncExitStack() as stack:
            peers = await stack.enter_async_context(open_peer_service())
            base_url = options.base_url
            api_key = options.api_key or os.environ.get("OPENAI_API_KEY")
            if base_url is None:
                api_key = api_key or "sk-local-demo"
                faults = Faults(sideband_accept_delay=options.sideband_delay)
                server = await stack.enter_async_context(
                    open_local_server(ServerOptions(api_key=api_key, faults=faults), peers=peers)
                )
                base_url = server.base_url
                out(f"local realtime server at {base_url}")
            if api_key is None:
                raise ConfigError("realtime conversation requires API key auth: set OPENAI_API_KEY")
            client = await stack.enter_async_context(RealtimeClient(base_url, api_key=api_key))
            session = SessionConfig(
                model=options.model or SessionConfig().model,
                instructions="You are the rtengine demo. Answer in one short sentence.",
            )
            offer_sdp = None
            if options.transport == "webrtc":
                peer = await peers.create_offer()
                stack.push_async_callback(peer.aclose)
                offer_sdp = peer.local_sdp
            status = await _converse(client, session, offer_sdp, options.text, out)
    return status


async def _converse(
    client: RealtimeClient, session: SessionConfig, offer_sdp: str | None, text: str, out: Callable[[str], None]
) -> int:
    status = 1
    async with open_conversation(client, session, offer_sdp=offer_sdp) as conv:
        if conv.call_id is not None:
            out(f"call {conv.call_id}: SDP answer received ({len(conv.answer_sdp or '')} bytes)")
        await conv.send_text(text)
        await conv.request_response()
        out(f"> {text}")
        async for event in conv.events:
            out(f"  {(trio.current_time() - conv.started_at) * 1000:8.1f} ms  {describe(event)}")
            if isinstance(event, ev.ResponseDone):
                status = 0
                break
    out("")
    out("phase                  ms since start")
    for phase, seconds in conv.timeline.items():
        out(f"{phase:<22} {seconds * 1000:10.1f}")
    stats = conv.stats
    out(
        f"frames received {stats.frames_received}, texts sent {stats.texts_sent}, "
        f"audio frames dropped {stats.audio_frames_dropped}, join attempts {stats.join_attempts}"
    )
    out(json.dumps({"timeline_ms": {phase: round(s * 1000, 3) for phase, s in conv.timeline.items()}}))
    return status


def main(options: DemoOptions) -> int:
    try:
        return trio.run(run_demo, options)
    except RealtimeError as exc:
        print(f"rtengine: {exc}")
        return 1
    except trio.TooSlowError:
        print(f"rtengine: timed out after {options.timeout:g} s")
        return 1
