"""The local server's fake input transcription: a deterministic sentence about the audio.

There is no speech recognition here. A committed user audio item is "transcribed" as what a test can predict
from the audio it sent: its dominant tone (rounded to 10 Hz) and how long it was voiced (rounded to 0.1 s), e.g.
``"Tone of 440 Hz for 0.6 seconds."``. Audio with no voiced frame (silence, an idle timeout's turn) transcribes
as ``""`` with no deltas, as the API transcribes silence. The deltas are the transcript's words (each but the
first with its leading space), so they join to the transcript; usage is billed by duration, whole seconds up.
Pure: no I/O, no trio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..protocol._audio import dominant_frequency
from ._vad import voiced_ms

__all__ = ["Transcript", "transcribe"]


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    deltas: tuple[str, ...]
    #: The committed audio's duration, in milliseconds (what usage bills).
    audio_ms: float

    def usage(self) -> dict[str, Any]:
        return {"type": "duration", "seconds": math.ceil(self.audio_ms / 1000)}


def transcribe(pcm16: bytes, rate: int, level: float) -> Transcript:
    """The fake transcript of ``pcm16`` (mono at ``rate`` Hz); frames at or above ``level`` count as voiced."""
    audio_ms = len(pcm16) / 2 * 1000 / rate
    voiced = voiced_ms(pcm16, rate, level)
    if voiced == 0:
        return Transcript("", (), audio_ms)
    hz = round(dominant_frequency(pcm16, rate=rate, min_level=level) / 10) * 10
    text = f"Tone of {hz} Hz for {voiced / 1000:.1f} seconds."
    words = text.split(" ")
    return Transcript(text, (words[0], *(" " + word for word in words[1:])), audio_ms)
