"""G.711 output audio: decoding μ-law/A-law to PCM16, durations by format, and ``AudioOut`` following the format."""

import base64
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtengine.events import AudioOut
from rtengine.protocol import parse_server_event
from rtengine.protocol._g711 import (
    alaw_code,
    alaw_sample,
    alaw_to_pcm16,
    pcm16_to_alaw,
    pcm16_to_g711,
    pcm16_to_ulaw,
    ulaw_code,
    ulaw_sample,
    ulaw_to_pcm16,
)
from rtengine.protocol._state import audio_duration_ms

EVERY_CODE = bytes(range(256))


def test_anchor_values_of_the_g711_tables() -> None:
    # ITU-T G.711: μ-law 0xFF/0x7F are ±0 and 0x80/0x00 the extremes; A-law 0xD5/0x55 are ±8, 0xAA/0x2A ±32256.
    assert [ulaw_sample(c) for c in (0xFF, 0x7F, 0x80, 0x00)] == [0, 0, 32124, -32124]
    assert [alaw_sample(c) for c in (0xD5, 0x55, 0xAA, 0x2A)] == [8, -8, 32256, -32256]


def test_decoding_is_monotonic_in_the_code_within_each_sign() -> None:
    # μ-law: 0x80..0xFF run from the loudest positive down to 0; 0x00..0x7F from the loudest negative up to 0.
    positive = [ulaw_sample(c) for c in range(0x80, 0x100)]
    negative = [ulaw_sample(c) for c in range(0x80)]
    assert positive == sorted(positive, reverse=True)
    assert negative == sorted(negative)
    magnitudes = sorted({abs(alaw_sample(c)) for c in EVERY_CODE})
    assert len(magnitudes) == 128  # A-law has no zero: 128 distinct magnitudes, each with both signs


def test_decoders_match_the_stdlib_reference_where_it_still_exists() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # removed in Python 3.13
    assert ulaw_to_pcm16(EVERY_CODE) == audioop.ulaw2lin(EVERY_CODE, 2)
    assert alaw_to_pcm16(EVERY_CODE) == audioop.alaw2lin(EVERY_CODE, 2)


@given(st.binary(max_size=2000))
def test_bulk_decoding_is_the_per_sample_decoding_little_endian(data: bytes) -> None:
    for bulk, one in ((ulaw_to_pcm16, ulaw_sample), (alaw_to_pcm16, alaw_sample)):
        pcm = bulk(data)
        assert len(pcm) == 2 * len(data)
        assert [int.from_bytes(pcm[i : i + 2], "little", signed=True) for i in range(0, len(pcm), 2)] == [
            one(b) for b in data
        ]


def test_a_g711_byte_lasts_six_times_a_pcm16_byte() -> None:
    one_second = base64.b64encode(bytes(8000)).decode()
    assert audio_duration_ms(one_second, sample_rate=8000, bytes_per_sample=1) == 1000
    assert audio_duration_ms(one_second) == 166  # the same bytes read as PCM16 at 24 kHz


def test_audio_deltas_take_the_format_they_are_parsed_with() -> None:
    mulaw = bytes([0x80, 0xFF, 0x00]) * 800  # 2400 samples: 300 ms at 8 kHz
    frame = f'{{"type":"response.output_audio.delta","delta":"{base64.b64encode(mulaw).decode()}","item_id":"i"}}'
    pcmu = parse_server_event(frame, "audio/pcmu")
    assert isinstance(pcmu, AudioOut)
    assert (pcmu.format, pcmu.sample_rate, pcmu.duration_ms) == ("audio/pcmu", 8000, 300)
    assert pcmu.data() == mulaw
    assert pcmu.pcm() == ulaw_to_pcm16(mulaw)
    assert pcmu.pcm()[:6] == (32124).to_bytes(2, "little") + b"\x00\x00" + (-32124).to_bytes(2, "little", signed=True)
    pcma = parse_server_event(frame, "audio/pcma")
    assert isinstance(pcma, AudioOut)
    assert pcma.pcm() == alaw_to_pcm16(mulaw)
    default = parse_server_event(frame)
    assert isinstance(default, AudioOut)
    assert (default.format, default.sample_rate, default.duration_ms) == ("audio/pcm", 24000, 50)
    assert default.pcm() == mulaw  # PCM16 is passed through as sent


def test_bad_base64_decodes_to_nothing_in_every_format() -> None:
    for fmt in ("audio/pcm", "audio/pcmu", "audio/pcma"):
        assert AudioOut("not base64!", format=fmt).pcm() == b""


EVERY_SAMPLE = b"".join(s.to_bytes(2, "little", signed=True) for s in range(-32768, 32768))


def test_encoders_match_the_stdlib_reference_where_it_still_exists() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # removed in Python 3.13
    assert pcm16_to_ulaw(EVERY_SAMPLE) == audioop.lin2ulaw(EVERY_SAMPLE, 2)
    assert pcm16_to_alaw(EVERY_SAMPLE) == audioop.lin2alaw(EVERY_SAMPLE, 2)


def test_every_code_round_trips_through_its_value() -> None:
    # A-law: all 256 codes are distinct values; μ-law: 0x7F and 0xFF are both 0, which encodes as 0xFF.
    assert pcm16_to_alaw(alaw_to_pcm16(EVERY_CODE)) == EVERY_CODE
    assert pcm16_to_ulaw(ulaw_to_pcm16(EVERY_CODE)) == EVERY_CODE.replace(b"\x7f", b"\xff")


@given(st.integers(-32768, 32767))
def test_encoding_then_decoding_stays_within_the_step_of_the_segment(sample: int) -> None:
    # G.711 keeps ~4 bits of mantissa: the error grows with the magnitude (1/16 of it), never beyond.
    for code, value in ((ulaw_code, ulaw_sample), (alaw_code, alaw_sample)):
        assert abs(value(code(sample)) - sample) <= abs(sample) // 16 + 12


@given(st.binary(max_size=2000))
def test_pcm16_round_trips_through_g711_at_half_the_bytes(pcm: bytes) -> None:
    for fmt, decode in (("audio/pcmu", ulaw_to_pcm16), ("audio/pcma", alaw_to_pcm16)):
        encoded = pcm16_to_g711(pcm, fmt)
        assert len(encoded) == len(pcm) // 2
        expected = encoded.replace(b"\x7f", b"\xff") if fmt == "audio/pcmu" else encoded  # μ-law's two zeros
        assert pcm16_to_g711(decode(encoded), fmt) == expected


def test_only_g711_formats_encode() -> None:
    with pytest.raises(ValueError, match=r"not a G\.711 format"):
        pcm16_to_g711(b"\x00\x00", "audio/pcm")
