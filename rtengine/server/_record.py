"""What the local server saw, for tests that assert on the wire.

Every call creation becomes a :class:`CallRecord`, every websocket handshake (accepted or not) a
:class:`ConnectionRecord`. Header values of secret headers are redacted in reprs; the raw values stay
available to tests through ``headers``. The record is a ring: it keeps the ``limit`` most recent calls,
connections and hang-ups (``ServerOptions.record_limit``; ``None`` records everything, for tests), so a server
that runs for days holds a bounded amount of history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio

from ..protocol._headers import redact
from ._validate import ClientFrame

__all__ = ["CallRecord", "ConnectionRecord", "Ring", "ServerRecord"]

T = TypeVar("T")


class Ring(list[T]):
    """A list that keeps only its ``limit`` most recent items (all of them when ``limit`` is None): appending
    beyond the limit drops the oldest. Still a list: indexing, slicing and ``==`` work as tests expect."""

    def __init__(self, limit: int | None) -> None:
        super().__init__()
        if limit is not None and limit < 1:
            raise ValueError("a ring's limit must be >= 1 (or None: no limit)")
        self.limit = limit
        #: How many items were dropped to stay within the limit.
        self.dropped = 0

    def append(self, item: T) -> None:
        super().append(item)
        if self.limit is not None and len(self) > self.limit:
            self.dropped += len(self) - self.limit
            del self[: len(self) - self.limit]


@dataclass(slots=True)
class CallRecord:
    """One ``POST /realtime/calls``: what came in and what went out."""

    path: str
    query: str
    headers: dict[str, str] = field(repr=False)
    content_type: str
    sdp: str | None = field(default=None, repr=False)
    session: dict[str, Any] | None = None
    part_names: list[str] = field(default_factory=list)
    part_types: list[str] = field(default_factory=list)
    status: int = 0
    call_id: str | None = None
    error: str | None = None
    #: The call's peer connection reached "connected"; audio frames received over RTP (and their first 10 s).
    connected: bool = False
    audio_frames_in: int = 0
    audio_in: bytearray = field(default_factory=bytearray, repr=False)
    #: Client events received on the call's ``oai-events`` data channel (parsed JSON, the raw text, or
    #: ``"<binary>"``), and how many of them were refused with an ``error`` event (binary, or after the call ended).
    data_frames_in: list[Any] = field(default_factory=list, repr=False)
    data_frames_refused: int = 0
    #: Server events sent on the call's data channel (parsed JSON), in order.
    data_frames_out: list[Any] = field(default_factory=list, repr=False)
    #: How the call ended, ``None`` while it is live: ``hangup`` (``POST …/hangup`` answered 200),
    #: ``media_closed`` (its peer connection failed or closed once connected), ``media_failed`` (it failed before
    #: connecting), ``media_timeout`` (not connected within ``ServerOptions.call_connect_seconds``),
    #: ``unused`` (no sideband joined it and its data channel carried no client event within
    #: ``ServerOptions.unused_call_seconds``), ``session_expired`` (the session cap), ``end_call``
    #: (``LocalServer.end_call``), ``server_shutdown`` (the server stopped). Sidebands leaving never end a call.
    end: str | None = None

    @property
    def hung_up(self) -> bool:
        """The call was ended by ``POST /v1/realtime/calls/{call_id}/hangup``."""
        return self.end == "hangup"

    @property
    def safe_headers(self) -> dict[str, str]:
        return redact(self.headers)


@dataclass(slots=True)
class ConnectionRecord:
    """One websocket connection. ``end`` says how it ended:

    ``client_close`` (the client sent CLOSE ``close_code``), ``server_close`` (the server sent CLOSE
    ``close_code``), ``abrupt`` (the server dropped TCP with a reset), ``server_eof`` (the server closed TCP without
    a close frame), ``eof`` (the client's TCP ended without CLOSE), ``rejected``
    (handshake answered ``status``), ``handshake_abandoned`` (the client left before the accept),
    ``session_expired`` (the session cap: the server sent CLOSE 1001), ``call_ended`` (its call ended),
    ``too_slow`` (the client took no frame for ``slow_client_seconds``: the server reset it), ``protocol_error``,
    ``too_big``, ``server_shutdown``. ``None`` while it is open.
    """

    kind: str  # "direct" or "sideband"
    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(repr=False)
    call_id: str | None = None
    accepted: bool = False
    status: int | None = None
    frames_in: list[Any] = field(default_factory=list, repr=False)
    frames_out: list[Any] = field(default_factory=list, repr=False)
    binary_in: int = 0
    end: str | None = None
    close_code: int | None = None
    close_answered: bool | None = None

    @property
    def safe_headers(self) -> dict[str, str]:
        return redact(self.headers)

    def types_in(self) -> list[str]:
        """The ``type`` of each client frame received, in order (``"<invalid>"`` for non-JSON frames)."""
        return [f.get("type", "<untyped>") if isinstance(f, dict) else "<invalid>" for f in self.frames_in]

    def types_out(self) -> list[str]:
        """The ``type`` of each event the server sent, in order (``"<raw>"`` for injected non-events)."""
        return [f.get("type", "<untyped>") if isinstance(f, dict) else "<raw>" for f in self.frames_out]


class ServerRecord:
    """What the server saw, in arrival order: the ``limit`` most recent calls, connections and hang-ups (``None``:
    everything). :meth:`wait_until` blocks until a predicate holds."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.calls: Ring[CallRecord] = Ring(limit)
        self.connections: Ring[ConnectionRecord] = Ring(limit)
        #: Call ids ended by ``POST …/hangup`` (answered 200), in order.
        self.hangups: Ring[str] = Ring(limit)
        #: The ``{call_id}`` of every hang-up answered 404 (unknown, malformed, or already ended; at most 200
        #: characters each), in order.
        self.refused_hangups: Ring[str] = Ring(limit)
        #: ``event_id`` of every event that is deliberately not a GA server event (the ``unknown_event`` and
        #: ``oversized`` fault injections); raw injected frames are recorded as ``"<malformed>"``/``"<binary>"``.
        self.injected_event_ids: set[str] = set()
        self._changed = trio.Event()

    def changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def sidebands(self) -> list[ConnectionRecord]:
        return [c for c in self.connections if c.kind == "sideband"]

    def joins(self, call_id: str) -> list[ConnectionRecord]:
        """Every sideband handshake for ``call_id`` (accepted or not), in order: each join and re-join of the call,
        with the frames each connection carried."""
        return [c for c in self.connections if c.kind == "sideband" and c.call_id == call_id]

    def directs(self) -> list[ConnectionRecord]:
        return [c for c in self.connections if c.kind == "direct"]

    def client_events(self, call_id: str | None = None) -> list[dict[str, Any]]:
        """The client events the server received as JSON objects (others — binary, not JSON — are left out): those of
        each websocket in the order the websockets arrived, then those of each call's data channel. With
        ``call_id``, only that call's sidebands and data channel."""
        frames = [f for c in self.connections if call_id in (None, c.call_id) for f in c.frames_in]
        frames += [f for c in self.calls if call_id in (None, c.call_id) for f in c.data_frames_in]
        return [f for f in frames if isinstance(f, dict)]

    def hung_up_calls(self) -> list[CallRecord]:
        """The calls ended by a hang-up, in creation order."""
        return [c for c in self.calls if c.hung_up]

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` is true; re-checked after every recorded change. Put a deadline around it."""
        while not predicate():
            await self._changed.wait()

    def frame_in(self, conn: ConnectionRecord, frame: ClientFrame) -> None:
        conn.frames_in.append(frame.recorded)
        self.changed()

    def data_frame_in(self, call: CallRecord, message: ClientFrame | bytes) -> None:
        call.data_frames_in.append(message.recorded if isinstance(message, ClientFrame) else "<binary>")
        self.changed()
