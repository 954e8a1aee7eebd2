"""Lifecycle events of a conversation and its counters (pure values).

``Started`` is always the first event on ``conv.events``; ``Closed`` the last (exactly one, unless the
conversation was replaced by a restart); an ``Error`` with ``fatal=True`` is always followed by
``Closed("error")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from ._continuity import ConnectionDropped, SessionRestored
from ._events import ServerEvent

__all__ = [
    "Closed",
    "ConversationEvent",
    "ConversationStats",
    "Error",
    "SidebandLost",
    "SidebandRestored",
    "SocketEnd",
    "SessionRotated",
    "Started",
]


@dataclass(frozen=True, slots=True)
class Started:
    """The conversation is running: inputs are accepted (and queue until the sideband joins)."""

    #: None: rtengine's own event (a phase of the conversation, not a frame from the server).
    wire_type: ClassVar[None] = None

    transport: Literal["websocket", "webrtc", "sip"]
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class Error:
    """Something went wrong. ``fatal=True`` ends the conversation (``Closed("error")`` follows); a non-fatal
    error (a benign server error) is informational and the conversation goes on. ``code`` is the server's error
    code when there is one. ``request_type``/``request_event_id``: the client event rtengine sent that the server's
    error names (its ``error.event_id``), e.g. ``("response.create", "rte_1a2b3c4d_7")``; ``None`` when the error
    names no event rtengine sent."""

    #: None: rtengine's own event (a phase of the conversation, not a frame from the server).
    wire_type: ClassVar[None] = None

    message: str
    code: str | None = None
    fatal: bool = True
    request_type: str | None = None
    request_event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Closed:
    """The conversation ended. ``reason``: ``requested`` (the caller closed it), ``transport_closed`` (the server
    ended the socket), ``call_ended`` (a WebRTC call is over: its sideband was closed cleanly with 1000, a re-join
    found the call gone (404), or rtengine's own media peer failed or closed once connected), ``session_expired``
    (the provider's session cap: the socket — a websocket session or a call's sideband — was closed with 1001
    "Your session hit the maximum duration of …", and the session could not be rotated) or ``error`` (after the
    one fatal ``Error``).
    ``code``/``detail``: the websocket close code and reason when the server closed it."""

    #: None: rtengine's own event (a phase of the conversation, not a frame from the server).
    wire_type: ClassVar[None] = None

    reason: Literal["requested", "transport_closed", "call_ended", "session_expired", "error"]
    code: int | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class SidebandLost:
    """A WebRTC call's sideband was lost abnormally while the call lives (a reset, an EOF without a close frame,
    or a close with 1001/1011/1012/1013): rtengine re-joins the same ``call_id``; inputs keep buffering meanwhile.
    ``code``/``reason``: the close frame's, ``None`` when there was none (``reason`` then says what happened)."""

    #: None: rtengine's own event (a phase of the conversation, not a frame from the server).
    wire_type: ClassVar[None] = None

    code: int | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class SidebandRestored:
    """The sideband is back after a :class:`SidebandLost`: ``attempts`` joins it took (1 = the first re-join
    succeeded), ``gap_ms`` from the loss until ``session.update`` was written on the new socket."""

    #: None: rtengine's own event (a phase of the conversation, not a frame from the server).
    wire_type: ClassVar[None] = None

    attempts: int
    gap_ms: float


@dataclass(frozen=True, slots=True)
class SessionRotated:
    """The session was rotated before its cap (``expires_at``): the conversation goes on in a new session, with
    the history replayed into it. On a WebRTC call rtengine is the media peer of, a new call was dialed and the
    old one hung up: ``old_call_id``/``new_call_id`` (``conv.call_id`` is the new one now). ``gap_ms``: how long
    no input could be written (from the old sideband's stop until the history was replayed on the new one and the
    inputs went out again).
    ``old_session_id``/``new_session_id``: the sessions' ids, when the server named them. ``state_restored``: the
    new session has the whole context (False when some of the history could not be replayed — e.g. spoken turns
    without a transcript — or the server refused an item; counted in ``stats.rotations_incomplete``)."""

    #: None: rtengine's own event (a phase of the conversation, not a frame from the server).
    wire_type: ClassVar[None] = None

    old_call_id: str | None
    new_call_id: str | None
    gap_ms: float
    old_session_id: str | None = None
    new_session_id: str | None = None
    state_restored: bool = True


