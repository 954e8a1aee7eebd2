"""``ConversationManager``: one current conversation at a time, restartable.

Starting a new conversation first ends the current one **without** a ``Closed`` event (its ``events`` channel
just ends), as the reference does on restart. Every conversation's tasks live in the manager's nursery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from ..protocol._errors import ConversationNotRunning
from ..protocol._history import DEFAULT_HISTORY_ITEMS
from ..protocol._rotation import DEFAULT_ROTATE_MARGIN
from ..protocol._session import SessionConfig
from ._conversation import Capacities, Conversation
from ._open import start_conversation
from ._start import SidebandMode

if TYPE_CHECKING:
    from ._media import Media
    from ._seams import Endpoint

__all__ = ["ConversationManager", "open_manager"]


class ConversationManager:
    """Holds the current :class:`Conversation` (``current``); get one from :func:`open_manager`."""

    def __init__(self, client: Endpoint, nursery: trio.Nursery) -> None:
        self._client = client
        self._nursery = nursery
        self.current: Conversation | None = None
        self._lock = trio.Lock()  # start() and close() are serialized
        self._starts: set[trio.CancelScope] = set()  # the starts in flight (close() cancels them)

    def __repr__(self) -> str:
        return f"<ConversationManager current={self.current!r}>"

    async def start(
        self,
        session: SessionConfig,
        offer_sdp: str | None = None,
        *,
        sideband: SidebandMode = "background",
        raw_sdp: bool = False,
        capacities: Capacities | None = None,
        media: Media | None = None,
        reconnect: bool = False,
        rotate_margin: float | None = DEFAULT_ROTATE_MARGIN,
        history_items: int = DEFAULT_HISTORY_ITEMS,
    ) -> Conversation:
        """Replace the current conversation (no ``Closed`` for it) with a new one, and return the new one.

        Raises like :func:`~rtengine.open_conversation`; after a failed start there is no current conversation.
        A :meth:`close` during the start wins: the start is cancelled (a call it created is hung up) and raises
        :class:`~rtengine.ConversationNotRunning`. Cancellation: the old conversation is ended either way; a
        cancelled start installs nothing.
        """
        starting = trio.CancelScope()  # close() from here on wins, also while this start waits for the lock
        self._starts.add(starting)
        try:
            with starting:
                async with self._lock:
                    old, self.current = self.current, None
                    if old is not None:
                        await old._replace()
                    conv = await start_conversation(
                        self._client,
                        session,
                        self._nursery,
                        offer_sdp,
                        sideband=sideband,
                        raw_sdp=raw_sdp,
                        capacities=capacities,
                        media=media,
                        reconnect=reconnect,
                        rotate_margin=rotate_margin,
                        history_items=history_items,
                    )
                    self.current = conv
                    return conv
        finally:
            self._starts.discard(starting)
        raise ConversationNotRunning("the manager was closed while this conversation was starting")

    def _running(self) -> Conversation:
        conv = self.current
        if conv is None or not conv.active:
            raise ConversationNotRunning
        return conv

    async def send_text(self, text: str) -> None:
        """:meth:`Conversation.send_text` on the current conversation."""
        await self._running().send_text(text)

    def send_audio(self, pcm16: bytes) -> bool:
        """:meth:`Conversation.send_audio` on the current conversation."""
        return self._running().send_audio(pcm16)

    async def send_tool_output(self, call_id: str, output: str, *, respond: bool = True) -> None:
        """:meth:`Conversation.send_tool_output` on the current conversation."""
        await self._running().send_tool_output(call_id, output, respond=respond)

    async def request_response(self) -> None:
        """:meth:`Conversation.request_response` on the current conversation."""
        await self._running().request_response()

    async def close(self) -> None:
        """Close the current conversation (``Closed("requested")``), if any; a start in flight is cancelled first
        (it raises :class:`~rtengine.ConversationNotRunning`). Shielded and bounded."""
        with trio.CancelScope(shield=True):
            for starting in self._starts:
                starting.cancel()
            if self.current is not None:  # claimed before any checkpoint: close() wins from its first instant
                await self.current.close()
            async with self._lock:
                if self.current is not None:
                    await self.current.close()


@asynccontextmanager
async def open_manager(client: Endpoint) -> AsyncIterator[ConversationManager]:
    """A :class:`ConversationManager` whose conversations live in a nursery owned by this block.

    Leaving the block closes the current conversation and ends every task.
    """
    async with trio.open_nursery() as nursery:
        manager = ConversationManager(client, nursery)
        try:
            yield manager
        finally:
            await manager.close()
