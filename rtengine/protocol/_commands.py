"""The caller commands, sans-IO: texts, tool outputs and responses, session updates mid-call, raw client events,
the input audio buffer (push-to-talk) and the output audio buffer (WebRTC barge-in). Each is checked where the
caller makes it (its constructor, on the caller's line): text the wire cannot carry — not a ``str``, or a lone
surrogate, which UTF-8 cannot encode — is a :class:`~rtengine.ConfigError` there, never a lost connection later.

Theory of operation. Every command goes into the conversation's one control FIFO, so it reaches the wire in call
order with texts, tool outputs and response requests (and is buffered while a sideband joins). Two decisions make
them safe to mix with the rest:

* **Audio barrier.** Audio frames travel in their own queue, so a command about the input audio buffer
  (:class:`AudioBuffer`, and a :class:`SendEvent` whose ``type`` starts with ``input_audio_buffer.``) records how
  many frames had been queued when it was queued (:func:`audio_barrier`); it is not taken from the FIFO before the
  audio pump has written (or lost) that many. ``send_audio(…)``, ``commit_audio()``, ``request_response()`` is
  therefore appended, committed, answered — in that order.
* **Session updates are partial and replayed whole.** :class:`UpdateSession` carries the changed
  :class:`~rtengine.SessionConfig` fields; when it is taken, the engine applies them to the session it holds
  (:func:`apply_update`) and writes only the difference (:func:`session_changes`). Every later re-join, reconnect
  and rotation sends that updated session. A field can be changed, not removed: the API keeps what a
  ``session.update`` leaves out, so a change to ``None`` is refused (:class:`~rtengine.ConfigError`).
* **Raw events** (:class:`SendEvent`, :func:`client_event`) must be JSON objects with a string ``type``; they keep
  their own ``event_id`` or get rtengine's. A raw ``response.create`` is sequenced like ``request_response``
  (never two in flight; while one is, it is owed and goes out when that one ends — with its own ``response``
  parameters; owed creates coalesce, the latest parameters win). A raw ``session.update`` is written as given
  but is not replayed on a re-join or reconnect: use ``update_session`` for that. The places it sets
  (:func:`raw_session_paths`) are written by the next ``update_session`` naming their fields even when rtengine's
  value did not change (the server may hold the raw one); the others stay as the raw event set them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Set
from dataclasses import dataclass, fields, replace
from typing import Any, Final, Literal

from ._errors import ConfigError
from ._session import SessionConfig
from ._text import check_text

__all__ = [
    "AudioBuffer",
    "CancelResponse",
    "ClearOutputAudio",
    "ClientPayload",
    "RequestResponse",
    "SendEvent",
    "SendText",
    "SendToolOutput",
    "UpdatePayload",
    "UpdateSession",
    "apply_update",
    "check_update",
    "field_paths",
    "raw_session_paths",
    "undo_update",
    "audio_barrier",
    "buffer_payload",
    "client_event",
    "session_changes",
]

Payload = dict[str, Any]

#: The ``SessionConfig`` fields ``update_session`` may not change (the API fixes them for the session's life).
_FIXED: Final = frozenset({"model", "type"})
_FIELDS: Final = frozenset(f.name for f in fields(SessionConfig))
#: Where each ``SessionConfig`` field is in a ``session.update`` (``extra`` is its own keys, at the top level).
_PATHS: Final[Mapping[str, tuple[str, ...]]] = {
    "instructions": ("instructions",),
    "voice": ("audio", "output", "voice"),
    "output_modalities": ("output_modalities",),
    "input_format": ("audio", "input", "format"),
    "output_format": ("audio", "output", "format"),
    "transcription_model": ("audio", "input", "transcription"),
    "noise_reduction": ("audio", "input", "noise_reduction"),
    "turn_detection": ("audio", "input", "turn_detection"),
    "tools": ("tools",),
    "tool_choice": ("tool_choice",),
    "max_output_tokens": ("max_output_tokens",),
}
#: Largest raw event ``send_event`` takes (the API's own bound on a client event is 15 MiB).
MAX_EVENT_BYTES: Final = 15 << 20


class ClientPayload(dict[str, Any]):
    """A client event the caller built (``send_event``): its own ``event_id``, if it has one, is kept."""

    __slots__ = ()


class UpdatePayload(dict[str, Any]):
    """The ``session.update`` an ``update_session`` became; ``undo`` maps each field it changed to its value
    before and after, so that a refusal takes it back out of the session rtengine holds (:func:`undo_update`)."""

    __slots__ = ("undo",)

    def __init__(self, payload: Payload, undo: Mapping[str, tuple[Any, Any]]) -> None:
        super().__init__(payload)
        self.undo = dict(undo)


@dataclass(frozen=True, slots=True)
class SendText:
    """The caller's ``send_text``: a user message item (no response is requested)."""

    text: str

    def __post_init__(self) -> None:
        check_text(self.text, "send_text's text")


