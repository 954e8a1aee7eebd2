"""The server's status events: rate limits and, on calls, the playback of the output audio buffer. Re-exported
from :mod:`rtengine.protocol._events` (and :mod:`rtengine.events`); never subclass them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = ["OutputAudioCleared", "OutputAudioStarted", "OutputAudioStopped", "RateLimit", "RateLimits"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One entry of ``rate_limits.updated``."""

    name: str
    limit: int | None = None
    remaining: int | None = None
    reset_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class RateLimits:
    """``rate_limits.updated``."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "rate_limits.updated"

    limits: tuple[RateLimit, ...]
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutputAudioStarted:
    """``output_audio_buffer.started`` (WebRTC/SIP): the server began playing a response."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "output_audio_buffer.started"

    response_id: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutputAudioStopped:
    """``output_audio_buffer.stopped`` (WebRTC/SIP): playback of a response finished."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "output_audio_buffer.stopped"

    response_id: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutputAudioCleared:
    """``output_audio_buffer.cleared`` (WebRTC/SIP): playback was cut."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "output_audio_buffer.cleared"

    response_id: str | None = None
    event_id: str | None = None
