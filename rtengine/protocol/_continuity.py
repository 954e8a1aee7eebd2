"""Lifecycle events of a websocket conversation that outlives its socket (``reconnect=True``): the drop and the
restore. (A rotation before the session cap is :class:`~rtengine.events.SessionRotated`.)

A websocket conversation's loss is not a sideband's (:class:`~rtengine.events.SidebandLost`: the call lives on and
the same call is joined again): the session is gone with its socket, so rtengine opens a *new* session and
replays the conversation into it — hence a distinct pair of events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = ["ConnectionDropped", "SessionRestored"]


@dataclass(frozen=True, slots=True)
class ConnectionDropped:
    """A websocket conversation's socket was lost abnormally (a reset, an EOF without a close frame, or a close
    with 1001/1011/1012/1013 other than the session cap) and ``reconnect=True``: rtengine opens a new session;
    inputs keep buffering meanwhile. ``code``/``reason``: the close frame's, ``None`` when there was none
    (``reason`` then says what happened)."""

    #: None: rtengine's own event (a phase of the conversation, not a frame from the server).
    wire_type: ClassVar[None] = None

    code: int | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class SessionRestored:
    """The conversation goes on in a new session after a :class:`ConnectionDropped`: ``items_replayed`` items of
    the history were replayed into it (user texts and transcripts, assistant texts and transcripts, tool calls and
    their outputs). ``state_restored`` is True only when the replay rebuilt the whole conversation: False when
    audio had no transcript, an item could not be rebuilt, the history was truncated (its item bound), or the
    server refused a replayed item. ``attempts``: the connects it took; ``gap_ms``: from the drop until the
    replay was accepted and the queued inputs could go out again."""

    #: None: rtengine's own event (a phase of the conversation, not a frame from the server).
    wire_type: ClassVar[None] = None

    items_replayed: int
    state_restored: bool
    attempts: int = 1
    gap_ms: float = 0.0
