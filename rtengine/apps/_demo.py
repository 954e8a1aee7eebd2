"""``rtengine demo`` and ``rtengine call``: one conversation on the engine, its events and its timeline.

``demo`` runs against the embedded local realtime server (offline, ICE pinned to loopback); ``call`` against
any base URL (the real API with ``OPENAI_API_KEY``, or ``rtengine serve``). With ``--transport webrtc``
rtengine is the media peer: it sends a tone (or ``--wav-in``) over RTP, writes what it receives to
``--wav-out`` and controls the call over the sideband; with ``websocket`` the conversation runs on a plain
realtime websocket. ``--speak`` (websocket) says the user's turn instead of typing it: server VAD on, a
synthetic utterance (a 440 Hz tone, then silence) goes out as microphone frames, and the server's VAD turn
(speech started/stopped, the user item, its transcript) and automatic answer are printed.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

import trio

from .. import ConfigError, Conversation, RealtimeClient, RealtimeError, SessionConfig, TurnDetection
from .. import events as ev
from ..engine import open_conversation
from ..server import Faults, ServerOptions, open_local_server
from ..webrtc import Media, WavWriter, open_media_engine, tone_source, wav_source

__all__ = ["DemoOptions", "run_demo"]

Transport = Literal["webrtc", "websocket"]

#: ``--speak``: the spoken turn (a tone standing in for speech), then the silence that ends it, in 20 ms frames.
SPOKEN_MS = 800
PAUSE_MS = 700


@dataclass(frozen=True, slots=True)
class DemoOptions:
    text: str = "Hello from rtengine!"
    transport: Transport = "webrtc"
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    sideband_delay: float = 0.0
    model: str | None = None
    timeout: float = 30.0
    seconds: float = 3.0
    wav_in: str | None = None
    wav_out: str = "rtengine-demo.wav"
    loopback: bool = False
    ca_file: str | None = None
    speak: bool = False
    #: The embedded server's session cap in seconds (``ServerOptions.session_max_seconds``): a WebRTC call is then
    #: rotated (re-dialed) before each cap, ``rotate_margin`` being 40 % of the cap.
    session_cap: float | None = None


def tls_context(ca_file: str | None) -> ssl.SSLContext | None:
    """The TLS context trusting ``ca_file`` (PEM), or None for the system's CAs. Raises ``ConfigError``."""
    if ca_file is None:
        return None
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot use --ca-file {ca_file}: {exc}") from exc


def describe(event: object) -> str:
    """One line for an event, as the demo prints it."""
    match event:
        case ev.OutputTranscriptDelta(delta=delta):
            return f"transcript delta {delta!r}"
        case ev.OutputTranscriptDone(transcript=transcript):
            return f"transcript done {transcript!r}"
        case ev.SpeechStarted(audio_start_ms=start):
            return f"speech started (audio {start} ms)"
        case ev.SpeechStopped(audio_end_ms=end):
            return f"speech stopped (audio {end} ms)"
        case ev.InputTranscriptDelta(delta=delta):
            return f"input transcript delta {delta!r}"
        case ev.InputTranscriptDone(transcript=transcript):
            return f"input transcript {transcript!r}"
        case ev.ItemAdded(item=item):
            return f"item added ({item.get('type')}, {item.get('role', '-')})"
        case ev.AudioOut(audio=audio):
            return f"audio out ({len(audio) * 3 // 4} bytes)"
        case ev.Error(message=message, code=code, fatal=fatal):
            return f"{'fatal ' if fatal else ''}error {code or ''}: {message}"
        case ev.Closed(reason=reason):
            return f"closed ({reason})"
        case ev.SessionRotated(old_call_id=old, new_call_id=new, gap_ms=gap_ms):
            return f"session rotated: call {old} -> {new} (no input written for {gap_ms:.0f} ms)"
        case ev.UnknownEvent(type=event_type):
            return event_type
        case _:
            return type(event).__name__


