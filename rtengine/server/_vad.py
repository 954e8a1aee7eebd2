"""The local server's voice activity detection: input formats, turn-detection settings, and an energy VAD.

The real API detects speech with a model; the local server approximates it with loudness, deterministically:

- Input audio is cut into 10 ms frames of the session's input format (``audio/pcm`` PCM16 at 24 kHz, or G.711
  ``audio/pcmu``/``audio/pcma`` at 8 kHz, decoded here to PCM16 to measure it). A frame is *voiced* when its RMS
  level reaches ``threshold / 10`` of full scale (the default ``threshold`` 0.5 → 0.05, about -26 dBFS).
- Speech starts at the first voiced frame; ``audio_start_ms`` goes back ``prefix_padding_ms`` (not before the
  buffered audio). Speech stops once ``silence_duration_ms`` of unvoiced frames follow; ``audio_end_ms`` is the
  end of that silence, as the API reports it.
- ``semantic_vad`` behaves the same, with the default threshold and prefix, and a silence of 200/500/1000 ms for
  ``eagerness`` high / medium or auto / low.

Pure: no I/O, no trio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ..protocol._audio import rms
from ..protocol._g711 import alaw_to_pcm16, ulaw_to_pcm16

__all__ = [
    "FRAME_MS",
    "InputFormat",
    "VadSettings",
    "Voice",
    "input_format",
]

#: The VAD's frame length.
FRAME_MS: Final = 10

_SEMANTIC_SILENCE_MS: Final = {"high": 200, "medium": 500, "auto": 500, "low": 1000}


#: G.711 decoders to PCM16, per format type.
G711_DECODERS: Final = {"audio/pcmu": ulaw_to_pcm16, "audio/pcma": alaw_to_pcm16}


@dataclass(frozen=True, slots=True)
class InputFormat:
    """The session's input audio format: its type, sample rate and bytes per millisecond."""

    type: str = "audio/pcm"
    rate: int = 24000

    @property
    def bytes_per_ms(self) -> int:
        return self.rate * (2 if self.type == "audio/pcm" else 1) // 1000

    @property
    def frame_bytes(self) -> int:
        return self.bytes_per_ms * FRAME_MS

    def ms(self, nbytes: int) -> float:
        """The duration of ``nbytes`` of audio in this format, in milliseconds."""
        return nbytes / self.bytes_per_ms

    def pcm16(self, audio: bytes) -> bytes:
        """``audio`` as PCM16 little-endian mono at :attr:`rate` (G.711 decoded)."""
        decode = G711_DECODERS.get(self.type)
        return audio if decode is None else decode(audio)


def input_format(session: dict[str, Any]) -> InputFormat:
    """The input format a session names (``audio.input.format``); PCM16 24 kHz when absent or unknown."""
    fmt = ((session.get("audio") or {}).get("input") or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") in G711_DECODERS:
        return InputFormat(str(fmt["type"]), 8000)
    return InputFormat()


def _number(value: Any, default: float, low: float, high: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high:
        return float(value)
    return default


@dataclass(frozen=True, slots=True)
class VadSettings:
    """What the energy VAD needs from a ``turn_detection`` object (bad or absent values take the defaults)."""

    level: float = 0.05
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 200
    idle_timeout_ms: int | None = None
    create_response: bool = True
    interrupt_response: bool = True

    @classmethod
    def of(cls, detection: dict[str, Any]) -> VadSettings:
        semantic = detection.get("type") == "semantic_vad"
        if semantic:
            silence = _SEMANTIC_SILENCE_MS.get(str(detection.get("eagerness")), 500)
            threshold, prefix, idle = 0.5, 300, None
        else:
            threshold = _number(detection.get("threshold"), 0.5, 0.0, 1.0)
            prefix = int(_number(detection.get("prefix_padding_ms"), 300, 0, 10_000))
            silence = int(_number(detection.get("silence_duration_ms"), 200, 0, 10_000))
            raw_idle = detection.get("idle_timeout_ms")
            idle = int(_number(raw_idle, 0, 1, 3_600_000)) or None
        return cls(
            level=max(threshold / 10, 0.0005),
            prefix_padding_ms=prefix,
            silence_duration_ms=max(silence, FRAME_MS),
            idle_timeout_ms=idle,
            create_response=detection.get("create_response") is not False,
            interrupt_response=detection.get("interrupt_response") is not False,
        )


class Voice:
    """The energy VAD's state across frames: whether the user is speaking, and for how long it has been quiet."""

    def __init__(self) -> None:
        self.speaking = False
        self.quiet_ms = 0

    def step(self, frame_pcm16: bytes, settings: VadSettings) -> str | None:
        """One 10 ms frame: ``"start"`` when speech starts on it, ``"stop"`` when it ends the speech, else None."""
        voiced = rms(frame_pcm16) >= settings.level
        if not self.speaking:
            if voiced:
                self.speaking, self.quiet_ms = True, 0
                return "start"
            return None
        self.quiet_ms = 0 if voiced else self.quiet_ms + FRAME_MS
        if self.quiet_ms >= settings.silence_duration_ms:
            self.speaking = False
            return "stop"
        return None

    def reset(self) -> None:
        """Forget a speech in progress (the buffer was committed or cleared by the client)."""
        self.speaking, self.quiet_ms = False, 0


def voiced_ms(pcm16: bytes, rate: int, level: float) -> int:
    """How many milliseconds of ``pcm16`` are voiced (10 ms frames at or above ``level``)."""
    frame = rate * FRAME_MS // 1000 * 2
    return sum(FRAME_MS for i in range(0, len(pcm16) - frame + 1, frame) if rms(pcm16[i : i + frame]) >= level)
