"""Small PCM16 helpers (pure): a test tone and a loudness measure.

PCM16 here is little-endian signed 16-bit, mono, 24 kHz unless told otherwise — the GA ``audio/pcm`` format.
"""

from __future__ import annotations

import array
import itertools
import math
import sys

__all__ = ["dominant_frequency", "rms", "tone"]


def tone(frequency: float = 440.0, ms: int = 200, *, rate: int = 24000, amplitude: float = 0.3) -> bytes:
    """A sine tone as PCM16 mono bytes: ``ms`` milliseconds at ``rate`` Hz, ``amplitude`` of full scale."""
    if not 0.0 <= amplitude <= 1.0:
        raise ValueError("amplitude must be within [0, 1]")
    count = rate * ms // 1000
    peak = amplitude * 32767
    samples = array.array("h", (round(peak * math.sin(2 * math.pi * frequency * i / rate)) for i in range(count)))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def rms(pcm16: bytes) -> float:
    """Root-mean-square level of PCM16 bytes, in [0, 1] of full scale (0.0 for no samples)."""
    samples = array.array("h")
    samples.frombytes(pcm16[: len(pcm16) - len(pcm16) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples)) / 32768


def dominant_frequency(pcm16: bytes, *, rate: int = 24000, frame_ms: int = 20, min_level: float = 0.02) -> float:
    """The frequency of a tone in PCM16 audio, by zero crossings over the frames louder than ``min_level``.

    Good for checking that a sine tone survived a codec round trip; 0.0 when no frame is loud enough.
    """
    frame_bytes = rate * frame_ms // 1000 * 2
    crossings = 0
    samples = 0
    for start in range(0, len(pcm16) - frame_bytes + 1, frame_bytes):
        frame = pcm16[start : start + frame_bytes]
        if rms(frame) < min_level:
            continue
        values = array.array("h")
        values.frombytes(frame)
        if sys.byteorder == "big":
            values.byteswap()
        crossings += sum(1 for a, b in itertools.pairwise(values) if (a < 0) != (b < 0))
        samples += len(values)
    return crossings * rate / (2 * samples) if samples else 0.0