@dataclass(frozen=True, slots=True)
class SendToolOutput:
    """The caller's ``send_tool_output``: the output item, then a sequenced ``response.create`` if ``respond``."""

    call_id: str
    output: str
    respond: bool = True

    def __post_init__(self) -> None:
        check_text(self.call_id, "send_tool_output's call_id")
        check_text(self.output, "send_tool_output's output")


@dataclass(frozen=True, slots=True)
class RequestResponse:
    """The caller's ``request_response``."""


@dataclass(frozen=True, slots=True)
class CancelResponse:
    """The caller's ``cancel_response``."""

    response_id: str | None = None

    def __post_init__(self) -> None:
        if self.response_id is not None:
            check_text(self.response_id, "cancel_response's response_id")


@dataclass(frozen=True, slots=True)
class UpdateSession:
    """The caller's ``update_session``: the changed :class:`~rtengine.SessionConfig` fields."""

    changes: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SendEvent:
    """The caller's ``send_event``: a validated client event and its encoded size in bytes."""

    payload: ClientPayload
    size: int


@dataclass(frozen=True, slots=True)
class AudioBuffer:
    """The caller's ``commit_audio`` / ``clear_audio``: ``input_audio_buffer.commit`` / ``.clear``."""

    action: Literal["commit", "clear"]


@dataclass(frozen=True, slots=True)
class ClearOutputAudio:
    """The caller's ``clear_output_audio``: ``output_audio_buffer.clear`` (WebRTC and SIP calls only)."""


def audio_barrier(command: object) -> bool:
    """True when ``command`` must wait for the audio frames queued before it (see the module docstring)."""
    if isinstance(command, AudioBuffer):
        return True
    return isinstance(command, SendEvent) and str(command.payload["type"]).startswith("input_audio_buffer.")


def buffer_payload(command: AudioBuffer | ClearOutputAudio) -> Payload:
    """The one payload of a buffer command."""
    if isinstance(command, ClearOutputAudio):
        return {"type": "output_audio_buffer.clear"}
    return {"type": f"input_audio_buffer.{command.action}"}


def client_event(event: Mapping[str, Any]) -> SendEvent:
    """Validate a raw client event: a mapping with a non-empty string ``type`` (and a string ``event_id`` if it has
    one) that encodes as JSON within 15 MiB. Raises :class:`~rtengine.ConfigError` (a ``ValueError``) otherwise.
    The event is copied (through JSON), so later changes by the caller do not reach the wire."""
    if not isinstance(event, Mapping):
        raise ConfigError(f"send_event takes a dict (a JSON object), got {type(event).__name__}")
    kind = event.get("type")
    if not isinstance(kind, str) or not kind:
        raise ConfigError(f"send_event needs a non-empty string 'type', got {kind!r}")
    event_id = event.get("event_id")
    if event_id is not None and not isinstance(event_id, str):
        raise ConfigError(f"send_event's 'event_id' must be a string, got {type(event_id).__name__}")
    try:
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"send_event takes a JSON-serialisable event: {exc}") from None
    size = len(check_text(text, "send_event's event").encode())
    if size > MAX_EVENT_BYTES:
        raise ConfigError(f"send_event's event is {size} bytes encoded; the API takes at most {MAX_EVENT_BYTES}")
    payload = ClientPayload(json.loads(text))
    if payload.get("event_id") is None:
        payload.pop("event_id", None)  # rtengine stamps its own
    return SendEvent(payload, size)


