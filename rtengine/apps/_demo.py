"""``rtengine demo`` and ``rtengine call``: one conversation on the engine, its events, its timeline, its verdict.

``demo`` runs against the embedded local realtime server (offline, ICE pinned to loopback); ``call`` against
any base URL (the real API with ``OPENAI_API_KEY`` or ``--api-key``, or ``rtengine serve``). With ``--transport
webrtc`` rtengine is the media peer: it sends a tone (or ``--wav-in``, any audio file PyAV reads, resampled to
PCM16 mono 24 kHz) over RTP, writes what it receives to ``--wav-out`` and controls the call over the sideband;
with ``websocket`` the conversation runs on a plain realtime websocket and ``--wav-out`` receives the output audio
deltas. ``--speak`` (websocket) says the user's turn instead of typing it: server VAD on, a synthetic utterance (a
440 Hz tone, then silence) goes out as microphone frames, and the server's VAD turn and automatic answer are
reported.

Inputs are checked before any network work (:func:`prepare`): a bad ``--wav-in``, an unwritable ``--wav-out``, a
``--base-url`` with an invalid port, text no request can carry (argv bytes that are not UTF-8), or options that do
not combine are usage errors (exit status 2). The run's
verdict (:mod:`rtengine.apps._demo_follow`): 0 when the conversation did what was asked, 1 with a one-line reason
on stderr otherwise, 130 on Ctrl-C and 143 on SIGTERM — each closes the conversation (its ``Closed`` is reported).
The summary is printed on every ending. ``--wav-out`` is checked by opening it before any network work, written
from the first audio frame received (no audio: no file), and a write failure mid-call fails the run with one line
(:mod:`rtengine.apps._cli_wav`).
"""

from __future__ import annotations

import math
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

import trio

from .. import ConfigError, Conversation, RealtimeClient, RealtimeError, SessionConfig, TurnDetection
from ..engine import open_conversation
from ..server import Faults, ServerOptions, open_local_server
from ..webrtc import Media, decode_audio_file, open_media_engine, tone_source
from ._cli_args import UsageError, check_base_url, check_wav_out
from ._cli_report import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, Report, Summary
from ._cli_wav import WavOut
from ._demo_follow import FRAME_BYTES, Follow, drain, follow

__all__ = ["NO_API_KEY", "DemoOptions", "prepare", "run_demo", "tls_context"]

Transport = Literal["webrtc", "websocket"]

#: ``--speak``: the spoken turn (a tone standing in for speech), then the silence that ends it, in 20 ms frames.
SPOKEN_MS = 800
PAUSE_MS = 700
#: The bearer token ``call`` sends when no API key is given, for a server that needs none (``rtengine serve``
#: without ``--api-key``). A server that needs a key answers 401, and the reason says how to give one.
NO_API_KEY = "rtengine-no-api-key"


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
    wav_out: str | None = "rtengine-demo.wav"
    loopback: bool = False
    ca_file: str | None = None
    speak: bool = False
    #: The embedded server's session cap in seconds (``ServerOptions.session_max_seconds``): a WebRTC call is then
    #: rotated (re-dialed) before each cap, ``rotate_margin`` being 40 % of the cap.
    session_cap: float | None = None

    @property
    def command(self) -> str:
        return "demo" if self.base_url is None else "call"


def tls_context(ca_file: str | None) -> ssl.SSLContext | None:
    """The TLS context trusting ``ca_file`` (PEM), or None for the system's CAs. Raises ``ConfigError``."""
    if ca_file is None:
        return None
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot use --ca-file {ca_file}: {exc}") from exc


def _check_utf8(flag: str, value: str) -> None:
    """Argv bytes that are not UTF-8 arrive as lone surrogates (``surrogateescape``), which no request can carry:
    a :class:`~rtengine.apps._cli_args.UsageError` naming the flag and the index, never the text."""
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise UsageError(
            f"{flag} holds a lone surrogate ({value[exc.start]!r} at index {exc.start}): a byte that is not UTF-8"
        ) from None


