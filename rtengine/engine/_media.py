"""The media side of a WebRTC conversation in which rtengine is the peer (``conv.media``), on the trio side.

The peer connection, its outbound :class:`~rtengine._peer.PcmTrack` and every aiortc call live behind
``rtengine._peer``; this module only runs trio tasks around them, in the conversation's nursery: apply the answer,
wait for "connected" under a deadline, feed the source, drain the remote audio, watch for failure.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import trio

from ..protocol._errors import ConfigError
from ..protocol._lifecycle import Closed, Error

if TYPE_CHECKING:
    from ._conversation import Core
    from ._prewarm import PrewarmPool
    from ._seams import PeerFactory, PeerLike, TrackLike

__all__ = ["Media", "MediaCall", "run_media"]

log = logging.getLogger("rtengine")

#: Bound on closing the app's audio source when the media task ends.
SOURCE_CLOSE_TIMEOUT: Final = 1.0


@dataclass
class Media:
    """Make rtengine the media peer of a WebRTC conversation (pass as ``open_conversation(..., media=…)``).

    ``source``: audio to send (an async iterable of PCM16 mono 24 kHz chunks: ``tone_source``, ``wav_source``, or
    the app's own); besides it, ``conv.media.play(pcm)`` queues audio directly. ``sink``: a callable receiving each
    decoded 20 ms frame (e.g. a ``WavWriter``); by default frames go to ``conv.media.audio_out``.
    ``connect_timeout``: the deadline on reaching "connected" (ICE + DTLS), after which the conversation ends with
    a clear error. ``ice_servers``: STUN/TURN URLs (none by default: the realtime API is ICE-lite and an
    unreachable STUN server costs 5 s of gathering). ``data_channel=True`` keeps what arrives on the call's
    ``oai-events`` data channel for the app, on ``conv.media.peer.messages``; by default those messages are read
    off and only counted, in ``conv.media.data_messages``, so a long call holds no backlog of them.
    """

    engine: PeerFactory
    source: AsyncIterable[bytes] | None = None
    sink: Callable[[bytes], None] | None = None
    connect_timeout: float = 10.0
    ice_servers: Sequence[str] = field(default_factory=tuple)
    pool: PrewarmPool | None = None
    data_channel: bool = False

    def __post_init__(self) -> None:
        if self.connect_timeout <= 0:
            raise ConfigError("connect_timeout must be > 0")


class MediaCall:
    """Audio over RTP for one conversation.

    ``audio_out`` is a trio receive channel of received 20 ms PCM16 mono 24 kHz frames (unless a ``sink`` was given);
    when the caller does not keep up, new frames are dropped and counted in ``frames_dropped``. :meth:`play` queues
    audio to send (besides the ``source``). ``peer`` exposes the connection state and the data channel.
    """

    def __init__(self, peer: PeerLike, track: TrackLike, sink: Callable[[bytes], None] | None, capacity: int) -> None:
        self.peer = peer
        self.track = track
        self._sink = sink
        self._out_tx: trio.MemorySendChannel[bytes]
        self.audio_out: trio.MemoryReceiveChannel[bytes]
        self._out_tx, self.audio_out = trio.open_memory_channel(capacity)
        self.frames_dropped = 0
        #: Messages read off the data channel and only counted (``Media(data_channel=False)``, the default).
        self.data_messages = 0
        self.source_done = trio.Event()
        self._sent_before = 0  # counted by the peers a rotation retired
        self._received_before = 0

    def __repr__(self) -> str:
        return f"<MediaCall {self.peer.connection_state} sent={self.frames_sent} received={self.frames_received}>"

    @property
    def frames_sent(self) -> int:
        """Frames that carried audio (silence frames, sent when nothing is queued, are not counted)."""
        return self._sent_before + self.track.audio_frames

    @property
    def frames_received(self) -> int:
        return self._received_before + self.peer.frames_received

    def swap(self, peer: PeerLike, track: TrackLike) -> None:
        """Move the media to a new call's peer (a rotation): the source and :meth:`play` feed ``track`` from now
        on, the counters go on from where the old peer left them."""
        self._sent_before += self.track.audio_frames
        self._received_before += self.peer.frames_received
        self.peer, self.track = peer, track

    def play(self, pcm16: bytes) -> int:
        """Queue PCM16 mono 24 kHz audio to send; returns the bytes accepted (the rest is dropped and counted)."""
        return self.track.push(pcm16)

    def deliver(self, pcm16: bytes) -> None:
        if self._sink is not None:
            self._sink(pcm16)
            return
        try:
            self._out_tx.send_nowait(pcm16)
        except trio.WouldBlock:
            self.frames_dropped += 1
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def feed(self, source: AsyncIterable[bytes]) -> None:
        """Queue ``source`` into the track no faster than it plays (≈100 ms ahead).

        Cancellation: stops at once; a source that can be closed (an async generator) is closed, shielded.
        """
        iterator = aiter(source)
        try:
            async for chunk in iterator:
                # aiortc's sender drains the track on the asyncio side every 20 ms; polling at half that pace is
                # simpler than a cross-loop wakeup and keeps the queue ~100 ms ahead of playback.
                while self.track.room() < len(chunk) or self.track.buffered_ms > 100:  # noqa: ASYNC110
                    await trio.sleep(0.01)
                self.track.push(chunk)
            self.source_done.set()
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(SOURCE_CLOSE_TIMEOUT) as scope:
                    await aclose()
                if scope.cancelled_caught:
                    log.warning("the audio source did not close within %g s", SOURCE_CLOSE_TIMEOUT)

    def end(self) -> None:
        """No more frames: ``audio_out`` ends once drained."""
        self._out_tx.close()


async def run_media(
    media: MediaCall, options: Media, answer_sdp: str, core: Core, task_status: trio.TaskStatus[None]
) -> None:
    """Apply the answer, reach "connected" within ``connect_timeout``, then feed and drain audio until the
    conversation ends. Failing to connect ends the conversation with one ``Error``; the connection failing or
    closing once connected means the call is over: ``Closed("call_ended")``; an invalid answer raises
    ``InvalidSdp``, which the runner turns into one. The peer connection is closed on the way out, shielded and
    bounded (by the peer adapter)."""
    peer, timeline = media.peer, core.timeline
    media.track.on_first_audio = lambda when: timeline.mark_at("first_audio_sent", when)

    def received(pcm16: bytes) -> None:
        if "first_audio_received" not in timeline:
            timeline.mark("first_audio_received")
        media.deliver(pcm16)

    try:
        await peer.apply_answer(answer_sdp)
        timeline.mark("answer_applied")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(peer.receive_audio, received)
            with trio.move_on_after(options.connect_timeout):
                await peer.connected.wait()
            if not peer.connected.is_set():
                message = (
                    f"the WebRTC connection did not reach 'connected' within {options.connect_timeout:g} s "
                    f"(ICE/DTLS never completed; state {peer.connection_state!r}: is there a usable network "
                    "interface, and can the peer reach it?)"
                )
                core.end(Closed("error"), Error(message, "webrtc_connect_timeout"))
                return
            timeline.mark_at("ice_connected", peer.times.get("ice_connected"))
            timeline.mark_at("dtls_connected", peer.times.get("dtls_connected"))
            log.info("webrtc connected call_id=%s total_elapsed_ms=%.0f", timeline.call_id, timeline.total_ms())
            if options.source is not None:
                nursery.start_soon(media.feed, options.source)
            nursery.start_soon(_watch_channel, media, options.data_channel, core)
            await peer.failed.wait()
            # Connected, then failed or closed: the call is over (the provider ends a call whose media is gone).
            log.info("webrtc connection ended call_id=%s state=%s", timeline.call_id, peer.connection_state)
            core.end(Closed("call_ended", None, f"the WebRTC connection ended ({peer.connection_state})"), None)
    finally:
        media.end()
        await peer.aclose()


async def _watch_channel(media: MediaCall, keep: bool, core: Core) -> None:
    """Mark the data channel open; unless the app keeps its messages, read them off and count them (they repeat
    the sideband's events, and unread they would pile up for the whole call)."""
    peer = media.peer
    await peer.channel_open.wait()
    core.timeline.mark_at("data_channel_open", peer.times.get("data_channel_open"))
    if not keep:
        async for _ in peer.messages:
            media.data_messages += 1
