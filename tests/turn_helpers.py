"""Helpers for the user-turn tests: speaking into a socket like a microphone, and a strict check
of server events against the official ``openai`` SDK's GA types (unknown fields rejected)."""

from typing import Any

from sdk_events import assert_sdk_valid

from rtengine.adapters._ws import RealtimeSocket
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


def sdk_check(event: dict[str, Any]) -> None:
    """Raise unless ``event`` validates against the SDK model of its ``type`` with no unknown field anywhere (for
    events that never crossed a local server's socket, which the suite-wide fixture checks already)."""
    assert_sdk_valid(event)
