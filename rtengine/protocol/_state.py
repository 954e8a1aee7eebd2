"""The small state machines of a conversation (pure, no trio): response sequencing, barge-in truncation,
tool-call dedupe.

Theory of operation. The :class:`~rtengine.protocol.Brain` calls these synchronously, between checkpoints, so each
decision is atomic with respect to every other task: a decision returns *what to send*; the task sends it afterwards.

* :class:`ResponseSequencer` — never two ``response.create`` in flight. ``request()``
  returns True when a create must go out now; otherwise one create is owed (requests coalesce) and
  ``on_done()`` returns True when it must go out. Terminal events are correlated by ``response_id``, so a stale
  ``response.done`` (after a cancellation) cannot clear a newer response. The server's active-response error is a
  deferral (``on_conflict``).
* :class:`TruncationTracker` — how much assistant audio arrived for the current item; on barge-in,
  ``take()`` returns the ``(item_id, audio_end_ms)`` to truncate at, clamped to what was received (and to the
  playback position when the app reports one); nothing for an item with 0 ms.
* :class:`ToolCallDedupe` — one ``ToolCall`` per ``call_id`` per generation.
* :class:`SentEvents` — every client event rtengine sends gets an ``event_id`` (a per-conversation prefix and a
  counter); the types of the most recent ones are remembered, so a server ``error`` naming one can be traced to
  the request that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ResponseSequencer", "SentEvents", "ToolCallDedupe", "TruncationTracker", "audio_duration_ms"]


class ResponseSequencer:
    """At most one ``response.create`` in flight; later requests coalesce into one owed create."""

    __slots__ = ("active", "pending", "response_id", "unacked")

    def __init__(self) -> None:
        #: A default-conversation response is in flight (ours or one the server started, e.g. by VAD).
        self.active = False
        #: One create is owed, to be sent when the active response ends.
        self.pending = False
        #: The id of the response in flight, once ``response.created`` named it.
        self.response_id: str | None = None
        #: A create was handed out to be sent and no ``response.created`` acknowledged it yet.
        self.unacked = False

    def request(self) -> bool:
        """The caller wants a response. True: send ``response.create`` now. False: it is owed (deferred)."""
        if self.active:
            self.pending = True
            return False
        self.active = True
        self.response_id = None
        self.unacked = True
        return True

    def on_created(self, response_id: str | None) -> None:
        self.active = True
        self.response_id = response_id
        self.unacked = False

    def on_done(self, response_id: str | None) -> bool:
        """A response ended (``response.done`` whatever its status, or ``response.cancelled``).

        Returns True when the owed create must be sent now. A terminal event for another response than the one
        in flight is stale and changes nothing.
        """
        if response_id is not None and self.response_id is not None and response_id != self.response_id:
            return False
        self.active = False
        self.response_id = None
        self.unacked = self.pending
        if self.pending:
            self.pending = False
            self.active = True
            return True
        return False

    def on_refused(self) -> bool:
        """The server refused a ``response.create`` (bad parameters): if it was the one handed out and not yet
        acknowledged, no response is in flight after all. Returns True when the owed create must be sent now."""
        if not self.unacked:
            return False
        self.active = self.unacked = False
        if not self.pending:
            return False
        self.pending = False
        self.active = self.unacked = True
        return True

    def on_conflict(self) -> None:
        """The server said a response is already active: our create is owed until that one ends."""
        self.active = True
        self.pending = True
        self.unacked = False

    def adopt(self) -> None:
        """A create repeated after a re-join was refused because a response is active: that response is taken as
        the one requested (the first create reached the server), so nothing more is owed."""
        self.active = True
        self.unacked = False


def audio_duration_ms(
    audio_b64: str,
    *,
    sample_rate: int = 24000,
    num_channels: int = 1,
    samples_per_channel: int | None = None,
    bytes_per_sample: int = 2,
) -> int:
    """Duration of one audio delta in ms: from ``samples_per_channel`` when given, else from the length of the
    base64 text (nothing is decoded: 4 characters carry 3 bytes, less the padding). ``bytes_per_sample`` is 2 for
    PCM16 and 1 for G.711 (``audio/pcmu``/``audio/pcma``, 8 kHz)."""
    if sample_rate <= 0:
        return 0
    if samples_per_channel is None:
        size = len(audio_b64) // 4 * 3 - audio_b64[-2:].count("=")
        samples_per_channel = max(size, 0) // max(bytes_per_sample, 1) // max(num_channels, 1)
    return samples_per_channel * 1000 // sample_rate


@dataclass(slots=True)
class _Tracked:
    item_id: str
    received_ms: int


class TruncationTracker:
    """Assistant audio received per item, for barge-in truncation (websocket transport only)."""

    __slots__ = ("_current",)

    def __init__(self) -> None:
        self._current: _Tracked | None = None

    @property
    def received_ms(self) -> int:
        return self._current.received_ms if self._current is not None else 0

    def on_audio(self, item_id: str | None, duration_ms: int) -> None:
        """Count a delta. Frames without an item id or with no duration are ignored; a new item id resets."""
        if item_id is None or duration_ms <= 0:
            return
        if self._current is not None and self._current.item_id == item_id:
            self._current.received_ms += duration_ms
        else:
            self._current = _Tracked(item_id, duration_ms)

    def clear(self) -> None:
        self._current = None

    def take(self, played_ms: int | None = None) -> tuple[str, int] | None:
        """On speech start: ``(item_id, audio_end_ms)`` to truncate at, or None. Clears the state."""
        current, self._current = self._current, None
        if current is None or current.received_ms <= 0:
            return None
        end = current.received_ms if played_ms is None else max(0, min(played_ms, current.received_ms))
        if end <= 0:
            return None
        return current.item_id, end


class ToolCallDedupe:
    """Remembers the ``call_id`` of every tool call seen in this generation."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        # A dict used as an ordered set: empty, it is a quarter of an empty set (one per conversation).
        self._seen: dict[str, None] = {}

    def first(self, call_id: str) -> bool:
        """True the first time ``call_id`` is seen."""
        if call_id in self._seen:
            return False
        self._seen[call_id] = None
        return True


class SentEvents:
    """Client event ids: ``prefix`` + a counter, stamped on each payload as it is sent; the types of the last
    ``capacity`` ids are kept (the oldest forgotten as each new one is stamped), so :meth:`lookup` is O(1) and
    memory is bounded — and grows with use: a conversation that sends little holds little (an 8 KiB ring
    allocated up front was half of what building a conversation allocated, on the time-to-answer path)."""

    __slots__ = ("_capacity", "_next", "_types", "prefix")

    def __init__(self, prefix: str, capacity: int = 1024) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.prefix = prefix
        self._capacity = capacity
        self._types: dict[int, str] = {}
        self._next = 0

    def stamp(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Give ``payload`` the next ``event_id`` (replacing any it had) and remember its type; returns it."""
        number = self._next
        self._next = number + 1
        payload["event_id"] = f"{self.prefix}{number}"
        types = self._types
        types[number] = str(payload["type"])
        if number >= self._capacity:
            del types[number - self._capacity]
        return payload

    def lookup(self, event_id: str | None) -> str | None:
        """The type of the sent event with this id, or None (not ours, or too old to be remembered)."""
        if event_id is None or not event_id.startswith(self.prefix):
            return None
        digits = event_id[len(self.prefix) :]
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 18 or digits[:1] == "0" != digits:
            return None
        number = int(digits)
        return self._types.get(number)
