"""The conversation so far, as items a new session can be given again: history for reconnect and rotation, sans-IO.

A realtime session's conversation lives on the server; a new session (after a lost websocket, or at the session
cap) starts empty. :class:`History` watches what the engine already sees — the typed server events
(``conversation.item.added``/``.done``, ``response.output_item.done``, input and output transcripts, function
calls, ``conversation.item.deleted``/``.truncated``) and the client payloads rtengine wrote (the
``conversation.item.create`` of a user text or a tool output) — and :meth:`History.replay` turns it into the
``conversation.item.create`` payloads that rebuild it, in the conversation's order:

* user texts as ``input_text``; user audio as its transcript (``input_text``), when one arrived;
* assistant messages as ``output_text`` (their text, or the transcript of their audio) — the API refuses assistant
  audio from clients;
* function calls (name, ``call_id``, arguments) and their outputs.

The replay is ``complete`` only when it rebuilds everything: audio whose transcript never came (or a message part
with no text form, such as an image), an assistant message truncated by a barge-in (the API drops its transcript, so
what the model "said" is known only as audio), an item still in progress, or items dropped to bound the memory
(``max_items``, oldest first) make it incomplete, and the items that cannot be rebuilt are left out.

Items keep their server ids in the replay, so the new session's echo (``conversation.item.added`` with the same
id) is recognised and not recorded twice. A client payload is recorded when written (the server may never answer
if the socket drops right after) and matched with its echo by content (same text, or the same ``call_id``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._events import (
    InputTranscriptDone,
    ItemAdded,
    ItemDone,
    OutputTranscriptDone,
    ServerEvent,
    ToolCall,
    UnknownEvent,
)

__all__ = ["DEFAULT_HISTORY_ITEMS", "History", "Replay"]

#: Items a :class:`History` keeps by default (older ones are dropped, and the replay is then incomplete).
DEFAULT_HISTORY_ITEMS: Final = 500

#: Content part types and the field that holds their text form.
_TEXT_FIELD: Final[Mapping[str, str]] = {
    "input_text": "text",
    "output_text": "text",
    "text": "text",
    "input_audio": "transcript",
    "output_audio": "transcript",
    "audio": "transcript",
}
_AUDIO_PARTS: Final = frozenset({"input_audio", "output_audio", "audio"})
_ROLES: Final = frozenset({"user", "assistant", "system"})


@dataclass(frozen=True, slots=True)
class Replay:
    """What :meth:`History.replay` produces: the ``conversation.item.create`` payloads, in order, and whether they
    rebuild the whole conversation."""

    items: tuple[dict[str, Any], ...]
    complete: bool


class _Entry:
    """One conversation item as far as it can be replayed."""

    __slots__ = ("arguments", "call_id", "done", "id", "kind", "name", "output", "parts", "pending", "role")

    def __init__(self, kind: str, item_id: str | None) -> None:
        self.kind = kind  # "message", "function_call", "function_call_output" or "other"
        self.id = item_id
        self.role: str | None = None
        #: Message parts: (part type, its text form or None while unknown).
        self.parts: list[tuple[str, str | None]] = []
        self.call_id: str | None = None
        self.name: str | None = None
        self.arguments: str | None = None
        self.output: str | None = None
        self.done = False
        #: Written by the client and not yet echoed by the server.
        self.pending = False

    def same_as(self, other: _Entry) -> bool:
        """A pending client item and the server's echo of it (matched by content)."""
        if self.kind != other.kind:
            return False
        if self.kind == "function_call_output":
            return self.call_id == other.call_id
        return self.role == other.role and self.parts == other.parts


def _parts(content: object) -> list[tuple[str, str | None]]:
    parts: list[tuple[str, str | None]] = []
    if not isinstance(content, list):
        return parts
    for part in content:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if not isinstance(kind, str):
            continue
        text = part.get(_TEXT_FIELD.get(kind, ""))
        parts.append((kind, text if isinstance(text, str) else None))
    return parts


