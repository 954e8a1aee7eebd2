"""The media side of a WebRTC conversation in which rtengine is the peer (``conv.media``), on the trio side.

The peer connection, its outbound :class:`~rtengine._peer.PcmTrack` and every aiortc call live behind
``rtengine._peer``; this module only runs trio tasks around them, in the conversation's nursery: apply the answer,
wait for "connected" under a deadline, feed the source, drain the remote audio, watch for failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from ..adapters._peer import PcmTrack, Peer

__all__ = ["MediaCall"]


class MediaCall:
    """Audio over RTP for one conversation.

    ``audio_out`` is a trio receive channel of received 20 ms PCM16 mono 24 kHz frames (unless a ``sink`` was given);
    when the caller does not keep up, new frames are dropped and counted in ``frames_dropped``. :meth:`play` queues
    audio to send (besides the ``source``). ``peer`` exposes the connection state and the data channel.
    """

    def __init__(self, peer: Peer, track: PcmTrack, sink: Callable[[bytes], None] | None, capacity: int) -> None:
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

    def __repr__(self) -> str:
        return f"<MediaCall {self.peer.connection_state} sent={self.frames_sent} received={self.frames_received}>"

    @property
    def frames_sent(self) -> int:
        """Frames that carried audio (silence frames, sent when nothing is queued, are not counted)."""
        return self.track.audio_frames

    @property
    def frames_received(self) -> int:
        return self.peer.frames_received

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
                with trio.CancelScope(shield=True):
                    await aclose()

    def end(self) -> None:
        """No more frames: ``audio_out`` ends once drained."""
        self._out_tx.close()
