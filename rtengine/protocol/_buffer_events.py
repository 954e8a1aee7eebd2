"""The input-audio-buffer and item-housekeeping client events (GA): commit, clear, delete, retrieve.

Builders (what a client sends) and the server's typed view of the same events, kept apart from
:mod:`~rtengine.protocol._payloads` so that each family of client events has one small home;
:func:`~rtengine.protocol._payloads.parse_client_event` hands these four types to :func:`parse_buffer_event`.
Pure: no I/O, no trio.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._events import ProtocolWarning, WarningKind

__all__ = [
    "BUFFER_EVENT_TYPES",
    "BufferEvent",
    "InputAudioClear",
    "InputAudioCommit",
    "ItemDelete",
    "ItemRetrieve",
    "input_audio_clear",
    "input_audio_commit",
    "item_delete",
    "item_retrieve",
    "parse_buffer_event",
]

#: The client event types :func:`parse_buffer_event` understands.
BUFFER_EVENT_TYPES: Final = frozenset(
    {"input_audio_buffer.commit", "input_audio_buffer.clear", "conversation.item.delete", "conversation.item.retrieve"}
)


def input_audio_commit() -> dict[str, Any]:
    """``input_audio_buffer.commit``: make the buffered input audio a user item (no response is created)."""
    return {"type": "input_audio_buffer.commit"}


def input_audio_clear() -> dict[str, Any]:
    """``input_audio_buffer.clear``: drop the buffered input audio."""
    return {"type": "input_audio_buffer.clear"}


def item_delete(item_id: str) -> dict[str, Any]:
    """``conversation.item.delete``: remove ``item_id`` from the conversation."""
    return {"type": "conversation.item.delete", "item_id": item_id}


def item_retrieve(item_id: str) -> dict[str, Any]:
    """``conversation.item.retrieve``: ask for the server's copy of ``item_id`` (user audio included)."""
    return {"type": "conversation.item.retrieve", "item_id": item_id}


@dataclass(frozen=True, slots=True)
class InputAudioCommit:
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class InputAudioClear:
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class ItemDelete:
    item_id: str
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class ItemRetrieve:
    item_id: str
    event_id: str | None = None


BufferEvent = InputAudioCommit | InputAudioClear | ItemDelete | ItemRetrieve


def parse_buffer_event(
    event_type: str, message: Mapping[str, Any], event_id: str | None
) -> BufferEvent | ProtocolWarning:
    """The typed event for one of :data:`BUFFER_EVENT_TYPES` (``message`` is the decoded JSON object)."""
    match event_type:
        case "input_audio_buffer.commit":
            return InputAudioCommit(event_id)
        case "input_audio_buffer.clear":
            return InputAudioClear(event_id)
    item_id = message.get("item_id")
    if not isinstance(item_id, str):
        return ProtocolWarning(WarningKind.MISSING_FIELD, f"{event_type}: needs a string item_id", event_type)
    if event_type == "conversation.item.delete":
        return ItemDelete(item_id, event_id)
    if event_type == "conversation.item.retrieve":
        return ItemRetrieve(item_id, event_id)
    raise ValueError(f"not an input-audio-buffer or item event: {event_type!r}")
