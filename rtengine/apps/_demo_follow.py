"""Following one conversation of ``rtengine demo`` / ``rtengine call`` to its verdict.

The run succeeds (exit status 0) only when the conversation did what was asked: it connected, the response
arrived (``response.done``), no ``Error`` came, the sideband (if lost) was restored, and on a media call the
conversation lasted until its audio source was sent, with audio flowing both ways over RTP. Anything else is exit
status 1 with a one-line reason; Ctrl-C is 130. Every event is reported as it arrives; a live progress line is
refreshed meanwhile (shown on a terminal only).

After the reply, a media call keeps sending its source (the tone or ``--wav-in``) to its end, then waits (at most
2 s) for the received audio to end; both waits are announced and shown on the progress line, never silent.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from .. import Conversation
from .. import events as ev
from ._cli_events import describe, event_name
from ._cli_report import Report

__all__ = ["Follow", "follow"]

#: Seconds between refreshes of the progress line.
PROGRESS_INTERVAL = 0.1
#: After the source: the longest wait for the received audio to stop (a provider may stream silence forever).
REPLY_AUDIO_GRACE = 2.0
#: Received audio counts as ended after this long without a new frame.
QUIET = 0.3
#: Bytes of one 20 ms frame of PCM16 mono 24 kHz.
FRAME_BYTES = 960


@dataclass(slots=True)
class Follow:
    """What following a conversation found."""

    replied: trio.Event = field(default_factory=trio.Event)
    #: The first ``Error``'s line, if any.
    error: str | None = None
    #: The ``Closed`` reason, if the conversation ended while followed.
    closed: str | None = None
    #: A lost sideband not (yet) restored: its description.
    sideband_lost: str | None = None
    events: int = 0
    audio_deltas: int = 0
    #: Set while the rest of the media source plays after the reply.
    playing_out: bool = False

    def failure(self) -> str | None:
        """Why the conversation did not do what was asked (None: it did, as far as events tell)."""
        if self.error is not None:
            return self.error
        if not self.replied.is_set():
            ended = f"the conversation ended ({self.closed})" if self.closed else "no response.done arrived"
            return f"{ended} before the response"
        if self.sideband_lost is not None:
            return f"the sideband was lost and not restored ({self.sideband_lost})"
        if self.closed is not None:  # a media call ended while its source was still being sent
            return f"the conversation ended ({self.closed}) before the audio source was sent"
        return None


async def follow(
    conv: Conversation,
    report: Report,
    found: Follow,
    *,
    source_seconds: float,
    sink: Callable[[bytes], None] | None,
) -> None:
    """Report ``conv``'s events until the run is complete (see the module docstring) or the conversation ends.

    ``sink`` receives the output audio of a websocket conversation (PCM16 decoded from ``response.output_audio``
    deltas). Cancellation: returns at once (the conversation is left running; its owner closes it).
    """
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_read, conv, report, found, sink, nursery.cancel_scope)
        nursery.start_soon(_tick, conv, report, found, source_seconds)
        await found.replied.wait()
        if conv.media is not None and not conv.media.source_done.is_set():
            left = max(0.0, source_seconds - conv.media.frames_sent * FRAME_BYTES / 48000)
            report.note(f"reply received; sending the rest of the audio source ({left:.1f} s)")
            found.playing_out = True
            await conv.media.source_done.wait()
        if conv.media is not None:
            report.note(f"audio source sent; waiting for the reply audio to end (at most {REPLY_AUDIO_GRACE:g} s)")
            await _until_quiet(conv)
        nursery.cancel_scope.cancel()


async def _until_quiet(conv: Conversation) -> None:
    """Return once no audio frame arrived for :data:`QUIET` seconds, or after :data:`REPLY_AUDIO_GRACE`."""
    with trio.move_on_after(REPLY_AUDIO_GRACE):
        heard = -1
        while conv.media is not None and heard != conv.media.frames_received:
            heard = conv.media.frames_received
            await trio.sleep(QUIET)


async def drain(conv: Conversation, report: Report, found: Follow, seconds: float = 2.0) -> None:
    """Report the events left after ``conv.close()`` up to its ``Closed`` (bounded by ``seconds``)."""
    with trio.move_on_after(seconds):
        async for event in conv.events:
            _report(conv, report, found, event, None)
            if isinstance(event, ev.Closed):
                break


async def _read(
    conv: Conversation,
    report: Report,
    found: Follow,
    sink: Callable[[bytes], None] | None,
    done: trio.CancelScope,
) -> None:
    async for event in conv.events:
        _report(conv, report, found, event, sink)
        if isinstance(event, ev.ResponseDone):
            found.replied.set()
            if conv.media is None:
                break
        if isinstance(event, ev.Closed):
            break
    done.cancel()  # the reply is complete (websocket) or the conversation ended


def _report(
    conv: Conversation, report: Report, found: Follow, event: object, sink: Callable[[bytes], None] | None
) -> None:
    found.events += 1
    match event:
        case ev.AudioOut(audio=audio):
            found.audio_deltas += 1
            if sink is not None:
                sink(base64.b64decode(audio))
        case ev.Error(message=message) if found.error is None:
            found.error = message
        case ev.Closed(reason=reason):
            found.closed = reason
        case ev.SidebandLost():
            found.sideband_lost = describe(event)
        case ev.SidebandRestored():
            found.sideband_lost = None
    report.event((trio.current_time() - conv.started_at) * 1000, event_name(event), describe(event))


async def _tick(conv: Conversation, report: Report, found: Follow, source_seconds: float) -> None:
    while True:
        timeline = conv.timeline
        phase = max(timeline, key=lambda name: timeline[name]) if timeline else "starting"
        text = f"{trio.current_time() - conv.started_at:5.1f} s  {phase}  events {found.events}"
        if conv.media is not None:
            sent = conv.media.frames_sent
            text += f"  audio frames sent {sent}, received {conv.media.frames_received}"
            if found.playing_out:
                text += f"  ({max(0.0, source_seconds - sent * FRAME_BYTES / 48000):.1f} s of source left)"
        report.progress(text)
        await trio.sleep(PROGRESS_INTERVAL)
