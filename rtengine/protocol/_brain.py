"""The decisions of a conversation, sans-IO: for each caller command and each server event, what to send, what to
deliver and whether the conversation ends.

Theory of operation. The engine's tasks own the I/O; this module owns every protocol decision, so the decisions can
be tested with plain values and hypothesis, without an event loop::

    caller command ──► Brain.command(cmd)        ──► payloads to write, in order
    server event   ──► Brain.server_event(event) ──► Reaction(send, deliver, end, mark)
    socket end     ──► socket_end(end)           ──► (Error | None, Closed)

The engine calls these synchronously, between checkpoints, so each decision is atomic with respect to every other
task. The state they keep:

* **Response sequencing** (realtime-protocol §5.3, :class:`~rtengine.protocol.ResponseSequencer`): never two
  ``response.create`` in flight; requests coalesce into one owed create that goes out on the next terminal event.
  The server's active-response error is a deferral, not a failure.
* **Texts before the response.** Commands arrive in one FIFO queue (texts, tool outputs, requests, cancels), so a
  ``response.create`` asked for after a text always follows that text on the wire.
* **Barge-in truncation** (§5.4): on ``speech_started`` during output audio, a ``conversation.item.truncate``
  clamped to the audio actually received (websocket transport; a call's audio is truncated by the provider).
* **Tool-call dedupe** (§7.3): one ``ToolCall`` per ``call_id``.
* **Ends**: a fatal server error ends with that ``Error``; a clean close frame is ``Closed("transport_closed")``; an
  abnormal loss (no close frame) is ``Error("connection_lost")`` then ``Closed("error")``.

Counters are kept in the :class:`~rtengine.ConversationStats` the brain is given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from . import _events as ev
from ._errors import ErrorClass
from ._lifecycle import Closed, ConversationStats, Error, SocketEnd
from ._payloads import function_call_output, item_truncate, response_cancel, response_create, user_text
from ._state import ResponseSequencer, ToolCallDedupe, TruncationTracker, audio_duration_ms

__all__ = [
    "Brain",
    "CancelResponse",
    "Command",
    "Reaction",
    "RequestResponse",
    "SendText",
    "SendToolOutput",
    "socket_end",
]

log = logging.getLogger("rtengine")

Payload = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SendText:
    """The caller's ``send_text``: a user message item (no response is requested)."""

    text: str


@dataclass(frozen=True, slots=True)
class SendToolOutput:
    """The caller's ``send_tool_output``: the output item, then a sequenced ``response.create`` if ``respond``."""

    call_id: str
    output: str
    respond: bool = True


@dataclass(frozen=True, slots=True)
class RequestResponse:
    """The caller's ``request_response``."""


@dataclass(frozen=True, slots=True)
class CancelResponse:
    """The caller's ``cancel_response``."""

    response_id: str | None = None


Command = SendText | SendToolOutput | RequestResponse | CancelResponse
_REQUEST: Final = RequestResponse()


@dataclass(frozen=True, slots=True)
class Reaction:
    """What one server event means: payloads to ``send`` (in order, before delivering), the event to ``deliver``
    (``None``: nothing), an ``end`` (the optional ``Error`` and the ``Closed``), a timeline phase to ``mark``."""

    send: tuple[Payload, ...] = ()
    deliver: ev.ServerEvent | Error | None = None
    end: tuple[Error | None, Closed] | None = None
    mark: str | None = None


_NOTHING: Final = Reaction()


def socket_end(end: SocketEnd) -> tuple[Error | None, Closed]:
    """How a conversation ends when its socket ended: a close frame from the server is a clean end; a frame over
    the size cap (1009) or a loss without a close frame is an error."""
    if end.code == 1009:
        message = "the server sent a message larger than max_message_size (closed with 1009)"
        return Error(message, "message_too_big"), Closed("error", 1009, end.reason)
    if end.clean:
        return None, Closed("transport_closed", end.code, end.reason)
    detail = end.detail or "the connection ended without a close frame"
    return Error(f"realtime connection lost: {detail}", "connection_lost"), Closed("error", end.code, end.reason)


class Brain:
    """The decision state of one conversation (see the module docstring). ``truncate`` enables barge-in
    truncation (websocket transport)."""

    __slots__ = ("_dedupe", "_sequencer", "_tracker", "_truncate", "stats")

    def __init__(self, stats: ConversationStats, *, truncate: bool) -> None:
        self.stats = stats
        self._truncate = truncate
        self._sequencer = ResponseSequencer()
        self._tracker = TruncationTracker()
        self._dedupe = ToolCallDedupe()

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
        raise TypeError(f"not a command: {command!r}")  # pragma: no cover - the union is closed

    @property
    def owes_response(self) -> bool:
        """A deferred ``response.create`` is still owed (it goes out when the active response ends)."""
        return self._sequencer.pending

    def wrote(self, payload: Payload) -> None:
        """Count a payload once it is on the wire."""
        kind = payload["type"]
        stats = self.stats
        if kind == "conversation.item.create":
            if payload["item"]["type"] == "message":
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
                    self._tracker.on_audio(event.item_id, _duration(event))
                return Reaction(deliver=event)
            case ev.ProtocolWarning(kind=ev.WarningKind.BINARY_FRAME, detail=detail):
                self.stats.binary_frames += 1
                return Reaction(deliver=Error(detail, "unexpected_binary_frame", fatal=False))
            case ev.ProtocolWarning(detail=detail):
                self.stats.protocol_warnings += 1
                log.warning("ignoring realtime frame: %s", detail)
                return _NOTHING
            case ev.ServerErrorEvent(error_class=ErrorClass.DEFERRAL):
                self._sequencer.on_conflict()
                self.stats.responses_deferred += 1
                log.info("response.create deferred: %s", event.message)
                return _NOTHING
            case ev.ServerErrorEvent(error_class=ErrorClass.BENIGN):
                log.info("benign realtime server error: %s", event.message)
                return Reaction(deliver=Error(event.message, event.code, fatal=False))
            case ev.ServerErrorEvent():
                return Reaction(end=(Error(event.message, event.code, fatal=True), Closed("error")))
            case ev.UnknownEvent():
                self.stats.unknown_events += 1
            case ev.SpeechStarted():
                cut = self._tracker.take()
                if cut is not None:
                    return Reaction(send=(item_truncate(*cut),), deliver=event)
            case ev.ResponseCreated(response_id=response_id):
                self._sequencer.on_created(response_id)
            case ev.ResponseDone(response_id=response_id) | ev.ResponseCancelled(response_id=response_id):
                self._tracker.clear()
                send = (response_create(),) if self._sequencer.on_done(response_id) else ()
                return Reaction(send=send, deliver=event, mark="first_response_done")
            case ev.ToolCall(call_id=call_id):
                if not self._dedupe.first(call_id):
                    self.stats.duplicate_tool_calls += 1
                    return _NOTHING
                self._tracker.clear()
            case ev.SessionUpdated():
                return Reaction(deliver=event, mark="session_updated")
        return Reaction(deliver=event)


def _duration(event: ev.AudioOut) -> int:
    return audio_duration_ms(
        event.audio,
        sample_rate=event.sample_rate,
        num_channels=event.num_channels,
        samples_per_channel=event.samples_per_channel,
    )
