"""Typed server events (what the parser produces), as frozen, slotted dataclasses.

One class per server event type the Realtime API documents; events rtengine does not model become :class:`UnknownEvent`
with the raw dict; frames that are not events at all (invalid JSON, no ``type``, a binary frame, a known type missing a
required field) become :class:`ProtocolWarning`. Nothing here raises on bad input; nothing here does I/O. Dataclasses
were chosen over msgspec Structs after measuring (``benchmarks/parse_events.py``, CPython 3.11): json.loads alone 3.6 µs
per frame, this parser 5.5 µs (1.5x), msgspec 0.5 µs. The websocket layer costs ≈25 µs per event (measured with the same
benchmark), so the typed model is ≈20 % of the receive path; dataclasses keep the dependency list short and ``match``
friendly. Revisit if a profile ever shows parsing on top.

Do not subclass these classes; match on them (``match event: case AudioOut(): …``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from ._errors import ErrorClass
from ._g711 import G711_FORMATS, PCM_FORMAT, alaw_to_pcm16, ulaw_to_pcm16
from ._more_events import (
    ConversationCreated,
    DtmfReceived,
    McpArgumentsDelta,
    McpArgumentsDone,
    McpCall,
    McpListTools,
)
from ._state import audio_duration_ms
from ._status_events import OutputAudioCleared as OutputAudioCleared
from ._status_events import OutputAudioStarted as OutputAudioStarted
from ._status_events import OutputAudioStopped as OutputAudioStopped
from ._status_events import RateLimit as RateLimit
from ._status_events import RateLimits as RateLimits

__all__ = [
    "AudioOut",
    "InputTranscriptDelta",
    "InputTranscriptDone",
    "ItemAdded",
    "ItemDone",
    "OutputAudioCleared",
    "OutputAudioStarted",
    "OutputAudioStopped",
    "OutputTranscriptDelta",
    "OutputTranscriptDone",
    "ProtocolWarning",
    "RateLimit",
    "RateLimits",
    "ResponseCancelled",
    "ResponseCreated",
    "ResponseDone",
    "ServerErrorEvent",
    "ServerEvent",
    "SessionCreated",
    "SessionUpdated",
    "SpeechStarted",
    "SpeechStopped",
    "ToolCall",
    "UnknownEvent",
    "WarningKind",
]


def _raw() -> Any:
    """The raw payload: kept for callers, hidden from repr and equality."""
    return field(repr=False, compare=False, default_factory=dict)


@dataclass(frozen=True, slots=True)
class SessionCreated:
    """``session.created``: the first event on every new connection."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "session.created"

    session_id: str
    expires_at: int | None = None
    session: Mapping[str, Any] = _raw()
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """``session.updated``: the server applied a ``session.update``."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "session.updated"

    session_id: str
    instructions: str | None = None
    session: Mapping[str, Any] = _raw()
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """``input_audio_buffer.speech_started``: the user began speaking (barge-in trigger)."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "input_audio_buffer.speech_started"

    item_id: str | None = None
    audio_start_ms: int | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """``input_audio_buffer.speech_stopped``."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "input_audio_buffer.speech_stopped"

    item_id: str | None = None
    audio_end_ms: int | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class ItemAdded:
    """``conversation.item.added`` (or the older ``conversation.item.created``). ``phase``: an assistant message's
    ``commentary`` (a preamble while the model works) or ``final_answer``, from models that label them."""

    #: The ``type`` of the server event this is made from (also made from the older ``conversation.item.created``).
    wire_type: str = field(default="conversation.item.added", kw_only=True, repr=False, compare=False)

    item_id: str | None
    item: Mapping[str, Any] = _raw()
    previous_item_id: str | None = None
    event_id: str | None = None
    phase: str | None = None


@dataclass(frozen=True, slots=True)
class ItemDone:
    """``conversation.item.done`` for any item that is not a function call. ``phase``: as on :class:`ItemAdded`."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "conversation.item.done"

    item_id: str | None
    item: Mapping[str, Any] = _raw()
    event_id: str | None = None
    phase: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model called a function. ``arguments`` is the raw JSON string (possibly incomplete)."""

    #: The ``type`` of the server event this is made from (or ``conversation.item.done`` of a ``function_call`` item,
    #: whichever comes first: one ``ToolCall`` per ``call_id``).
    wire_type: str = field(default="response.function_call_arguments.done", kw_only=True, repr=False, compare=False)

    call_id: str
    name: str | None
    arguments: str
    item_id: str | None = None
    event_id: str | None = None

    def parsed_arguments(self) -> Any:
        """The arguments decoded as JSON; raises ``ValueError`` when they are not valid JSON."""
        return json.loads(self.arguments)


@dataclass(frozen=True, slots=True)
class InputTranscriptDelta:
    """``conversation.item.input_audio_transcription.delta``: part of the user's transcript."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "conversation.item.input_audio_transcription.delta"

    delta: str
    item_id: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class InputTranscriptDone:
    """``conversation.item.input_audio_transcription.completed``."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "conversation.item.input_audio_transcription.completed"

    transcript: str
    item_id: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    """``response.created``: a response is in flight."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "response.created"

    response_id: str | None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """``response.done``: a response ended; ``status`` is ``completed``, ``cancelled``, ``failed``, …"""

    #: The ``type`` of the server event this is made from (rtengine makes one too, ``status="cancelled"``, for a
    #: response that a lost or rotated session cut).
    wire_type: ClassVar[str] = "response.done"

    response_id: str | None
    status: str | None = None
    response: Mapping[str, Any] = _raw()
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseCancelled:
    """``response.cancelled`` (accepted as the reference accepts it)."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "response.cancelled"

    response_id: str | None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class AudioOut:
    """An output audio delta (websocket transport): base64 audio in ``audio``, in the session's output ``format``
    (``audio/pcm`` PCM16 24 kHz, or G.711 ``audio/pcmu``/``audio/pcma`` at 8 kHz; the delta itself never says, so
    the format is the one the server confirmed in ``session.updated``, else the configured one).
    :meth:`pcm` always returns PCM16 (G.711 decoded); :meth:`data` the bytes as sent."""

    #: The ``type`` of the server event this is made from (also made from the beta ``response.audio.delta``).
    wire_type: str = field(default="response.output_audio.delta", kw_only=True, repr=False, compare=False)

    audio: str
    item_id: str | None = None
    response_id: str | None = None
    sample_rate: int = 24000
    num_channels: int = 1
    samples_per_channel: int | None = None
    event_id: str | None = None
    format: str = PCM_FORMAT

    def data(self) -> bytes:
        """The decoded base64 bytes, in :attr:`format` (empty when the delta is not valid base64)."""
        try:
            return base64.b64decode(self.audio, validate=True)
        except (binascii.Error, ValueError):
            return b""

    def pcm(self) -> bytes:
        """The audio as little-endian PCM16 at :attr:`sample_rate` (G.711 is decoded; empty when not base64)."""
        data = self.data()
        if self.format == "audio/pcmu":
            return ulaw_to_pcm16(data)
        if self.format == "audio/pcma":
            return alaw_to_pcm16(data)
        return data

    @property
    def duration_ms(self) -> int:
        """How much audio this delta carries, in ms (from its size and format; nothing is decoded)."""
        return audio_duration_ms(
            self.audio,
            sample_rate=self.sample_rate,
            num_channels=self.num_channels,
            samples_per_channel=self.samples_per_channel,
            bytes_per_sample=1 if self.format in G711_FORMATS else 2,
        )


@dataclass(frozen=True, slots=True)
class OutputTranscriptDelta:
    """Part of the assistant's transcript (audio) or text (text modality). ``phase``: the ``phase`` of the message
    it belongs to (``commentary`` or ``final_answer``) when the model labelled that message (in a conversation;
    the parser alone cannot know it)."""

    #: The ``type`` of the server event this is made from (or ``response.output_text.delta``: a text response).
    wire_type: str = field(default="response.output_audio_transcript.delta", kw_only=True, repr=False, compare=False)

    delta: str
    item_id: str | None = None
    response_id: str | None = None
    event_id: str | None = None
    phase: str | None = None


@dataclass(frozen=True, slots=True)
class OutputTranscriptDone:
    """The assistant's full transcript (audio) or text (text modality) for one output. ``phase``: as on
    :class:`OutputTranscriptDelta`."""

    #: The ``type`` of the server event this is made from (or ``response.output_text.done``: a text response).
    wire_type: str = field(default="response.output_audio_transcript.done", kw_only=True, repr=False, compare=False)

    transcript: str
    item_id: str | None = None
    response_id: str | None = None
    event_id: str | None = None
    phase: str | None = None


@dataclass(frozen=True, slots=True)
class ServerErrorEvent:
    """A server ``error`` event, with its class (deferral, benign or fatal: :class:`~rtengine.ErrorClass`)."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "error"

    message: str
    code: str | None = None
    type: str | None = None
    param: str | None = None
    error_event_id: str | None = None
    error_class: ErrorClass = ErrorClass.FATAL
    event_id: str | None = None

    @property
    def fatal(self) -> bool:
        """True when this error ends the conversation."""
        return self.error_class is ErrorClass.FATAL


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """A well-formed event rtengine does not model. ``documented`` is True for GA types it deliberately skips."""

    type: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    documented: bool = False

    @property
    def wire_type(self) -> str:
        """The ``type`` of the server event (the same as :attr:`type`)."""
        return self.type


