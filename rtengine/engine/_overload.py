"""The input audio's overload policy: bounded lag, counted drops, one summary line per interval.

A live conversation's audio is worth sending only while it is fresh. When the process cannot keep up (too many
conversations for its CPU, a slow socket), audio waits in the conversation's input buffer; rtengine never lets
that wait grow into seconds of backlog:

* **Bounded lag.** A frame that waited longer than ``Capacities.max_input_audio_age`` (default
  :data:`DEFAULT_MAX_INPUT_AUDIO_AGE`; ``None`` turns the bound off) when the writer comes to take it is dropped
  and counted (``stats.audio_frames_expired``, ``audio_bytes_expired``) — the oldest audio goes, the fresh audio is
  sent. The wait counts from when the frame was queued or from when the current socket became writable, whichever
  is later: audio buffered while the socket is being opened (or re-opened) is written at once when it is up, not
  dropped for a wait no overload caused.
* **Fewer, larger writes.** Frames that waited together go out in one ``input_audio_buffer.append`` (the API takes
  any length), at most :data:`MAX_APPEND_BYTES` each, in order; ``stats.audio_frames_sent`` still counts frames,
  ``stats.audio_appends_sent`` the appends.
* **Visible.** ``stats.input_audio_lag`` is how long the oldest frame of the last write waited (seconds),
  ``input_audio_lag_max`` the largest; ``audio_frames_dropped`` (buffer full) and ``audio_frames_expired`` count
  the drops, so an app can shed load.
* **Quiet logs.** Drops are logged as a summary, never one line per frame: the first drop at once, then at most one
  WARNING per :data:`DROP_LOG_INTERVAL` seconds with the counts since the last line, and whatever is left
  when the conversation ends.
"""

from __future__ import annotations

import logging
from typing import Final

import trio

__all__ = ["DEFAULT_MAX_INPUT_AUDIO_AGE", "DROP_LOG_INTERVAL", "MAX_APPEND_BYTES", "DropSummary"]

log = logging.getLogger("rtengine")

#: Input audio older than this (seconds) when it would be written is dropped.
DEFAULT_MAX_INPUT_AUDIO_AGE: Final = 0.5
#: At most one drop summary line per this many seconds per conversation.
DROP_LOG_INTERVAL: Final = 5.0
#: The largest ``input_audio_buffer.append`` built from frames that waited together (1 s of PCM16 at 24 kHz).
MAX_APPEND_BYTES: Final = 48_000


class DropSummary:
    """Counts input audio drops and logs them as one line per interval (see the module docstring)."""

    __slots__ = ("_expired", "_full", "_last", "_max_age")

    def __init__(self, max_age: float | None) -> None:
        self._max_age = max_age
        self._full = 0
        self._expired = 0
        self._last: float | None = None

    def dropped(self, *, full: int = 0, expired: int = 0) -> None:
        """``full`` frames were refused (buffer full) and ``expired`` dropped as too old: log when it is time."""
        self._full += full
        self._expired += expired
        now = trio.current_time()
        if self._last is None or now - self._last >= DROP_LOG_INTERVAL:
            self._log(now)

    def flush(self) -> None:
        """The conversation ended: log what was dropped since the last line, if anything."""
        if self._full or self._expired:
            self._log(trio.current_time())

    def _log(self, now: float) -> None:
        since = "" if self._last is None else f" in the last {now - self._last:.1f} s"
        age = "off" if self._max_age is None else f"{self._max_age * 1000:.0f} ms"
        log.warning(
            "realtime input audio dropped%s: %d frames (buffer full), %d frames (older than %s)",
            since,
            self._full,
            self._expired,
            age,
        )
        self._full = self._expired = 0
        self._last = now
