"""Session configuration (GA shapes), rendered for ``session.update`` and for call creation.

Pure: no I/O, no trio. A :class:`SessionConfig` is immutable and validated when built, so a bad value fails
at the caller's line, not later on a socket. Absent optional fields are omitted from the JSON, never sent as
``null`` (the one deliberate ``null`` is ``turn_detection=TURN_DETECTION_DISABLED``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ._errors import ConfigError
from ._frozen import freeze
from ._text import check_text

__all__ = [
    "DEFAULT_MODEL",
    "TURN_DETECTION_DISABLED",
    "AudioFormat",
    "FunctionTool",
    "SessionConfig",
    "TurnDetection",
]

#: The model used when a :class:`SessionConfig` names none.
DEFAULT_MODEL: Final = "gpt-realtime"

#: Pass as ``turn_detection`` to send ``"turn_detection": null`` (server VAD off; the app commits audio).
TURN_DETECTION_DISABLED: Final = "disabled"

_PCM_RATES = frozenset({24000})
_FORMAT_TYPES = frozenset({"audio/pcm", "audio/pcmu", "audio/pcma"})
_MODALITIES = frozenset({"audio", "text"})
_TOOL_CHOICES = frozenset({"auto", "none", "required"})
_EAGERNESS = ("low", "medium", "high", "auto")
_TOOL_NAME = frozenset("_-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """An audio format: ``audio/pcm`` (PCM16 at ``rate`` Hz, 24000 in GA), ``audio/pcmu`` or ``audio/pcma``."""

    type: str = "audio/pcm"
    rate: int | None = 24000

    def __post_init__(self) -> None:
        if self.type not in _FORMAT_TYPES:
            raise ConfigError(f"unsupported audio format type {self.type!r}; use one of {sorted(_FORMAT_TYPES)}")
        if self.type == "audio/pcm" and self.rate not in _PCM_RATES:
            raise ConfigError(f"audio/pcm rate must be 24000, got {self.rate!r}")

    def to_json(self) -> dict[str, Any]:
        if self.type == "audio/pcm":
            return {"type": self.type, "rate": self.rate}
        return {"type": self.type}


#: The fields only one VAD variant takes (the SDK models ``ServerVad`` and ``SemanticVad`` separately).
_VAD_ONLY: Final = {
    "server_vad": ("threshold", "prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"),
    "semantic_vad": ("eagerness",),
}
_OTHER_VAD: Final = {"server_vad": "semantic_vad", "semantic_vad": "server_vad"}


#: The range the API accepts for ``server_vad``'s ``idle_timeout_ms`` (the local server's too).
IDLE_TIMEOUT_RANGE_MS: Final = (5_000, 30_000)


@dataclass(frozen=True, slots=True)
class TurnDetection:
    """Server-side voice activity detection; ``None`` fields are omitted. ``server_vad`` takes ``threshold``,
    ``prefix_padding_ms``, ``silence_duration_ms`` and ``idle_timeout_ms``; ``semantic_vad`` takes ``eagerness``;
    both take ``create_response`` and ``interrupt_response``. Setting a field of the other variant raises
    :class:`~rtengine.ConfigError`."""

    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    create_response: bool | None = None
    interrupt_response: bool | None = None
    eagerness: Literal["low", "medium", "high", "auto"] | None = None
    idle_timeout_ms: int | None = None

    def __post_init__(self) -> None:
        if self.type not in ("server_vad", "semantic_vad"):
            raise ConfigError(f"turn_detection type must be server_vad or semantic_vad, got {self.type!r}")
        foreign = [name for name in _VAD_ONLY[_OTHER_VAD[self.type]] if getattr(self, name) is not None]
        if foreign:
            raise ConfigError(
                f"turn_detection {self.type} does not take {', '.join(foreign)} "
                f"(only {_OTHER_VAD[self.type]} does); remove it or use type={_OTHER_VAD[self.type]!r}"
            )
        if self.eagerness is not None and self.eagerness not in _EAGERNESS:
            raise ConfigError(
                f"turn_detection eagerness must be one of {', '.join(_EAGERNESS)}, got {self.eagerness!r}"
            )
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"turn_detection threshold must be within [0, 1], got {self.threshold!r}")
        low, high = IDLE_TIMEOUT_RANGE_MS
        if self.idle_timeout_ms is not None and not low <= self.idle_timeout_ms <= high:
            raise ConfigError(
                f"turn_detection idle_timeout_ms must be within [{low}, {high}] ms (the API's range), "
                f"got {self.idle_timeout_ms!r}"
            )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for name in (
            "threshold",
            "prefix_padding_ms",
            "silence_duration_ms",
            "create_response",
            "interrupt_response",
            "eagerness",
            "idle_timeout_ms",
        ):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def _as_json(value: Mapping[str, Any], what: str) -> str:
    """``value`` as the JSON the API reads, or :class:`~rtengine.ConfigError` naming ``what`` (NaN, infinities,
    objects JSON has no form for)."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} must be JSON: {exc}") from None


