"""Helpers for the user-turn tests: speaking into a socket like a microphone, G.711 encoding, and a strict check
of server events against the official ``openai`` SDK's GA types (unknown fields rejected)."""

import bisect
import functools
import typing
from typing import Any

from openai import BaseModel
from openai.types.realtime.realtime_server_event import RealtimeServerEvent

from rtengine.adapters._ws import RealtimeSocket
from rtengine.protocol._g711 import alaw_sample, ulaw_sample
from rtengine.protocol._payloads import encode, input_audio_append

#: Microphone chunk size: 20 ms of PCM16 at 24 kHz.
CHUNK_MS = 20


async def speak(sock: RealtimeSocket, audio: bytes, *, bytes_per_ms: int = 48) -> None:
    """Append ``audio`` in 20 ms chunks, as a microphone would."""
    step = bytes_per_ms * CHUNK_MS
    for start in range(0, len(audio), step):
        await sock.send(encode(input_audio_append(audio[start : start + step])))


def silence(ms: int, *, bytes_per_ms: int = 48) -> bytes:
    return b"\x00" * (ms * bytes_per_ms)


@functools.cache
def _g711_index(kind: str) -> tuple[list[int], list[int]]:
    decode = ulaw_sample if kind == "audio/pcmu" else alaw_sample
    pairs = sorted((decode(code), code) for code in range(256))
    return [v for v, _ in pairs], [c for _, c in pairs]


def g711_encode(pcm16: bytes, kind: str) -> bytes:
    """PCM16 little-endian → G.711 (``audio/pcmu`` or ``audio/pcma``), each sample to its nearest code."""
    values, codes = _g711_index(kind)
    out = bytearray()
    for i in range(0, len(pcm16) - 1, 2):
        sample = int.from_bytes(pcm16[i : i + 2], "little", signed=True)
        at = min(bisect.bisect_left(values, sample), len(values) - 1)
        if at > 0 and abs(values[at - 1] - sample) <= abs(values[at] - sample):
            at -= 1
        out.append(codes[at])
    return bytes(out)


@functools.cache
def _models() -> dict[str, type[BaseModel]]:
    union = typing.get_args(RealtimeServerEvent)[0]
    models: dict[str, type[BaseModel]] = {}
    for model in typing.get_args(union):
        for literal in typing.get_args(model.model_fields["type"].annotation):
            models[literal] = model
    return models


def _extras(value: object, path: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, BaseModel):
        found += [f"{path}.{key}" for key in value.model_extra or {}]
        for name in type(value).model_fields:
            found += _extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for index, entry in enumerate(value):
            found += _extras(entry, f"{path}[{index}]")
    return found


def sdk_check(event: dict[str, Any]) -> None:
    """Raise unless ``event`` validates against the SDK model of its ``type`` with no unknown field anywhere."""
    model = _models()[event["type"]]
    parsed = model.model_validate(event)
    extras = _extras(parsed, event["type"])
    assert extras == [], f"fields the SDK does not know: {extras}"