def prepare(options: DemoOptions) -> bytes | None:
    """Check ``options`` before any network work; return the decoded ``--wav-in`` (PCM16 mono 24 kHz) if given.

    Raises :class:`~rtengine.apps._cli_args.UsageError` (exit status 2) for anything that cannot work.
    """
    texts = (("--text", options.text), ("--model", options.model), ("--base-url", options.base_url))
    for flag, value in (*texts, ("--api-key (or $OPENAI_API_KEY)", options.api_key)):
        if value is not None:
            _check_utf8(flag, value)
    if options.speak and options.transport != "websocket":
        raise UsageError("--speak needs --transport websocket (the audio goes out as input_audio_buffer.append)")
    if options.session_cap is not None and not options.session_cap > 0:
        raise UsageError("--session-cap needs a number of seconds > 0")
    if not options.timeout > 0:
        raise UsageError("--timeout needs a number of seconds > 0")
    if options.base_url is not None:
        check_base_url(options.base_url)
    if options.wav_in is not None and options.transport != "webrtc":
        raise UsageError("--wav-in needs --transport webrtc (the websocket demo sends --text or --speak)")
    if options.wav_out is not None:
        check_wav_out(options.wav_out)
    try:
        tls_context(options.ca_file)
        return decode_audio_file(options.wav_in) if options.wav_in is not None else None
    except ConfigError as exc:
        raise UsageError(str(exc) if options.wav_in is None else f"--wav-in {exc}") from exc


async def run_demo(options: DemoOptions, report: Report, pcm_in: bytes | None = None) -> int:
    """Run one conversation, report it, and return the exit status (0, 1 or 130; see the module docstring).

    Bounded by ``options.timeout``. SIGINT (Ctrl-C) or SIGTERM ends the run: the conversation is closed, its
    ``Closed`` reported, the summary printed, and 130 (SIGINT) or 143 (SIGTERM) returned. Cancellation from
    outside: the conversation is closed (shielded, bounded) and ``Cancelled`` propagates; nothing is reported after
    it.
    """
    summary = Summary(options.command, options.transport)
    run = _Run(trio.CancelScope(deadline=trio.current_time() + options.timeout))
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_interrupt, signals, run)
            try:
                await _run(options, report, run, summary, pcm_in)
            except RealtimeError as exc:
                summary.status, summary.reason = EXIT_FAILED, _hint(str(exc), options)
            nursery.cancel_scope.cancel()
    if run.interrupted == signal.SIGTERM:
        summary.status, summary.reason = EXIT_TERMINATED, "terminated (SIGTERM)"
    elif run.interrupted:
        summary.status, summary.reason = EXIT_INTERRUPTED, "interrupted (Ctrl-C)"
    elif summary.reason is None and (run.scope.cancelled_caught or summary.status != EXIT_OK):
        summary.status, summary.reason = EXIT_FAILED, f"timed out after {options.timeout:g} s"
    report.finish(summary)
    if summary.reason is not None:
        print(f"rtengine {options.command}: {summary.reason}", file=sys.stderr, flush=True)
    return summary.status


@dataclass(slots=True)
class _Run:
    """The scope SIGINT cancels: the whole run until the conversation is open, then only the following of it."""

    scope: trio.CancelScope
    #: The signal that ended the run (SIGINT or SIGTERM), 0 if none did.
    interrupted: int = 0


async def _watch_interrupt(signals: AsyncIterator[int], run: _Run) -> None:
    async for signum in signals:
        run.interrupted = run.interrupted or signum
        run.scope.cancel()


def _hint(reason: str, options: DemoOptions) -> str:
    if options.command == "call" and not options.api_key and ("401" in reason or "API key" in reason):
        return f"{reason} (no API key given: set OPENAI_API_KEY or pass --api-key)"
    return reason


async def _run(options: DemoOptions, report: Report, run: _Run, summary: Summary, pcm_in: bytes | None) -> None:
    embedded = options.base_url is None
    with run.scope:
        async with AsyncExitStack() as stack:
            # One media engine (the trio-asyncio loop) for the process; pinned to loopback when both peers are here.
            engine = await stack.enter_async_context(open_media_engine(loopback=embedded or options.loopback))
            base_url, api_key = options.base_url, options.api_key
            if base_url is None:
                api_key = api_key or "sk-local-demo"
                faults = Faults(sideband_accept_delay=options.sideband_delay)
                cap = options.session_cap or 3600.0  # the API's cap, the server's default
                server_options = ServerOptions(api_key=api_key, faults=faults, audio_ms=1000, session_max_seconds=cap)
                server = await stack.enter_async_context(open_local_server(server_options, peers=engine))
                base_url = server.base_url
                report.note(f"local realtime server at {base_url}")
            summary.server = base_url
            client = await stack.enter_async_context(
                RealtimeClient(base_url, api_key=api_key or NO_API_KEY, ssl_context=tls_context(options.ca_file))
            )
            session = SessionConfig(
                model=options.model or SessionConfig().model,
                instructions="You are the rtengine demo. Answer in one short sentence.",
                **_speaking() if options.speak else {},
            )
            sink = WavOut(options.wav_out) if options.wav_out is not None else None
            if sink is not None:
                stack.callback(sink.close)
            media, seconds = None, 0.0
            if options.transport == "webrtc":
                seconds = len(pcm_in) / (2 * 24000) if pcm_in is not None else options.seconds
                source = _pcm_source(pcm_in) if pcm_in is not None else tone_source(440.0, options.seconds)
                media = Media(engine, source=source, sink=sink, connect_timeout=min(10.0, options.timeout))
            rotate: dict[str, Any] = {} if options.session_cap is None else {"rotate_margin": options.session_cap * 0.4}
            async with open_conversation(client, session, media=media, **rotate) as conv:
                verdict: tuple[int, str | None] = (EXIT_FAILED, None)
                try:
                    verdict = await _converse(conv, options, report, run, seconds, None if media else sink)
                finally:
                    if sink is not None:
                        sink.close()  # the WAV complete (or its write failure known) before the summary
                    _summarize(conv, summary, verdict, sink)


