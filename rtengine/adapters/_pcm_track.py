"""The outbound audio of the aiortc bridge, without its asyncio part: PCM16 mono 24 kHz from trio, in 20 ms frames.

Media at the boundary is PCM16 mono at 24 kHz (the GA ``audio/pcm`` format). :class:`PcmSource` holds what trio
queues with :meth:`PcmSource.push` and makes the frames (silence when nothing is queued, so RTP keeps flowing).
Pacing them on the loop's clock is asyncio's business, so it lives with the rest of the bridge:
:class:`~rtengine.adapters._peer.PcmTrack` (this module imports no asyncio).
"""

from __future__ import annotations

import fractions
from collections.abc import Callable
from typing import Final

import aiortc
import av

__all__ = ["FRAME_BYTES", "FRAME_SAMPLES", "SAMPLE_RATE", "PcmSource"]

#: PCM16 mono at this rate crosses the media boundary, in frames of 20 ms.
SAMPLE_RATE: Final = 24000
FRAME_SAMPLES: Final = SAMPLE_RATE // 50
FRAME_BYTES: Final = FRAME_SAMPLES * 2
_TIME_BASE: Final = fractions.Fraction(1, SAMPLE_RATE)


class PcmSource(aiortc.MediaStreamTrack):
    """An outbound audio track fed from trio with PCM16 mono 24 kHz.

    aiortc pulls a 20 ms frame every 20 ms (paced on the loop's clock, which is trio's); :meth:`push` queues audio
    up to ``max_buffer_ms`` (the rest is dropped and counted). When nothing is queued the frame is silence.
    """

    kind = "audio"

    def __init__(self, max_buffer_ms: int = 2000) -> None:
        super().__init__()
        self._buffer = bytearray()
        self._limit = max_buffer_ms * SAMPLE_RATE * 2 // 1000
        self._next: float | None = None
        self._pts = 0
        #: Frames carrying queued audio / frames of silence / bytes dropped because the buffer was full.
        self.audio_frames = 0
        self.silent_frames = 0
        self.dropped_bytes = 0
        #: Bytes ever accepted by :meth:`push`, and bytes ever gone from the queue (played, or dropped by
        #: :meth:`clear`): audio pushed when ``pushed_bytes`` was ``n`` is out once ``gone_bytes >= n``.
        self.pushed_bytes = 0
        self.gone_bytes = 0
        #: trio time when the first frame with queued audio went out, and who wants to know.
        self.first_audio_at: float | None = None
        self.on_first_audio: Callable[[float], None] | None = None

    @property
    def buffered_ms(self) -> int:
        return len(self._buffer) * 1000 // (SAMPLE_RATE * 2)

    def room(self) -> int:
        """Bytes that :meth:`push` would accept now."""
        return max(0, self._limit - len(self._buffer))

    def push(self, pcm16: bytes) -> int:
        """Queue audio; returns how many bytes were accepted (the rest is dropped and counted)."""
        accepted = min(len(pcm16), self.room())
        accepted -= accepted % 2
        self._buffer += pcm16[:accepted]
        self.pushed_bytes += accepted
        self.dropped_bytes += len(pcm16) - accepted
        return accepted

    def clear(self) -> None:
        """Drop everything queued (e.g. on barge-in)."""
        self.gone_bytes += len(self._buffer)
        self._buffer.clear()

    def _due_in(self, now: float) -> float:
        """Seconds until the next frame is due on the loop's clock (the first one at once). The asyncio side of
        the bridge (:class:`~rtengine.adapters._peer.PcmTrack`) waits that long, then calls :meth:`_next_frame`."""
        if self._next is None:
            self._next = now
        return self._next - now

    def _next_frame(self, now: float) -> av.AudioFrame:
        self._next = (now if self._next is None else self._next) + FRAME_SAMPLES / SAMPLE_RATE
        chunk = bytes(self._buffer[:FRAME_BYTES])
        del self._buffer[:FRAME_BYTES]
        self.gone_bytes += len(chunk)
        if chunk:
            self.audio_frames += 1
            if self.first_audio_at is None:
                self.first_audio_at = now
                if self.on_first_audio is not None:
                    self.on_first_audio(self.first_audio_at)
        else:
            self.silent_frames += 1
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(chunk.ljust(FRAME_BYTES, b"\x00"))
        frame.pts = self._pts
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = _TIME_BASE
        self._pts += FRAME_SAMPLES
        return frame