def _entry(item: Mapping[str, Any]) -> _Entry:
    """An entry from an item as the server (or a client payload) states it."""
    item_id = item.get("id")
    kind = item.get("type")
    entry = _Entry(kind if kind in {"message", "function_call", "function_call_output"} else "other", None)
    entry.id = item_id if isinstance(item_id, str) else None
    role = item.get("role")
    entry.role = role if isinstance(role, str) else None
    entry.parts = _parts(item.get("content"))
    for name in ("call_id", "name", "arguments", "output"):
        value = item.get(name)
        if isinstance(value, str):
            setattr(entry, name, value)
    entry.done = item.get("status") == "completed" or entry.kind == "function_call_output"
    return entry


class History:
    """The replayable record of one conversation (see the module docstring). Feed it every typed server event
    (:meth:`observe`) and every client payload written (:meth:`sent`); :meth:`replay` gives the items."""

    __slots__ = ("_by_id", "_entries", "_max_items", "_truncated")

    def __init__(self, max_items: int = DEFAULT_HISTORY_ITEMS) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self._max_items = max_items
        self._entries: list[_Entry] = []  # not a deque: an empty deque holds a 64-slot block (~760 bytes)
        self._by_id: dict[str, _Entry] = {}
        self._truncated = False

    @property
    def truncated(self) -> bool:
        """True once items were dropped to stay within ``max_items``."""
        return self._truncated

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, item_id: object) -> bool:
        """An item of this id is in the history (its echo from a new session adds nothing)."""
        return item_id in self._by_id

    def _append(self, entry: _Entry) -> None:
        self._entries.append(entry)
        if entry.id is not None:
            self._by_id[entry.id] = entry
        while len(self._entries) > self._max_items:
            old = self._entries.pop(0)
            self._truncated = True
            if old.id is not None and self._by_id.get(old.id) is old:
                del self._by_id[old.id]

    def sent(self, payload: Mapping[str, Any]) -> None:
        """rtengine wrote ``payload``; a ``conversation.item.create`` is recorded (other events are ignored)."""
        if payload.get("type") != "conversation.item.create":
            return
        item = payload.get("item")
        if not isinstance(item, Mapping):
            return
        entry = _entry(item)
        if entry.id is not None and entry.id in self._by_id:
            return
        entry.pending = entry.id is None
        entry.done = True
        self._append(entry)

    def observe(self, event: ServerEvent) -> None:
        """Record what ``event`` says about the conversation (events that say nothing about it are ignored)."""
        match event:
            case ItemAdded(item=item) | ItemDone(item=item):
                self._item(item)
            case ToolCall(call_id=call_id, name=name, arguments=arguments, item_id=item_id):
                entry = self._find(item_id) or self._call(call_id)
                if entry is None:
                    entry = _Entry("function_call", item_id)
                    entry.call_id = call_id
                    self._append(entry)
                entry.name = name if name is not None else entry.name
                entry.arguments = arguments
                entry.done = True
            case InputTranscriptDone(transcript=transcript, item_id=item_id):
                self._transcript(self._find(item_id), transcript, "input_audio")
            case OutputTranscriptDone(transcript=transcript, item_id=item_id):
                self._transcript(self._find(item_id), transcript, "output_text")
            case UnknownEvent(type="response.output_item.done", raw=raw):
                if isinstance(output := raw.get("item"), Mapping):
                    self._item(output)
            case UnknownEvent(type="conversation.item.deleted", raw=raw):
                self._delete(raw.get("item_id"))
            case UnknownEvent(type="conversation.item.truncated", raw=raw):
                entry = self._find(raw.get("item_id"))
                if entry is not None:  # the API drops the transcript of what was not heard: audio only now
                    entry.parts = [(kind, None) if kind in _AUDIO_PARTS else (kind, text) for kind, text in entry.parts]
            case _:
                pass

    def _find(self, item_id: object) -> _Entry | None:
        return self._by_id.get(item_id) if isinstance(item_id, str) else None

    def _call(self, call_id: str) -> _Entry | None:
        for entry in reversed(self._entries):
            if entry.kind == "function_call" and entry.call_id == call_id:
                return entry
        return None

    def _item(self, item: Mapping[str, Any]) -> None:
        fresh = _entry(item)
        known = self._find(fresh.id)
        if known is None and fresh.id is not None:
            known = next((e for e in self._entries if e.pending and e.same_as(fresh)), None)
            if known is not None:  # the echo of what the client wrote
                known.pending = False
                known.id = fresh.id
                self._by_id[fresh.id] = known
                return
        if known is None:
            self._append(fresh)
            return
        # A later state of a known item: keep what is known when the server's copy lacks it (a transcript that
        # arrived in its own event, arguments from function_call_arguments.done).
        if fresh.parts or known.kind != "message":
            old = known.parts
            known.parts = [
                (kind, text if text is not None or i >= len(old) or old[i][0] != kind else old[i][1])
                for i, (kind, text) in enumerate(fresh.parts)
            ]
        for name in ("call_id", "name", "arguments", "output"):
            value = getattr(fresh, name)
            if value is not None and (name != "arguments" or value or not known.arguments):
                setattr(known, name, value)
        known.done = known.done or fresh.done

    def _transcript(self, entry: _Entry | None, transcript: str, kind: str) -> None:
        if entry is None or entry.kind != "message":
            return
        for i, (part, text) in enumerate(entry.parts):
            if text is None and part in _AUDIO_PARTS | {kind}:
                entry.parts[i] = (part, transcript)
                return
        if not entry.parts:
            entry.parts.append((kind, transcript))

    def _delete(self, item_id: object) -> None:
        if isinstance(item_id, str) and (entry := self._by_id.pop(item_id, None)) is not None:
            self._entries.remove(entry)

    def replay(self) -> Replay:
        """The ``conversation.item.create`` payloads that rebuild the conversation, and whether they rebuild all."""
        complete = not self._truncated
        items: list[dict[str, Any]] = []
        calls: set[str] = set()
        for entry in self._entries:
            item = _replayed(entry, calls)
            if item is None:
                complete = False
                continue
            if item:
                items.append({"type": "conversation.item.create", "item": item})
        return Replay(tuple(items), complete)

    def settled(self, keep_back: int = 2) -> tuple[dict[str, Any], ...]:
        """The start of :meth:`replay` that can no longer change: the items before the first one still in
        progress, still unconfirmed by the server, or not (yet) replayable, less the last ``keep_back`` of them
        (the latest answer may still be truncated by a barge-in). A rotation writes these on the next session
        while the current one still runs, and only the rest at the swap."""
        items: list[dict[str, Any]] = []
        calls: set[str] = set()
        for entry in self._entries:
            item = _replayed(entry, calls)
            if item is None or entry.pending or not entry.done:
                break
            if item:
                items.append({"type": "conversation.item.create", "item": item})
        return tuple(items[: max(0, len(items) - keep_back)])


def _replayed(entry: _Entry, calls: set[str]) -> dict[str, Any] | None:
    """The item that rebuilds ``entry``; ``{}`` when there is nothing to rebuild, None when it cannot be."""
    item: dict[str, Any]
    if entry.kind == "message" and entry.role in _ROLES:
        texts = [text for _, text in entry.parts]
        if any(text is None for text in texts) or any(kind not in _TEXT_FIELD for kind, _ in entry.parts):
            return None
        if not entry.parts:
            return {} if entry.done else None
        part = "output_text" if entry.role == "assistant" else "input_text"
        item = {"type": "message", "role": entry.role, "content": [{"type": part, "text": t} for t in texts]}
    elif entry.kind == "function_call":
        if not entry.done or entry.call_id is None or entry.name is None or entry.arguments is None:
            return None
        calls.add(entry.call_id)
        item = {"type": "function_call", "call_id": entry.call_id, "name": entry.name, "arguments": entry.arguments}
    elif entry.kind == "function_call_output":
        if entry.call_id is None or entry.output is None or entry.call_id not in calls:
            return None
        item = {"type": "function_call_output", "call_id": entry.call_id, "output": entry.output}
    else:
        return None
    if entry.id is not None:
        item = {"id": entry.id, **item}
    return item
