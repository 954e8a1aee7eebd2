"""G.711 (``audio/pcmu`` μ-law and ``audio/pcma`` A-law) to PCM16, and the byte geometry of each GA audio format.

Pure, stdlib only (``audioop`` is gone in Python 3.13). Decoding is two ``bytes.translate`` passes over 256-entry
tables built once at import: one for the low byte of each little-endian PCM16 sample, one for the high byte; the
two are interleaved with slice assignment, so no Python-level loop runs per sample. Encoding (PCM16 to G.711, what
the local server sends in a G.711 session) maps each sample through a 65,536-entry table built on first use from
:func:`ulaw_code`/:func:`alaw_code` (the ITU-T G.711 segment search), one table lookup per sample.
"""

from __future__ import annotations

import functools
import sys
from array import array
from collections.abc import Callable
from typing import Final

__all__ = [
    "FORMAT_GEOMETRY",
    "G711_FORMATS",
    "PCM_FORMAT",
    "alaw_code",
    "alaw_sample",
    "alaw_to_pcm16",
    "format_geometry",
    "pcm16_to_alaw",
    "pcm16_to_g711",
    "pcm16_to_ulaw",
    "ulaw_code",
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


def ulaw_code(sample: int) -> int:
    """The μ-law byte of one PCM16 value (ITU-T G.711 on the top 14 bits: bias 33, eight segments, the byte
    inverted; the reference implementation's rounding, so it agrees with the old ``audioop.lin2ulaw``)."""
    value = sample >> 2
    if value < 0:
        mask, value = 0x7F, -value
    else:
        mask = 0xFF
    value = min(value, 8159) + 0x21
    segment = value.bit_length() - 6  # value is in [0x21, 0x2000]
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def alaw_code(sample: int) -> int:
    """The A-law byte of one PCM16 value (ITU-T G.711 on the top 13 bits; the even bits inverted on the wire)."""
    value = sample >> 3
    if value >= 0:
        mask = 0xD5  # sign bit set for non-negative values, then the even-bit inversion
    else:
        mask, value = 0x55, -value - 1
    segment = max(0, value.bit_length() - 5)  # 0..7 for 12-bit magnitudes (value <= 0xFFF)
    mantissa = (value >> 1 if segment == 0 else value >> segment) & 0x0F
    return ((segment << 4) | mantissa) ^ mask


@functools.cache
def _encode_table(encode: Callable[[int], int]) -> bytes:
    """The code of every PCM16 value, indexed by the value's unsigned 16-bit pattern."""
    return bytes(encode(word - 0x10000 if word & 0x8000 else word) for word in range(0x10000))


def _narrow(pcm16: bytes, encode: Callable[[int], int]) -> bytes:
    words = array("H")
    words.frombytes(pcm16[: len(pcm16) & ~1])
    if sys.byteorder == "big":
        words.byteswap()
    return bytes(map(_encode_table(encode).__getitem__, words))


def pcm16_to_ulaw(pcm16: bytes) -> bytes:
    """Little-endian PCM16 to μ-law (same sample rate, half the bytes; a trailing odd byte is dropped)."""
    return _narrow(pcm16, ulaw_code)


def pcm16_to_alaw(pcm16: bytes) -> bytes:
    """Little-endian PCM16 to A-law (same sample rate, half the bytes; a trailing odd byte is dropped)."""
    return _narrow(pcm16, alaw_code)


def pcm16_to_g711(pcm16: bytes, format_type: str) -> bytes:
    """PCM16 to the G.711 format ``audio/pcmu`` or ``audio/pcma``; ``ValueError`` for any other format type."""
    if format_type == "audio/pcmu":
        return pcm16_to_ulaw(pcm16)
    if format_type == "audio/pcma":
        return pcm16_to_alaw(pcm16)
    raise ValueError(f"not a G.711 format: {format_type!r}")