async def _converse(
    conv: Conversation, options: DemoOptions, report: Report, run: _Run, seconds: float, sink: WavOut | None
) -> tuple[int, str | None]:
    """Send the turn and follow the conversation; return its verdict (status, reason). The conversation is closed
    here (its ``Closed`` reported) unless it ended by itself, also when SIGINT or the deadline cut the following
    short."""
    if conv.call_id is not None:
        report.note(f"call {conv.call_id}: SDP answer received ({len(conv.answer_sdp or '')} bytes)")
    if options.speak:
        await _say(conv)
        report.note(f"> (speaking: {SPOKEN_MS} ms of a 440 Hz tone, then {PAUSE_MS} ms of silence; server VAD answers)")
    else:
        await conv.send_text(options.text)
        await conv.request_response()
        report.note(f"> {options.text}")
    found = Follow()
    outer = run.scope
    following = run.scope = trio.CancelScope(deadline=outer.deadline)
    outer.deadline = math.inf  # the close below is not cut short by the deadline that ended the following
    with following:
        await follow(conv, report, found, source_seconds=seconds, sink=sink)
    run.scope = outer
    cut_short = following.cancelled_caught
    if cut_short:  # Ctrl-C (run_demo reports it) or the deadline
        reason = found.error or (None if run.interrupted else f"timed out after {options.timeout:g} s")
    else:
        reason = found.failure()
    if reason is None and not cut_short and conv.media is not None:
        if conv.media.frames_sent == 0:
            reason = "no audio was sent over RTP"
        elif conv.media.frames_received == 0:
            reason = "no audio was received over RTP"
    if cut_short or found.closed is None:
        await conv.close()
        await drain(conv, report, found)
    return (EXIT_OK, None) if reason is None and not cut_short else (EXIT_FAILED, reason)


def _summarize(conv: Conversation, summary: Summary, verdict: tuple[int, str | None], sink: WavOut | None) -> None:
    summary.status, summary.reason = verdict
    if sink is not None and sink.failure is not None and summary.reason is None:
        summary.status, summary.reason = EXIT_FAILED, sink.failure
    summary.call_id = conv.call_id
    summary.timeline_ms = {phase: seconds * 1000 for phase, seconds in conv.timeline.items()}
    stats = conv.stats
    summary.counters = {
        "frames_received": stats.frames_received,
        "texts_sent": stats.texts_sent,
        "audio_frames_sent": stats.audio_frames_sent,
        "events_forwarded": stats.events_forwarded,
        "events_dropped": stats.events_dropped,
        "protocol_warnings": stats.protocol_warnings,
        "join_attempts": stats.join_attempts,
        "rotations": stats.rotations,
    }
    written = sink.path.as_posix() if sink is not None and sink.frames and sink.failure is None else None
    if conv.media is not None:
        summary.audio = {
            "frames_sent": conv.media.frames_sent,
            "frames_received": conv.media.frames_received,
            "frames_dropped": conv.media.frames_dropped + conv.media.track.dropped_bytes // FRAME_BYTES,
            "wav_out": written,
        }
    else:
        summary.audio = {
            "frames_sent": stats.audio_frames_sent,
            "frames_received": sink.frames if sink is not None else 0,
            "frames_dropped": stats.audio_frames_dropped,
            "wav_out": written,
        }


async def _pcm_source(pcm: bytes) -> AsyncIterator[bytes]:
    """``pcm`` (PCM16 mono 24 kHz) as 20 ms frames, the last one padded with silence."""
    for start in range(0, len(pcm), FRAME_BYTES):
        yield pcm[start : start + FRAME_BYTES].ljust(FRAME_BYTES, b"\0")


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