def apply_update(session: SessionConfig, changes: Mapping[str, Any]) -> SessionConfig:
    """``session`` with ``changes`` applied; raises :class:`~rtengine.ConfigError` for an unknown or fixed field,
    a ``None`` (a field cannot be removed) or a value :class:`~rtengine.SessionConfig` refuses."""
    unknown = sorted(set(changes) - _FIELDS)
    if unknown:
        raise ConfigError(f"update_session: unknown session fields {unknown}")
    fixed = sorted(set(changes) & _FIXED)
    if fixed:
        raise ConfigError(f"update_session cannot change {fixed}: the API fixes them for the session's life")
    removed = sorted(name for name, value in changes.items() if value is None)
    if removed:
        raise ConfigError(
            f"update_session cannot remove {removed}: the API keeps a field a session.update leaves out "
            "(turn detection is switched off with TURN_DETECTION_DISABLED)"
        )
    return replace(session, **changes)


def check_update(session: SessionConfig, changes: Mapping[str, Any]) -> None:
    """Refuse, with :class:`~rtengine.ConfigError`, an update :func:`apply_update` refuses, one whose
    ``session.update`` would drop a field, or one that does not encode as JSON (a non-serialisable value, NaN or
    an infinity, which the API cannot read) — what ``update_session`` checks at the caller's line."""
    payload = session_changes(session, apply_update(session, changes))
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"update_session takes JSON-serialisable values: {exc}") from None


def undo_update(session: SessionConfig, undo: Mapping[str, tuple[Any, Any]]) -> SessionConfig:
    """``session`` with a refused update taken back: each field it changed returns to its value before, unless a
    later update changed that field again (then the later value stays)."""
    back = {name: before for name, (before, after) in undo.items() if getattr(session, name) == after}
    return replace(session, **back) if back else session


def raw_session_paths(payload: Mapping[str, Any]) -> set[tuple[str, ...]]:
    """The places a raw ``session.update`` (``send_event``) sets: top-level keys, and ``audio.input.*`` /
    ``audio.output.*`` names (the API merges those)."""
    session = payload.get("session")
    paths: set[tuple[str, ...]] = set()
    for key, value in session.items() if isinstance(session, Mapping) else ():
        if key == "audio" and isinstance(value, Mapping):
            for side, part in value.items():
                paths |= {("audio", side, name) for name in part} if isinstance(part, Mapping) else {("audio", side)}
        else:
            paths.add((key,))
    return paths


def field_paths(changes: Mapping[str, Any]) -> set[tuple[str, ...]]:
    """The places in a ``session.update`` the ``SessionConfig`` fields in ``changes`` are written to."""
    paths = {_PATHS[name] for name in changes if name in _PATHS}
    extra = changes.get("extra")
    return paths | {(key,) for key in extra} if isinstance(extra, Mapping) else paths


def session_changes(old: SessionConfig, new: SessionConfig, force: Set[tuple[str, ...]] = frozenset()) -> Payload:
    """The ``session.update`` that takes the server from ``old`` to ``new``: its ``type`` and every changed
    field, where ``audio.input.*`` and ``audio.output.*`` are fields of their own (the API merges them) and every
    other top-level key is replaced whole (no tools left is ``"tools": []``). The places in ``force`` are written
    even when unchanged (a raw ``session.update`` may have set them to something else on the server: see
    :func:`raw_session_paths`). Raises :class:`~rtengine.ConfigError` when ``new`` drops a field."""
    before, after = old.update_payload(), new.update_payload()
    changed: Payload = {"type": after["type"]}
    dropped = [key for key in before if key not in after and key != "tools"]
    if "tools" in before and "tools" not in after:
        changed["tools"] = []  # tools=(): the API removes every tool on an empty list
    for key, value in after.items():
        if key == "audio" and isinstance(before.get("audio"), dict):
            audio: Payload = {}
            for side in ("input", "output"):
                was, now = before["audio"].get(side, {}), value.get(side, {})
                dropped += [f"audio.{side}.{name}" for name in was if name not in now]
                diff = {
                    name: part
                    for name, part in now.items()
                    if name not in was or was[name] != part or ("audio", side, name) in force
                }
                if diff:
                    audio[side] = diff
            if audio:
                changed["audio"] = audio
        elif key not in before or before[key] != value or (key,) in force:
            changed[key] = value
    if dropped:
        raise ConfigError(f"update_session cannot remove {sorted(dropped)} from the session")
    return {"type": "session.update", "session": changed}
