"""The user's audio the server holds uncommitted (sans-IO): what a rotation re-sends when it cuts an utterance.

The server's input buffer holds the audio appended since it was last committed (``input_audio_buffer.committed``,
by its VAD or a client ``commit``) or cleared. A rotation forced while the user speaks (it waited in vain for a
quiet moment) loses that buffer with the old session: the new session would hear only the utterance's tail.
:class:`AudioTail` keeps the audio frames written since the last commit or clear (the
newest ``MAX_BYTES`` of audio at most: an utterance, with the silence before it cut), so the rotation can
write them again on the new session before anything else the user says.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, Final

from ._events import ServerEvent, UnknownEvent

__all__ = ["MAX_BYTES", "AudioTail"]

#: At most this much audio is kept (15 s of PCM16 at 24 kHz).
MAX_BYTES: Final = 720_000

_ENDS_CLIENT: Final = frozenset({"input_audio_buffer.commit", "input_audio_buffer.clear"})
_ENDS_SERVER: Final = frozenset({"input_audio_buffer.committed", "input_audio_buffer.cleared"})


class AudioTail:
    """The audio frames written since the input buffer was last committed or cleared."""

    __slots__ = ("_bytes", "_frames", "_max")

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        # Built at the first frame (an empty deque holds a 64-slot block, ~760 bytes: idle conversations keep none).
        self._frames: deque[bytes] | None = None
        self._bytes = 0
        self._max = max_bytes

    def __len__(self) -> int:
        return 0 if self._frames is None else len(self._frames)

    def sent(self, payload: Mapping[str, Any]) -> None:
        """A client payload was written: a commit or clear empties the tail."""
        if payload.get("type") in _ENDS_CLIENT:
            self.clear()

    def wrote(self, frame: bytes) -> None:
        """An audio frame was written (``input_audio_buffer.append``)."""
        frames = self._frames
        if frames is None:
            frames = self._frames = deque()
        frames.append(frame)
        self._bytes += len(frame)
        while self._bytes > self._max and len(frames) > 1:
            self._bytes -= len(frames.popleft())

    def observe(self, event: ServerEvent) -> None:
        """A server event was read: a commit or clear empties the tail."""
        if isinstance(event, UnknownEvent) and event.type in _ENDS_SERVER:
            self.clear()

    def take(self) -> tuple[bytes, ...]:
        """The frames kept (oldest first); the tail is empty afterwards."""
        frames = () if self._frames is None else tuple(self._frames)
        self.clear()
        return frames

    def clear(self) -> None:
        self._frames = None
        self._bytes = 0
