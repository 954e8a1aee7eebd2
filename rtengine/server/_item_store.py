"""The conversation's items as the local server keeps them: ``conversation.item.delete``, ``.retrieve``, ``.truncate``.

:class:`ConversationItems` learns every item from the server events that announce it
(``conversation.item.added``/``.done``, seen through :meth:`ConversationItems.observe`), so it never depends on
who built the item. A user audio item also keeps its audio and, once transcribed, its transcript, and an assistant
item the output audio streamed for it (``response.output_audio.delta``): the API's ``conversation.item.retrieved``
returns the audio ("to inspect user audio after noise cancellation and VAD").
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from ..protocol._payloads import ItemTruncate
from ._items import item_error
from ._model import ModelState
from ._shapes import error_event

if TYPE_CHECKING:
    from ._views import Link

__all__ = ["ConversationItems"]

Send = Callable[[dict[str, Any]], Awaitable[None]]
Reply = Callable[["Link | None", dict[str, Any]], Awaitable[None]]

_ITEM_EVENTS: Final = frozenset({"conversation.item.added", "conversation.item.done"})


class ConversationItems:
    """The items of one conversation, in order, with the audio of user audio items."""

    def __init__(self, state: ModelState, send: Send, reply: Reply) -> None:
        self._state = state
        self._send = send
        self._reply = reply
        self._items: dict[str, dict[str, Any]] = {}
        #: The item ids in conversation order (an item is placed after its ``previous_item_id``).
        self._order: list[str] = []
        self._audio: dict[str, bytearray] = {}
        self._transcripts: dict[str, str] = {}

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def observe(self, event: dict[str, Any]) -> None:
        """Learn the item an outgoing ``conversation.item.added``/``.done`` carries (the latest shape wins), and
        the output audio of an assistant item."""
        if event.get("type") == "response.output_audio.delta":
            item_id, delta = event.get("item_id"), event.get("delta")
            if isinstance(item_id, str) and isinstance(delta, str):
                self._audio.setdefault(item_id, bytearray()).extend(base64.b64decode(delta))
            return
        if event.get("type") not in _ITEM_EVENTS:
            return
        item = event.get("item")
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            if item["id"] not in self._items:
                self._place(item["id"], event.get("previous_item_id"))
            self._items[item["id"]] = item

    def _place(self, item_id: str, previous: object) -> None:
        if previous is None:
            self._order.insert(0, item_id)
        elif previous in self._order:
            self._order.insert(self._order.index(previous) + 1, item_id)
        else:
            self._order.append(item_id)

    @property
    def order(self) -> list[str]:
        """The conversation's item ids, first to last."""
        return list(self._order)

    def placement_error(self, message: Mapping[str, Any]) -> dict[str, Any] | None:
        """The API's ``error`` for a ``conversation.item.create`` whose ``previous_item_id`` is neither absent,
        ``root`` nor an item of the conversation ("If the ID cannot be found, an error will be returned and the
        item will not be added"); None otherwise (and for any other event)."""
        if message.get("type") != "conversation.item.create":
            return None
        eid = message.get("event_id") if isinstance(message.get("event_id"), str) else None
        item = message.get("item")
        own_id = item.get("id") if isinstance(item, dict) else None
        if own_id is not None and own_id in self._items:  # an id is the item's name: two items cannot share it
            text = f"Error adding item: an item with id '{str(own_id)[:100]}' already exists."
            return error_event(text, code="invalid_value", param="item.id", event_id=eid)
        if message.get("previous_item_id") in (None, "root"):
            return None
        previous = message["previous_item_id"]
        if not isinstance(previous, str):
            message_text = "Invalid type for 'previous_item_id': expected a string."
            return error_event(message_text, code="invalid_type", param="previous_item_id", event_id=eid)
        if previous in self._items:
            return None
        text = f"Error adding item: the previous item with id '{previous[:100]}' does not exist."
        return error_event(text, code="item_create_invalid_previous_item_id", param="previous_item_id", event_id=eid)

    def input_error(self, items: object, eid: str | None) -> dict[str, Any] | None:
        """The API's ``error`` for the ``input`` of a ``response.create`` (items like ``conversation.item.create``'s,
        or an ``item_reference`` to an item of the conversation), its ``param`` under ``response.input[i]``; None
        when every item is valid (or there is no ``input``)."""
        for index, item in enumerate(items if isinstance(items, list) else ()):
            where = f"response.input[{index}]"
            if isinstance(item, dict) and item.get("type") == "item_reference":
                if item.get("id") in self._items:
                    continue
                text = f"Invalid '{where}.id': no item with id '{str(item.get('id'))[:100]}' in the conversation."
                return error_event(text, code="invalid_value", param=f"{where}.id", event_id=eid)
            error = item_error(item, eid) if isinstance(item, dict) else None
            if error is not None:
                param = error["error"].get("param") or ""
                error["error"]["param"] = where + param.removeprefix("item")
                error["error"]["message"] = error["error"]["message"].replace("'item", f"'{where}")
                return error
        return None

    def keep_audio(self, item_id: str, audio: bytes) -> None:
        """The input audio (in the session's input format) a committed user item holds."""
        self._audio[item_id] = bytearray(audio)

    def keep_transcript(self, item_id: str, transcript: str) -> None:
        """The input transcription of a user audio item, once completed."""
        self._transcripts[item_id] = transcript

    async def cut(self, event: ItemTruncate, origin: Link | None) -> None:
        """``conversation.item.truncate``: cut an assistant audio item. Past the audio's end the API answers the
        ``error`` and then truncates at the real end; an item without output audio is ``unsupported_content_type``;
        a negative end is ``integer_below_min_value``."""
        if event.audio_end_ms < 0:
            message = (
                "Invalid 'audio_end_ms': integer below minimum value. "
                f"Expected a value >= 0, but got {event.audio_end_ms} instead."
            )
            error = error_event(message, code="integer_below_min_value", param="audio_end_ms", event_id=event.event_id)
            await self._reply(origin, error)
            return
        received = self._state.audio_items.get(event.item_id)
        if received is not None and event.content_index != 0:  # an assistant audio item has one content part
            message = f"Invalid 'content_index': the item has no content part {event.content_index}."
            error = error_event(message, code="invalid_value", param="content_index", event_id=event.event_id)
            await self._reply(origin, error)
            return
        if received is None:
            message = "Only model output audio messages can be truncated."
            error = error_event(message, code="unsupported_content_type", event_id=event.event_id)
            await self._reply(origin, error)
            return
        end = event.audio_end_ms
        if end > received:
            message = f"Audio content of {received}ms is already shorter than {end}ms."
            error = error_event(message, code=None, event_id=event.event_id)
            await self._reply(origin, error)
            end = received
        self.truncate(event.item_id, end, received)
        self._state.audio_items[event.item_id] = end  # a later truncate is measured against what is left
        truncated = {"item_id": event.item_id, "content_index": event.content_index, "audio_end_ms": end}
        await self._send({"type": "conversation.item.truncated", **truncated})

    def truncate(self, item_id: str, end_ms: int, received_ms: int) -> None:
        """``conversation.item.truncate`` of an assistant audio item at ``end_ms`` of its ``received_ms``: the audio
        after it is cut and the transcript deleted ("Truncating audio will delete the server-side text transcript to
        ensure there is not text in the context that hasn't been heard by the user")."""
        audio = self._audio.get(item_id)
        if audio is not None and received_ms > 0:
            del audio[len(audio) * end_ms // received_ms :]
        if item_id not in self._items:
            return
        item = self._items[item_id] = copy.deepcopy(self._items[item_id])  # the sent event stays as it was
        for part in item.get("content") or []:
            if isinstance(part, dict) and part.get("type") == "output_audio":
                part.pop("transcript", None)

    def retrieved(self, item_id: str) -> dict[str, Any]:
        """The server's copy of an item (``object`` set; an audio part with its ``audio``, user audio with its
        ``transcript``)."""
        item = copy.deepcopy(self._items[item_id])
        item.setdefault("object", "realtime.item")
        if item_id in self._audio:
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") in ("input_audio", "output_audio"):
                    part["audio"] = base64.b64encode(self._audio[item_id]).decode("ascii")
                if isinstance(part, dict) and part.get("type") == "input_audio":
                    part["transcript"] = self._transcripts.get(item_id, part.get("transcript"))
        return item

    async def delete(self, item_id: str, event_id: str | None, origin: Link | None) -> None:
        """``conversation.item.delete``: ``conversation.item.deleted`` to every view, or the API's error."""
        if item_id not in self._items:
            message = f"Error deleting item: the item with id '{item_id}' does not exist."
            await self._reply(origin, error_event(message, code="item_delete_invalid_item_id", event_id=event_id))
            return
        del self._items[item_id]
        self._order.remove(item_id)
        self._audio.pop(item_id, None)
        self._transcripts.pop(item_id, None)
        state = self._state
        state.audio_items.pop(item_id, None)
        if state.last_item_id == item_id:  # the next item follows the one before it
            state.last_item_id = self._order[-1] if self._order else None
        await self._send({"type": "conversation.item.deleted", "item_id": item_id})

    async def retrieve(self, item_id: str, event_id: str | None, origin: Link | None) -> None:
        """``conversation.item.retrieve``: ``conversation.item.retrieved`` to the asking view, or the API's error."""
        if item_id not in self._items:
            message = f"Error retrieving item: the item with id '{item_id}' does not exist."
            await self._reply(origin, error_event(message, code="item_retrieve_invalid_item_id", event_id=event_id))
            return
        await self._reply(origin, {"type": "conversation.item.retrieved", "item": self.retrieved(item_id)})
