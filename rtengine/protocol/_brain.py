"""The decisions of a conversation, sans-IO: for each caller command and each server event, what to send, what to
deliver and whether the conversation ends.

Theory of operation. The engine's tasks own the I/O; this module owns every protocol decision, so the decisions can
be tested with plain values and hypothesis, without an event loop::

    caller command ──► Brain.command(cmd)        ──► payloads to write, in order
    server event   ──► Brain.server_event(event) ──► Reaction(send, deliver, end, mark)
    socket end     ──► socket_end(end)           ──► (Error | None, Closed)

The engine calls these synchronously, between checkpoints, so each decision is atomic with respect to every other
task. The state they keep:

* **Response sequencing** (:class:`~rtengine.protocol.ResponseSequencer`): never two
  ``response.create`` in flight; requests coalesce into one owed create that goes out on the next terminal event.
  The server's active-response error is a deferral, not a failure.
* **Texts before the response.** Commands arrive in one FIFO queue (texts, tool outputs, requests, cancels), so a
  ``response.create`` asked for after a text always follows that text on the wire.
* **Barge-in truncation**: on ``speech_started`` during output audio, a ``conversation.item.truncate``
  clamped to the audio actually received (websocket transport; a call's audio is truncated by the provider).
* **Tool-call dedupe**: one ``ToolCall`` per ``call_id``.
* **Raw events** (``send_event``, :mod:`~rtengine.protocol._commands`): a server ``error`` naming one is a
  refusal of the caller's request, not a broken conversation: a non-fatal ``Error`` (unless its code is one of
  the account-level fatal ones).
* **Client event ids**: the engine stamps every payload it writes with :meth:`Brain.stamp` (a per-conversation
  prefix and a counter); a server ``error`` whose ``event_id`` names one carries that request on its ``Error``. Only
  an active-response error naming a ``response.create`` rtengine sent defers that create; an unsolicited one (no
  id, or an id that is not our ``response.create``) is a non-fatal ``Error`` and leaves the sequencer alone.
* **Message phase**: models that label assistant messages (``phase``: ``commentary`` preamble or ``final_answer``)
  do so on the item; the brain remembers the phase per item for the response in flight and puts it on that
  item's transcript events (nothing is remembered, and nothing copied, for models that do not label them).
* **Output audio format**: the session's (``session.updated`` confirms it; the configured one until then). The
  engine parses frames with :attr:`Brain.output_format`, so audio durations and ``AudioOut.pcm()`` follow it.
* **Ends**: a fatal server error ends with that ``Error``; a clean close frame is ``Closed("transport_closed")``; an
  abnormal loss (no close frame) is ``Error("connection_lost")`` then ``Closed("error")``.

Counters are kept in the :class:`~rtengine.ConversationStats` the brain is given.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from . import _events as ev
from ._classify import FATAL_CODES
from ._commands import (
    AudioBuffer,
    CancelResponse,
    ClearOutputAudio,
    ClientPayload,
    RequestResponse,
    SendEvent,
    SendText,
    SendToolOutput,
    UpdatePayload,
    UpdateSession,
    buffer_payload,
    raw_session_paths,
)
from ._ends import confirmed_output_format, is_session_cap, socket_end
from ._errors import ErrorClass
from ._g711 import PCM_FORMAT
from ._lifecycle import Closed, ConversationStats, Error
from ._payloads import function_call_output, item_truncate, response_cancel, response_create, user_text
from ._resync import SessionLedger, with_response, without_responses
from ._secrets import Scrubber
from ._state import ResponseSequencer, SentEvents, ToolCallDedupe, TruncationTracker

__all__ = [
    "Brain",
    "CancelResponse",
    "Command",
    "Reaction",
    "RequestResponse",
    "SendText",
    "SendToolOutput",
    "confirmed_output_format",
    "is_session_cap",
    "socket_end",
]

log = logging.getLogger("rtengine")

Payload = dict[str, Any]


Command = (
    SendText
    | SendToolOutput
    | RequestResponse
    | CancelResponse
    | SendEvent
    | AudioBuffer
    | ClearOutputAudio
    | UpdateSession
)
_REQUEST: Final = RequestResponse()


@dataclass(frozen=True, slots=True)
class Reaction:
    """What one server event means: payloads to ``send`` (in order, before delivering), the event to ``deliver``
    (``None``: nothing), an ``end`` (the optional ``Error`` and the ``Closed``), a timeline phase to ``mark``, and
    the ``undo`` of an ``update_session`` the server refused (field: value before and after; the engine takes it
    back out of its session, :func:`~rtengine.protocol._commands.undo_update`)."""

    send: tuple[Payload, ...] = ()
    deliver: ev.ServerEvent | Error | None = None
    end: tuple[Error | None, Closed] | None = None
    mark: str | None = None
    undo: Mapping[str, tuple[Any, Any]] | None = None


_NOTHING: Final = Reaction()
#: How many raw event ids (``send_event``) are remembered, for the refusals that name them.
_RAW_IDS: Final = 256
#: No session places set by a raw ``session.update`` (shared: each ``frozenset()`` is an object of its own).
_NO_PATHS: Final[frozenset[tuple[str, ...]]] = frozenset()


class Brain:
    """The decision state of one conversation (see the module docstring). ``truncate`` enables barge-in
    truncation (websocket transport); ``output_format`` is the configured output audio format type;
    ``id_prefix`` starts every client ``event_id`` (default: ``rte_`` and 8 random hex digits)."""

    __slots__ = (
        "_dedupe",
        "_ledger",
        "_owed",
        "_phases",
        "_raw",
        "_retry",
        "_sent",
        "_sequencer",
        "_tracker",
        "_truncate",
        "_updates",
        "output_format",
        "raw_session",
        "scrub",
        "stats",
    )

    def __init__(
        self,
        stats: ConversationStats,
        *,
        truncate: bool,
        output_format: str = PCM_FORMAT,
        id_prefix: str | None = None,
        scrub: Scrubber | None = None,
    ) -> None:
        self.stats = stats
        #: Removes secrets (the configured key, credential-shaped strings) from server text: error messages and
        #: warnings become ``Error`` events and log lines only through it.
        self.scrub = scrub or Scrubber()
        self._truncate = truncate
        #: The format audio deltas are in: the server-confirmed one once ``session.updated`` names it.
        self.output_format = output_format
        self._sequencer = ResponseSequencer()
        self._tracker = TruncationTracker()
        self._dedupe = ToolCallDedupe()
        self._phases: dict[str, str] = {}  # item id -> phase, for the labelled messages of the current response
        self._sent = SentEvents(f"rte_{secrets.token_hex(4)}_" if id_prefix is None else id_prefix)
        self._ledger = SessionLedger()
        self._retry: Payload | None = None  # the response.create repeated after the last re-join
        self._owed: Payload | None = None  # the parameters of an owed raw response.create (send_event)
        self._raw: dict[str, str] = {}  # event id -> type of the latest raw events written (send_event), oldest first
        self._updates: dict[str, UpdatePayload] = {}  # event id -> the latest update_session payloads written
        #: The session places raw ``session.update`` events set, not written by ``update_session`` since.
        self.raw_session: frozenset[tuple[str, ...]] = _NO_PATHS  # replaced, never changed in place

    def stamp(self, payload: Payload) -> Payload:
        """Give a payload about to be written its ``event_id`` (and remember its type); returns it. A caller's
        own event (``send_event``) keeps the ``event_id`` it came with."""
        if payload.get("type") == "session.update":  # the ledger's only concern (asked per payload: 50 a second)
            self._ledger.stamped(payload)
        if isinstance(payload, UpdatePayload):
            _remember(self._updates, self._sent.stamp(payload)["event_id"], payload)
            return payload
        if not isinstance(payload, ClientPayload):
            return self._sent.stamp(payload)
        if "event_id" not in payload:
            self._sent.stamp(payload)
        if payload["type"] == "session.update":
            self.raw_session |= raw_session_paths(payload)
        _remember(self._raw, payload["event_id"], str(payload["type"]))
        return payload

    # --- caller commands ---------------------------------------------------------------------------------------

    def command(self, command: Command) -> tuple[Payload, ...]:
        """The payloads a caller command turns into (possibly none: a deferred ``response.create``)."""
        match command:
            case SendText(text=text):
                return (user_text(text),)
            case SendToolOutput(call_id=call_id, output=output, respond=respond):
                item = function_call_output(call_id, output)
                return (item, *self.command(_REQUEST)) if respond else (item,)
            case RequestResponse():
                if self._sequencer.request():
                    return (response_create(),)
                self.stats.responses_deferred += 1
                return ()
            case CancelResponse(response_id=response_id):
                return (response_cancel(response_id),)
            case SendEvent(payload=payload) if payload["type"] == "response.create":
                if self._sequencer.request():
                    return (payload,)
                response = payload.get("response")
                self._owed = {"response": response} if isinstance(response, dict) else None
                self.stats.responses_deferred += 1
                return ()
            case SendEvent(payload=payload):
                return (payload,)
            case AudioBuffer() | ClearOutputAudio():
                return (buffer_payload(command),)
            case UpdateSession():
                raise TypeError("the engine applies session updates to its session (protocol._commands)")
        raise TypeError(f"not a command: {command!r}")  # pragma: no cover - the union is closed

    @property
    def owes_response(self) -> bool:
        """A deferred ``response.create`` is still owed (it goes out when the active response ends)."""
        return self._sequencer.pending

    def rejoin_update(self, applied: Payload) -> Payload:
        """The ``session.update`` to send first on a re-joined sideband, given rtengine's own (``applied``): only
        what the server has not confirmed (:class:`~rtengine.protocol._resync.SessionLedger`)."""
        return self._ledger.rejoin_update(applied)

    def rejoined(self, carried: Sequence[Payload] = ()) -> tuple[Payload, ...]:
        """A call's sideband was joined again after a loss: the control payloads to send right after its
        ``session.update`` — ``carried`` (taken from the buffers by the lost socket, not written), with the
        response reconciled (:func:`~rtengine.protocol._resync.with_response`).

        Events sent during the gap never reached us (a ``response.created`` or ``response.done`` among them), so
        the response state is unknown: it is reset, and a ``response.create`` still owed, or handed out and never
        acknowledged by ``response.created``, goes out now. Should a response be active, the server refuses it: a
        deferral for an owed one (it was asked for during that response), an adoption for a repeated one."""
        sequencer = self._sequencer
        self._sequencer = ResponseSequencer()
        self._tracker.clear()
        control, create = with_response(carried, sequencer.pending or sequencer.unacked)
        owed, self._owed = self._owed, None
        if create is not None:
            self._sequencer.request()
            if owed is not None and sequencer.pending:
                create["response"] = owed["response"]  # the owed raw create keeps its parameters
        self._retry = create if not sequencer.pending else None
        return control

    def rejoin_failed(self, carried: Sequence[Payload]) -> tuple[tuple[Payload, ...], int]:
        """A call's sideband was lost and will not be joined again: ``carried`` without its creates, and how many
        requested responses were never delivered (0 or 1: requests coalesce)."""
        sequencer = self._sequencer
        rest, first = without_responses(carried)
        self._owed = None
        lost = int(sequencer.pending or sequencer.unacked or first is not None)
        sequencer.pending = sequencer.unacked = False
        return rest, lost

    def wrote(self, payload: Payload) -> None:
        """Count a payload once it is on the wire."""
        kind = payload["type"]
        stats = self.stats
        if kind == "conversation.item.create":
            item = payload.get("item")
            if isinstance(item, dict) and item.get("type") == "message":
                stats.texts_sent += 1
            else:
                stats.tool_outputs_sent += 1
        elif kind == "response.create":
            stats.responses_requested += 1
        elif kind == "conversation.item.truncate":
            stats.truncations_sent += 1

    # --- server events -----------------------------------------------------------------------------------------

    def server_event(self, event: ev.ServerEvent | ev.ProtocolWarning) -> Reaction:
        """What a parsed server frame means for the conversation."""
        match event:
            case ev.AudioOut():
                if self._truncate:
                    self._tracker.on_audio(event.item_id, event.duration_ms)
                return Reaction(deliver=event)
            case ev.ProtocolWarning(kind=ev.WarningKind.BINARY_FRAME, detail=detail):
                self.stats.binary_frames += 1
                return Reaction(deliver=Error(self.scrub(detail), "unexpected_binary_frame", fatal=False))
            case ev.ProtocolWarning(detail=detail):
                self.stats.protocol_warnings += 1
                log.warning("ignoring realtime frame: %s", self.scrub(detail))
                return _NOTHING
            case ev.ServerErrorEvent():
                return self._server_error(event)
            case ev.UnknownEvent():
                self.stats.unknown_events += 1
            case ev.SpeechStarted():
                cut = self._tracker.take()
                if cut is not None:
                    return Reaction(send=(item_truncate(*cut),), deliver=event)
            case ev.ResponseCreated(response_id=response_id):
                self._sequencer.on_created(response_id)
            case ev.OutputTranscriptDelta(item_id=item_id) | ev.OutputTranscriptDone(item_id=item_id) if self._phases:
                phase = self._phases.get(item_id) if item_id is not None else None
                if phase is not None:
                    return Reaction(deliver=replace(event, phase=phase))
            case ev.ItemAdded(item_id=item_id, phase=phase) if phase is not None and item_id is not None:
                self._phases[item_id] = phase
            case ev.ResponseDone(response_id=response_id) | ev.ResponseCancelled(response_id=response_id):
                self._tracker.clear()
                self._phases.clear()
                send = (self._owed_create(),) if self._sequencer.on_done(response_id) else ()
                return Reaction(send=send, deliver=event, mark="first_response_done")
            case ev.ToolCall(call_id=call_id):
                if not self._dedupe.first(call_id):
                    self.stats.duplicate_tool_calls += 1
                    return _NOTHING
                self._tracker.clear()
            case ev.SessionUpdated(session=session):
                self._ledger.updated()
                self.output_format = confirmed_output_format(session) or self.output_format
                return Reaction(deliver=event, mark="session_updated")
        return Reaction(deliver=event)

    def _owed_create(self) -> Payload:
        """The owed ``response.create``: with the parameters of the latest raw one deferred, if any."""
        owed, self._owed = self._owed, None
        return response_create(owed["response"] if owed is not None else None)

    def _server_error(self, event: ev.ServerErrorEvent) -> Reaction:
        event = replace(event, message=self.scrub(event.message))  # server text: scrubbed before any use
        event_id = event.error_event_id
        request_type = self._sent.lookup(event_id) or (self._raw.get(event_id) if event_id is not None else None)
        if event.error_class is ErrorClass.DEFERRAL and request_type == "response.create":
            if self._retry is not None and self._retry.get("event_id") == event.error_event_id:
                self._retry = None
                self._sequencer.adopt()
                log.info("the response.create repeated after a re-join found a response active: adopted")
                return _NOTHING
            self._sequencer.on_conflict()
            self.stats.responses_deferred += 1
            log.info("response.create deferred: %s", event.message)
            return _NOTHING
        request_id = event_id if request_type is not None else None
        send: tuple[Payload, ...] = ()
        if request_type == "response.create" and self._sequencer.on_refused():
            send = (self._owed_create(),)  # the refused create is not in flight: the owed one goes out now
        update = self._updates.pop(event_id, None) if event_id is not None else None
        fatal = event.error_class is ErrorClass.FATAL
        if fatal and (event_id in self._raw or update is not None) and event.code not in FATAL_CODES:
            fatal = False  # the caller's own request was refused: the conversation is healthy
        if fatal and request_type == "session.update" and self._ledger.is_rejoin_update(event.error_event_id):
            fatal = False  # the call is healthy; only the re-join's session.update was not applied
            log.warning("the session.update of a sideband re-join was refused: %s", event.message)
        error = Error(event.message, event.code, fatal, request_type, request_id)
        if fatal:
            return Reaction(end=(error, Closed("error")))
        undo = update.undo if update is not None else None
        if event.error_class is ErrorClass.DEFERRAL:
            log.warning("active-response error not caused by a response.create of ours: %s", event.message)
        else:
            log.info("benign realtime server error: %s", event.message)
        return Reaction(send=send, deliver=error, undo=undo)


def _remember(memory: dict[str, Any], event_id: str, value: Any) -> None:
    """Remember ``value`` under ``event_id``, forgetting the oldest beyond ``_RAW_IDS``."""
    memory[event_id] = value
    if len(memory) > _RAW_IDS:
        del memory[next(iter(memory))]
