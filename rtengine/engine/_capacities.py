"""Buffer sizes and bounds of one conversation: :class:`Capacities`."""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol._errors import ConfigError
from ._overload import DEFAULT_MAX_INPUT_AUDIO_AGE

__all__ = ["Capacities"]


@dataclass(frozen=True, slots=True)
class Capacities:
    """Buffer sizes: text and tool inputs wait when full, audio is dropped (and counted); ``events`` is the room
    for server events in ``conv.events`` (the final ``Error``/``Closed`` always fit); ``audio_out`` for received
    media frames.

    Each is bounded in bytes too (``*_bytes``; full by either bound applies the same policy, counted in
    ``stats.input_waits``, ``audio_bytes_dropped``, ``event_waits``): texts 1 MiB, tool outputs 4 MiB, audio 1 MiB
    (about 21 s of 24 kHz PCM16), events 8 MiB (counted as the size of the frames they came from). One item larger
    than its bound still passes when its buffer is empty. With the defaults a conversation holds at most about
    14 MiB of buffered data (plus one oversized item per buffer), not the gigabytes counts alone allow.

    ``max_input_audio_age`` (seconds; ``None``: no bound) is the overload policy of the input audio: a frame that
    waited longer to be written is dropped and counted (``stats.audio_frames_expired``), so the lag stays bounded
    (:mod:`~rtengine.engine._overload`)."""

    text: int = 64
    tools: int = 64
    audio: int = 256
    events: int = 256
    audio_out: int = 500
    text_bytes: int = 1 << 20
    tool_bytes: int = 4 << 20
    audio_bytes: int = 1 << 20
    events_bytes: int = 8 << 20
    max_input_audio_age: float | None = DEFAULT_MAX_INPUT_AUDIO_AGE

    def __post_init__(self) -> None:
        if min(self.text, self.tools, self.audio, self.events, self.audio_out) < 1:
            raise ConfigError("every channel capacity must be >= 1")
        if min(self.text_bytes, self.tool_bytes, self.audio_bytes, self.events_bytes) < 1:
            raise ConfigError("every channel byte bound must be >= 1")
        if self.max_input_audio_age is not None and not self.max_input_audio_age > 0:
            raise ConfigError("max_input_audio_age must be > 0 seconds (or None)")