@dataclass(frozen=True, slots=True)
class FunctionTool:
    """A function the model may call: ``name``, ``description`` and a JSON-schema ``parameters`` object."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}},
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", freeze(self.parameters))  # the caller's dict, copied read-only
        if not self.name or not set(self.name) <= _TOOL_NAME or len(self.name) > 64:
            raise ConfigError(f"tool name must be 1-64 characters of [A-Za-z0-9_-], got {self.name!r}")
        check_text(self.description, f"tool {self.name!r} description")
        check_text(_as_json(self.parameters, f"tool {self.name!r} parameters"), f"tool {self.name!r} parameters")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "function", "name": self.name}
        if self.description:
            out["description"] = self.description
        out["parameters"] = dict(self.parameters)
        return out


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What a realtime session should be: model, instructions, voice, audio, turn detection and tools.

    ``type="realtime"`` is a conversation; ``type="transcription"`` a transcription-only session, which has no
    instructions, output modalities, output audio, tools or tool choice (setting them raises
    :class:`~rtengine.ConfigError`). ``extra`` is merged last into the session object for fields rtengine
    does not model yet; it may not carry ``id``, ``model`` or ``type``. A config is immutable all the way down:
    ``extra`` (and a tool's ``parameters``) is a read-only copy of the mapping given, so changing that mapping later
    changes nothing (a client encodes a session's JSON once).
    """

    model: str = DEFAULT_MODEL
    instructions: str | None = None
    voice: str | None = None
    output_modalities: tuple[str, ...] | None = None
    input_format: AudioFormat | None = None
    output_format: AudioFormat | None = None
    transcription_model: str | None = None
    noise_reduction: Literal["near_field", "far_field"] | None = None
    turn_detection: TurnDetection | Literal["disabled"] | None = None
    tools: tuple[FunctionTool, ...] = ()
    tool_choice: str | None = None
    max_output_tokens: int | Literal["inf"] | None = None
    type: Literal["realtime", "transcription"] = "realtime"
    extra: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.extra is not None:  # the caller's dict, copied read-only: a later change to it cannot reach the config
            object.__setattr__(self, "extra", freeze(self.extra))
        if not self.model or not self.model.isprintable() or len(self.model) > 128:
            raise ConfigError(f"model must be a non-empty printable name, got {self.model!r}")
        if self.type not in ("realtime", "transcription"):
            raise ConfigError(f"session type must be 'realtime' or 'transcription', got {self.type!r}")
        if self.output_modalities is not None:
            if isinstance(self.output_modalities, str):  # type: ignore[unreachable]
                raise ConfigError("output_modalities must be a tuple such as ('audio',), not a string")
            if len(self.output_modalities) != 1 or not set(self.output_modalities) <= _MODALITIES:
                raise ConfigError(f"output_modalities must be ('audio',) or ('text',), got {self.output_modalities!r}")
        if self.noise_reduction not in (None, "near_field", "far_field"):
            raise ConfigError(f"noise_reduction must be near_field or far_field, got {self.noise_reduction!r}")
        if isinstance(self.turn_detection, str) and self.turn_detection != TURN_DETECTION_DISABLED:
            raise ConfigError(f"turn_detection must be a TurnDetection or 'disabled', got {self.turn_detection!r}")
        names = [tool.name for tool in self.tools]
        if len(set(names)) != len(names):
            raise ConfigError(f"tool names must be unique, got {names!r}")
        if self.tool_choice is not None and self.tool_choice not in _TOOL_CHOICES and self.tool_choice not in names:
            raise ConfigError(
                f"tool_choice must be auto, none, required or the name of a tool, got {self.tool_choice!r}"
            )
        if isinstance(self.max_output_tokens, int) and not 1 <= self.max_output_tokens <= 4096:
            raise ConfigError(f"max_output_tokens must be within 1..4096 or 'inf', got {self.max_output_tokens!r}")
        if isinstance(self.max_output_tokens, str) and self.max_output_tokens != "inf":
            raise ConfigError(f"max_output_tokens must be an int or 'inf', got {self.max_output_tokens!r}")
        if self.extra is not None:
            reserved = {"id", "model", "type"} & set(self.extra)
            if reserved:
                raise ConfigError(f"extra may not set {sorted(reserved)}; use the dedicated fields")
            check_text(_as_json(self.extra, "SessionConfig extra"), "SessionConfig extra (as JSON)")
        for name in ("instructions", "voice", "transcription_model"):
            if (value := getattr(self, name)) is not None:
                check_text(value, f"SessionConfig {name}")
        if self.type == "transcription":
            conflicting = [
                name
                for name in ("instructions", "voice", "output_modalities", "output_format", "tool_choice")
                if getattr(self, name) is not None
            ]
            if self.tools:
                conflicting.append("tools")
            if self.turn_detection is not None or self.max_output_tokens is not None:
                conflicting.extend(n for n in ("turn_detection", "max_output_tokens") if getattr(self, n) is not None)
            if conflicting:
                raise ConfigError(f"a transcription session cannot set {', '.join(conflicting)}")

    def update_payload(self) -> dict[str, Any]:
        """The ``session`` object of a ``session.update`` event: never ``id``, never ``model``."""
        session: dict[str, Any] = {"type": self.type}
        audio_input: dict[str, Any] = {}
        if self.input_format is not None:
            audio_input["format"] = self.input_format.to_json()
        if self.transcription_model is not None:
            audio_input["transcription"] = {"model": self.transcription_model}
        if self.type == "transcription":
            if audio_input:
                session["audio"] = {"input": audio_input}
            return self._with_extra(session)
        if self.instructions is not None:
            session["instructions"] = self.instructions
        if self.output_modalities is not None:
            session["output_modalities"] = list(self.output_modalities)
        if self.noise_reduction is not None:
            audio_input["noise_reduction"] = {"type": self.noise_reduction}
        if isinstance(self.turn_detection, TurnDetection):
            audio_input["turn_detection"] = self.turn_detection.to_json()
        elif self.turn_detection == TURN_DETECTION_DISABLED:
            audio_input["turn_detection"] = None
        audio_output: dict[str, Any] = {}
        if self.output_format is not None:
            audio_output["format"] = self.output_format.to_json()
        if self.voice is not None:
            audio_output["voice"] = self.voice
        audio: dict[str, Any] = {}
        if audio_input:
            audio["input"] = audio_input
        if audio_output:
            audio["output"] = audio_output
        if audio:
            session["audio"] = audio
        if self.tools:
            session["tools"] = [tool.to_json() for tool in self.tools]
        if self.tool_choice is not None:
            if self.tool_choice in _TOOL_CHOICES:
                session["tool_choice"] = self.tool_choice
            else:
                session["tool_choice"] = {"type": "function", "name": self.tool_choice}
        if self.max_output_tokens is not None:
            session["max_output_tokens"] = self.max_output_tokens
        return self._with_extra(session)

    def call_session(self) -> dict[str, Any]:
        """The ``session`` part of call creation: the ``session.update`` object plus ``model``, never ``id``."""
        session = self.update_payload()
        session["model"] = self.model
        return session

    def call_session_json(self) -> str:
        """:meth:`call_session` as compact JSON (what the multipart ``session`` part carries)."""
        return json.dumps(self.call_session(), separators=(",", ":"), ensure_ascii=False)

    def _with_extra(self, session: dict[str, Any]) -> dict[str, Any]:
        if self.extra:
            session.update(self.extra)
        return session
