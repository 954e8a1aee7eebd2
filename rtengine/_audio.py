"""Small PCM16 helpers (pure): a test tone and a loudness measure.

PCM16 here is little-endian signed 16-bit, mono, 24 kHz unless told otherwise — the GA ``audio/pcm`` format.
"""

from __future__ import annotations

import array
import math
import sys

__all__ = ["rms", "tone"]


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