@dataclass(slots=True)
class ConversationStats:
    """A conversation's counters. ``conv.stats`` returns a snapshot: a copy, taken when it is read (the engine
    keeps counting in its own instance)."""

    #: Audio frames accepted by ``send_audio`` (queued).
    audio_frames_queued: int = 0
    #: Audio frames dropped because the audio buffer was full, in frames or in bytes (``send_audio`` never blocks).
    audio_frames_dropped: int = 0
    #: The bytes of those dropped frames.
    audio_bytes_dropped: int = 0
    #: Texts and tool items whose sender had to wait for room (their buffer was full, in count or in bytes).
    input_waits: int = 0
    #: Server events that waited for room in ``conv.events`` (full in count or in bytes: the caller reads slower
    #: than the server sends; the socket reader waits, which is the backpressure).
    event_waits: int = 0
    #: ``input_audio_buffer.append`` events written to the socket.
    audio_frames_sent: int = 0
    #: User texts written to the socket.
    texts_sent: int = 0
    #: ``function_call_output`` items written to the socket.
    tool_outputs_sent: int = 0
    #: ``response.create`` events written (after sequencing).
    responses_requested: int = 0
    #: ``response.create`` requests that were deferred behind an active response.
    responses_deferred: int = 0
    #: Barge-in ``conversation.item.truncate`` events written.
    truncations_sent: int = 0
    #: Frames received from the server.
    frames_received: int = 0
    #: Events delivered into ``conv.events``.
    events_forwarded: int = 0
    #: Undelivered events dropped so that ``Error``/``Closed`` could be delivered to a caller that stopped reading.
    events_dropped: int = 0
    #: Frames that were not usable events (invalid JSON, binary, missing fields): logged, never fatal.
    protocol_warnings: int = 0
    #: Well-formed events of a type rtengine does not model (forwarded as ``UnknownEvent``).
    unknown_events: int = 0
    #: Repeated announcements of a tool call already delivered (not forwarded).
    duplicate_tool_calls: int = 0
    #: Sideband join attempts (1 + retries used).
    join_attempts: int = 0
    #: Inputs taken from a buffer that could not be written because the socket had ended.
    inputs_lost: int = 0
    #: Binary frames received (not part of the protocol; each is a non-fatal ``Error``).
    binary_frames: int = 0
    #: Texts still buffered when the conversation ended (accepted, never sent).
    texts_discarded: int = 0
    #: Tool outputs, response requests and cancels still buffered when the conversation ended, plus a deferred
    #: ``response.create`` still owed then (requests made during an active response coalesce into one).
    tool_items_discarded: int = 0
    #: Audio frames still buffered when the conversation ended.
    audio_frames_discarded: int = 0
    #: Calls this conversation hung up when it ended (0 or 1).
    hangups: int = 0
    #: Hang-ups that failed or timed out (logged; never raised).
    hangup_failures: int = 0
    #: Websocket drops that started a reconnect (each is one ``ConnectionDropped``), and the connects tried.
    reconnects: int = 0
    reconnect_attempts: int = 0
    #: History items replayed into new sessions (reconnects and rotations), and those the server refused.
    items_replayed: int = 0
    replay_refused: int = 0
    #: Sideband losses that started a re-join (each is one ``SidebandLost``).
    sideband_losses: int = 0
    #: Re-join attempts made after those losses (each success is one ``SidebandRestored``).
    sideband_rejoin_attempts: int = 0
    #: Inputs whose write was interrupted mid-frame when the sideband was lost: the server may or may not have
    #: them, so they are not repeated on the re-joined socket.
    inputs_interrupted: int = 0
    #: Session rotations before the cap (each is one ``SessionRotated``), and rotations that failed (each a
    #: non-fatal ``Error("rotation_failed")``; the conversation goes on in the old session).
    rotations: int = 0
    rotations_failed: int = 0
    #: Responses cut mid-stream by a rotation or a lost socket (each ended for the app by a ``ResponseDone``
    #: with ``status="cancelled"``; one cut by a rotation is requested again on the new session).
    responses_cut: int = 0
    #: Rotations whose new session did not get the whole context (each a ``SessionRotated(state_restored=False)``).
    rotations_incomplete: int = 0
    #: Audio frames dropped because they waited longer than ``Capacities.max_input_audio_age`` to be written (the
    #: overload policy: the lag stays bounded, the oldest audio goes), and their bytes.
    audio_frames_expired: int = 0
    audio_bytes_expired: int = 0
    #: ``input_audio_buffer.append`` events written (several frames that waited together share one: see
    #: ``audio_frames_sent`` for the frames).
    audio_appends_sent: int = 0
    #: Seconds the oldest frame of the last audio write waited in the buffer (the input lag now), and the largest
    #: such wait in this conversation. An app sheds load when these grow.
    input_audio_lag: float = 0.0
    input_audio_lag_max: float = 0.0


@dataclass(frozen=True, slots=True)
class SocketEnd:
    """How a websocket ended, as the socket adapter reports it (never an exception).

    ``clean`` is True when the server sent a close frame: ``code``/``reason`` are then what it sent (``code``
    ``None`` for a close frame without a code). ``clean`` False is an abnormal loss — a reset, an EOF without a
    close frame, a failed read or write — and ``code`` is ``None`` ("no close frame received"; the websocket RFC
    calls this 1006, which is never sent on the wire). ``detail`` says what happened, for messages.
    """

    clean: bool
    code: int | None = None
    reason: str | None = None
    detail: str = ""


#: Everything ``conv.events`` carries.
ConversationEvent = (
    Started
    | Error
    | Closed
    | SidebandLost
    | SidebandRestored
    | SessionRotated
    | ConnectionDropped
    | SessionRestored
    | ServerEvent
)