class WarningKind(Enum):
    """Why a frame was not an event."""

    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_TYPE = "missing_type"
    BINARY_FRAME = "binary_frame"
    MISSING_FIELD = "missing_field"


@dataclass(frozen=True, slots=True)
class ProtocolWarning:
    """A frame that is not a usable event. Never raised: returned, so it can be counted and logged."""

    kind: WarningKind
    detail: str
    type: str | None = None

    @property
    def wire_type(self) -> str | None:
        """The ``type`` the unusable frame named (the same as :attr:`type`; None when it named none)."""
        return self.type


ServerEvent = (
    SessionCreated
    | SessionUpdated
    | SpeechStarted
    | SpeechStopped
    | ItemAdded
    | ItemDone
    | ToolCall
    | InputTranscriptDelta
    | InputTranscriptDone
    | ResponseCreated
    | ResponseDone
    | ResponseCancelled
    | AudioOut
    | OutputTranscriptDelta
    | OutputTranscriptDone
    | ServerErrorEvent
    | RateLimits
    | OutputAudioStarted
    | OutputAudioStopped
    | OutputAudioCleared
    | ConversationCreated
    | DtmfReceived
    | McpListTools
    | McpCall
    | McpArgumentsDelta
    | McpArgumentsDone
    | UnknownEvent
)
