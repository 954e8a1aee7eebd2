"""G.711 (``audio/pcmu`` μ-law and ``audio/pcma`` A-law) to PCM16, and the byte geometry of each GA audio format.

Pure, stdlib only (``audioop`` is gone in Python 3.13). Decoding is two ``bytes.translate`` passes over 256-entry
tables built once at import: one for the low byte of each little-endian PCM16 sample, one for the high byte; the
two are interleaved with slice assignment, so no Python-level loop runs per sample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

__all__ = [
    "FORMAT_GEOMETRY",
    "G711_FORMATS",
    "PCM_FORMAT",
    "alaw_sample",
    "alaw_to_pcm16",
    "format_geometry",
    "ulaw_sample",
    "ulaw_to_pcm16",
]

PCM_FORMAT: Final = "audio/pcm"
G711_FORMATS: Final = frozenset({"audio/pcmu", "audio/pcma"})

#: ``format type → (sample rate in Hz, bytes per sample)``: PCM16 at 24 kHz, G.711 at 8 kHz (one byte a sample).
FORMAT_GEOMETRY: Final[dict[str, tuple[int, int]]] = {
    PCM_FORMAT: (24000, 2),
    "audio/pcmu": (8000, 1),
    "audio/pcma": (8000, 1),
}


def format_geometry(format_type: str) -> tuple[int, int]:
    """``(sample_rate, bytes_per_sample)`` of a GA audio format type; unknown types are treated as PCM16 24 kHz."""
    return FORMAT_GEOMETRY.get(format_type, FORMAT_GEOMETRY[PCM_FORMAT])


def ulaw_sample(code: int) -> int:
    """The PCM16 value of one μ-law byte (ITU-T G.711, the bias-0x84 form)."""
    code = ~code & 0xFF
    magnitude = ((((code & 0x0F) << 3) + 0x84) << ((code >> 4) & 0x07)) - 0x84
    return -magnitude if code & 0x80 else magnitude


def alaw_sample(code: int) -> int:
    """The PCM16 value of one A-law byte (ITU-T G.711; the even bits are inverted on the wire)."""
    code ^= 0x55
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (mantissa << 4) + 8 if exponent == 0 else ((mantissa << 4) + 0x108) << (exponent - 1)
    return magnitude if code & 0x80 else -magnitude


def _tables(decode: Callable[[int], int]) -> tuple[bytes, bytes]:
    words = [decode(code) & 0xFFFF for code in range(256)]
    return bytes(w & 0xFF for w in words), bytes(w >> 8 for w in words)


_ULAW_LO, _ULAW_HI = _tables(ulaw_sample)
_ALAW_LO, _ALAW_HI = _tables(alaw_sample)


def _widen(data: bytes, low: bytes, high: bytes) -> bytes:
    out = bytearray(2 * len(data))
    out[0::2] = data.translate(low)
    out[1::2] = data.translate(high)
    return bytes(out)


def ulaw_to_pcm16(data: bytes) -> bytes:
    """μ-law bytes to little-endian PCM16 (same sample rate, twice the bytes)."""
    return _widen(data, _ULAW_LO, _ULAW_HI)


def alaw_to_pcm16(data: bytes) -> bytes:
    """A-law bytes to little-endian PCM16 (same sample rate, twice the bytes)."""
    return _widen(data, _ALAW_LO, _ALAW_HI)
