"""A history replay that survives the loss of its socket, sans-IO: which items are still owed to the new session.

A re-dialed call's sideband writes the history's replay right after its ``session.update``; the sideband may be
lost in the middle (and joined again: the call and its conversation live on). :class:`ReplayProgress` keeps the
replay's items until the server *answered* each — added it (``conversation.item.added`` naming the item's id) or
refused it (an ``error`` naming the ``event_id`` it was written with): an item written on a socket that was lost
before its answer came is owed again, and written again on the re-joined socket, in the replay's order, before
anything else. An item the server answered is never written again; so nothing is lost and nothing is doubled
(unless the server added an item and its answer was lost with the socket: the new write is then refused by id, a
non-fatal refusal — never a second copy). Items without an id are matched with the server's answers in order.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

__all__ = ["ReplayProgress"]


class ReplayProgress:
    """The items of a replay not yet answered, and the counts of those added and refused."""

    __slots__ = ("_asked", "_events", "_sent", "added", "complete", "owed", "refused", "unconfirmed")

    def __init__(self, items: tuple[Mapping[str, Any], ...], complete: bool) -> None:
        #: The items still owed, in the replay's order.
        self.owed: list[Mapping[str, Any]] = [_with_id(item) for item in items]
        #: Whether the history itself could be rebuilt in full (see ``History.replay``).
        self.complete = complete
        self.added = self.refused = 0
        #: Items written whose answer never came within the wait (given up: neither written again nor counted added).
        self.unconfirmed = 0
        self._events: dict[str, Mapping[str, Any]] = {}
        #: The ids of the owed items written on a socket that was then lost (in doubt).
        self._sent: set[str] = set()
        #: The ``conversation.item.retrieve`` event ids of this socket, and the item id each asks for.
        self._asked: dict[str, str] = {}

    @property
    def done(self) -> bool:
        return not self.owed

    def in_doubt(self) -> list[str]:
        """A new socket: the ids of the owed items to ask for first (written on a lost socket, no answer)."""
        self._events.clear()
        self._asked.clear()
        return [own for item in self.owed if (own := _item_id(item)) is not None and own in self._sent]

    def asking(self, item_id: str, event_id: str) -> None:
        """``conversation.item.retrieve`` for ``item_id`` was written with ``event_id``."""
        self._asked[event_id] = item_id

    @property
    def asked(self) -> bool:
        """Some ``conversation.item.retrieve`` of this socket is still unanswered."""
        return bool(self._asked)

    def retrieved(self, item_id: str | None) -> bool:
        """``conversation.item.retrieved``: True when it answers our question (the item is in: added)."""
        for event_id, asked in list(self._asked.items()):
            if asked == item_id:
                del self._asked[event_id]
                self._sent.discard(asked)
                self.added_item(asked)
                return True
        return False

    def not_found(self, event_id: str | None) -> bool:
        """An error answering our ``conversation.item.retrieve`` ``event_id``: the item is not in (written again)."""
        asked = self._asked.pop(event_id, None) if event_id is not None else None
        if asked is None:
            return False
        self._sent.discard(asked)
        return True

    def writing(self) -> list[Mapping[str, Any]]:
        """Every item owed, to write on this socket (those found in are no longer owed)."""
        self._asked.clear()
        return list(self.owed)

    def written(self, item: Mapping[str, Any], event_id: str) -> None:
        """``item``'s write went out with ``event_id`` (its refusal names it); it is in doubt until answered."""
        self._events[event_id] = item
        own = _item_id(item)
        if own is not None:
            self._sent.add(own)

    def added_item(self, item_id: str | None) -> bool:
        """The server added an item: True when it answers an owed one (by its id)."""
        for n, item in enumerate(self.owed):
            if item_id is not None and _item_id(item) == item_id:
                del self.owed[n]
                self._sent.discard(item_id)
                self.added += 1
                return True
        return False

    def refused_event(self, event_id: str | None) -> bool:
        """The server refused the event ``event_id``: True when it was an owed item's."""
        item = self._events.pop(event_id, None) if event_id is not None else None
        if item is None or item not in self.owed:
            return False
        self.owed.remove(item)
        self._sent.discard(_item_id(item) or "")
        self.refused += 1
        return True

    def give_up(self) -> int:
        """The answers did not come within the wait: the items owed are given up (counted ``unconfirmed``)."""
        missing = len(self.owed)
        self.unconfirmed += missing
        self.owed.clear()
        self._events.clear()
        self._sent.clear()
        self._asked.clear()
        return missing


def _item_id(payload: Mapping[str, Any]) -> str | None:
    item = payload.get("item")
    value = item.get("id") if isinstance(item, Mapping) else None
    return value if isinstance(value, str) else None


def _with_id(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """A ``conversation.item.create`` whose item has an id (one is chosen when it has none)."""
    item = payload.get("item")
    if not isinstance(item, Mapping) or _item_id(payload) is not None:
        return payload
    return {**payload, "item": {**item, "id": f"item_rt{secrets.token_hex(8)}"}}
