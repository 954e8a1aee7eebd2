"""The API's one rule about changing the voice mid-session.

SDK docs (``RealtimeAudioConfigOutput.voice``): "Voice cannot be changed during the session once the model has
responded with audio at least once"; (``SessionUpdateEvent``): "``voice`` can be updated only if there have been no
other audio outputs yet." The error's wording is the review's report of the API's message (not in the recordings).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._validate import Invalid

__all__ = ["voice_change_problem"]

MESSAGE = "Cannot update a conversation's voice if assistant audio is present."


def voice_change_problem(session: Mapping[str, Any], update: Any, audio_ms: Mapping[str, int]) -> Invalid | None:
    """The problem of a ``session.update`` (already valid) that changes the voice of ``session`` after the assistant
    has spoken (``audio_ms``: milliseconds of output audio per assistant item still in the conversation)."""
    if not any(audio_ms.values()) or not isinstance(update, Mapping):
        return None
    output = (update.get("audio") or {}).get("output") or {}
    if not isinstance(output, Mapping) or "voice" not in output:
        return None
    if output["voice"] == ((session.get("audio") or {}).get("output") or {}).get("voice"):
        return None  # the same voice again changes nothing
    return Invalid("invalid_value", MESSAGE, "session.audio.output.voice")
