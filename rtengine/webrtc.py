"""rtengine as the WebRTC media peer: audio over RTP, control over the sideband, one call id.

::

    async with rtengine.webrtc.open_media_engine() as engine:            # the one trio-asyncio loop
        media = rtengine.webrtc.Media(engine, source=rtengine.webrtc.tone_source(440, seconds=3))
        async with rtengine.open_conversation(client, session, media=media) as conv:
            async for pcm in conv.media.audio_out:                       # PCM16 mono 24 kHz, 20 ms frames
                ...

rtengine creates the offer (``iceServers=[]`` unless given, max-bundle, one sendrecv audio transceiver, the
``oai-events`` data channel), creates the call, and returns as soon as the answer is in hand; applying the answer,
reaching "connected" (bounded by ``connect_timeout``, with a clear error when ICE/DTLS never completes), feeding
the source and draining the remote audio all run in the conversation's nursery, like the sideband join. Audio at
this boundary is PCM16 mono at 24 kHz. Everything asyncio stays inside ``rtengine._peer``.
"""

from __future__ import annotations

import array
import logging
import math
import sys
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import trio

from .adapters._audio_file import decode_audio_file as decode_audio_file
from .adapters._peer import FRAME_BYTES, SAMPLE_RATE, PeerService, open_peer_service
from .engine._media import Media as Media
from .engine._prewarm import PrewarmPool as PrewarmPool
from .engine._prewarm import open_prewarm_pool as open_prewarm_pool
from .protocol._audio import tone
from .protocol._errors import ConfigError

log = logging.getLogger("rtengine.webrtc")

__all__ = [
    "SAMPLE_RATE",
    "Media",
    "MediaEngine",
    "PrewarmPool",
    "WavWriter",
    "decode_audio_file",
    "open_media_engine",
    "open_prewarm_pool",
    "tone_source",
    "wav_source",
]

#: The media engine is the peer service: one trio-asyncio loop, every peer connection tracked and closed.
MediaEngine = PeerService

#: Frames buffered on ``conv.media.audio_out`` before new ones are dropped (and counted): 10 s.
AUDIO_OUT_CAPACITY: Final = 500


@asynccontextmanager
async def open_media_engine(*, loopback: bool = False) -> AsyncIterator[MediaEngine]:
    """Open the media engine (the trio-asyncio loop, once) for the duration of the block.

    ``loopback=True`` pins ICE host candidates to 127.0.0.1 — hermetic tests and demos on one machine; leave it off
    to talk to a real provider. Leaving the block closes every peer connection, shielded and bounded.
    """
    async with open_peer_service(loopback=loopback) as engine:
        yield engine


async def tone_source(
    frequency: float = 440.0, seconds: float = 3.0, *, amplitude: float = 0.3
) -> AsyncIterator[bytes]:
    """A sine tone as 20 ms PCM16 frames (the media pump paces them in real time), computed one frame at a time as
    they are taken: any length costs one frame of memory and one frame of work per step. ``seconds`` must be finite
    and >= 0 (``ValueError`` at the first frame)."""
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"seconds must be finite and >= 0, got {seconds!r}")
    tone(frequency, 0, amplitude=amplitude)  # the same checks as a whole tone
    total = SAMPLE_RATE * round(seconds * 1000) // 1000
    per_frame, peak, step = FRAME_BYTES // 2, amplitude * 32767, 2 * math.pi * frequency / SAMPLE_RATE
    for start in range(0, total, per_frame):
        samples = array.array(
            "h", (round(peak * math.sin(step * i)) for i in range(start, min(total, start + per_frame)))
        )
        if sys.byteorder == "big":
            samples.byteswap()
        yield samples.tobytes()


async def wav_source(path: str | Path) -> AsyncIterator[bytes]:
    """The frames of a WAV file: 16-bit PCM, mono, 24 kHz (the realtime format); anything else is rejected."""
    with wave.open(str(path), "rb") as wav:
        if (wav.getsampwidth(), wav.getnchannels(), wav.getframerate()) != (2, 1, SAMPLE_RATE):
            raise ConfigError(
                f"{path}: expected 16-bit mono {SAMPLE_RATE} Hz WAV, got {8 * wav.getsampwidth()}-bit "
                f"{wav.getnchannels()} channel(s) at {wav.getframerate()} Hz"
            )
        while chunk := wav.readframes(FRAME_BYTES // 2):
            yield chunk
            await trio.lowlevel.checkpoint()


class WavWriter:
    """Writes received audio (PCM16 mono 24 kHz) to a WAV file. Use as the ``sink`` of :class:`Media`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._wav: wave.Wave_write | None = None
        self.frames = 0

    def __call__(self, pcm16: bytes) -> None:
        if self._wav is None:
            self._wav = wave.open(str(self.path), "wb")  # noqa: SIM115 - open for the writer's lifetime; see close()
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(SAMPLE_RATE)
        self._wav.writeframes(pcm16)
        self.frames += 1

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None