async def run_demo(options: DemoOptions, out: Callable[[str], None] = print) -> int:
    """Run one conversation and print it; returns the process exit status. Bounded by ``options.timeout``."""
    embedded = options.base_url is None
    if options.speak and options.transport != "websocket":
        raise ConfigError("--speak needs --transport websocket (the audio goes out as input_audio_buffer.append)")
    if options.session_cap is not None and not (options.session_cap > 0 and embedded):
        raise ConfigError("--session-cap needs a number of seconds > 0, and the embedded local server")
    with trio.fail_after(options.timeout):
        # One media engine (the trio-asyncio loop) for the process; pinned to loopback when both peers are here.
        async with AsyncExitStack() as stack:
            engine = await stack.enter_async_context(open_media_engine(loopback=embedded or options.loopback))
            base_url = options.base_url
            api_key = options.api_key or os.environ.get("OPENAI_API_KEY")
            if base_url is None:
                api_key = api_key or "sk-local-demo"
                faults = Faults(sideband_accept_delay=options.sideband_delay)
                cap = options.session_cap or 3600.0  # the API's cap, the server's default
                server_options = ServerOptions(api_key=api_key, faults=faults, audio_ms=1000, session_max_seconds=cap)
                server = await stack.enter_async_context(open_local_server(server_options, peers=engine))
                base_url = server.base_url
                out(f"local realtime server at {base_url}")
            if api_key is None:
                raise ConfigError("realtime conversation requires API key auth: set OPENAI_API_KEY")
            client = await stack.enter_async_context(
                RealtimeClient(base_url, api_key=api_key, ssl_context=tls_context(options.ca_file))
            )
            session = SessionConfig(
                model=options.model or SessionConfig().model,
                instructions="You are the rtengine demo. Answer in one short sentence.",
                **_speaking() if options.speak else {},
            )
            media = None
            if options.transport == "webrtc":
                source = wav_source(options.wav_in) if options.wav_in else tone_source(440.0, options.seconds)
                sink = WavWriter(options.wav_out)
                stack.callback(sink.close)
                media = Media(engine, source=source, sink=sink, connect_timeout=min(10.0, options.timeout))
            return await _converse(client, session, media, options, out)


async def _converse(
    client: RealtimeClient,
    session: SessionConfig,
    media: Media | None,
    options: DemoOptions,
    out: Callable[[str], None],
) -> int:
    status = 1
    block = (
        open_conversation(client, session, media=media)
        if options.session_cap is None
        else open_conversation(client, session, media=media, rotate_margin=options.session_cap * 0.4)
    )
    async with block as conv:
        if conv.call_id is not None:
            out(f"call {conv.call_id}: SDP answer received ({len(conv.answer_sdp or '')} bytes)")
        if options.speak:
            await _say(conv)
            out(f"> (speaking: {SPOKEN_MS} ms of a 440 Hz tone, then {PAUSE_MS} ms of silence; server VAD answers)")
        else:
            await conv.send_text(options.text)
            await conv.request_response()
            out(f"> {options.text}")
        async for event in conv.events:
            out(f"  {(trio.current_time() - conv.started_at) * 1000:8.1f} ms  {describe(event)}")
            if isinstance(event, ev.ResponseDone):
                status = 0
                break
        if conv.media is not None and status == 0:
            with trio.move_on_after(options.seconds + 2.0):  # let the source play out, and the reply be heard
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_print_events, conv, out, nursery.cancel_scope)
                    await conv.media.source_done.wait()
                    nursery.cancel_scope.cancel()
            await trio.sleep(0.5)
    out("")
    out("phase                  ms since start")
    for phase, seconds in sorted(conv.timeline.items(), key=lambda item: item[1]):
        out(f"{phase:<22} {seconds * 1000:10.1f}")
    stats = conv.stats
    out(
        f"events: frames received {stats.frames_received}, texts sent {stats.texts_sent}, "
        f"events dropped {stats.events_dropped}, join attempts {stats.join_attempts}, rotations {stats.rotations}"
    )
    if conv.media is not None:
        out(
            f"audio: frames sent {conv.media.frames_sent}, frames received {conv.media.frames_received}, "
            f"dropped {conv.media.frames_dropped + conv.media.track.dropped_bytes // 960}; "
            f"received audio written to {options.wav_out}"
        )
    out(json.dumps({"timeline_ms": {phase: round(s * 1000, 3) for phase, s in conv.timeline.items()}}))
    return status


async def _print_events(conv: Conversation, out: Callable[[str], None], done: trio.CancelScope) -> None:
    async for event in conv.events:
        out(f"  {(trio.current_time() - conv.started_at) * 1000:8.1f} ms  {describe(event)}")
    done.cancel()  # the conversation ended


def _speaking() -> dict[str, Any]:
    """The session fields of a spoken turn: server VAD that answers on its own, and input transcription."""
    detection = TurnDetection(create_response=True, interrupt_response=True)
    return {"turn_detection": detection, "transcription_model": "gpt-realtime-whisper"}


async def _say(conv: Conversation) -> None:
    """Queue the spoken turn as microphone frames (the audio queue holds them all; none is dropped)."""
    speech = [frame async for frame in tone_source(440.0, SPOKEN_MS / 1000)]  # 20 ms frames
    for frame in speech + [bytes(len(speech[0]))] * (PAUSE_MS // 20):
        if not conv.send_audio(frame):
            raise RealtimeError("the spoken turn did not fit the audio queue")


def main(options: DemoOptions) -> int:
    try:
        return trio.run(run_demo, options)
    except RealtimeError as exc:
        print(f"rtengine: {exc}")
        return 1
    except trio.TooSlowError:
        print(f"rtengine: timed out after {options.timeout:g} s")
        return 1
