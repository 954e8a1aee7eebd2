"""The faults a conversation plays on its views, as :class:`~rtengine.server._options.Faults` asks.

Per websocket view: ``close_after_events`` (a clean CLOSE 1000, then a bounded wait for the client's answer, or an
abrupt TCP drop), ``ignore_client_close`` (a dead peer: never answer a CLOSE, hold the TCP open). Per
conversation: ``inject`` (frames sent once, right after the first ``session.updated``), ``drop_sideband`` (the
first sidebands of a call lost abnormally — reset, EOF, CLOSE 1011 — while the call lives on, after a count of
server events or on a client frame of a given type). The settings are read
at the moment they apply, so ``server.set_faults`` takes effect on live conversations.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import trio

from ..adapters._serving import WebSocket, WsClosed
from ._options import Faults
from ._record import ServerRecord
from ._shapes import ERROR_MESSAGES, error_event

if TYPE_CHECKING:
    from ._views import ConversationViews, Link

__all__ = ["CLOSE_REPLY_TIMEOUT", "ConversationFaults", "injected_error"]

#: How long a view closed by ``close_after_events`` waits for the client's CLOSE in reply.
CLOSE_REPLY_TIMEOUT: Final = 2.0


def injected_error(code: str) -> dict[str, Any]:
    """The server ``error`` event ``inject=("error:<code>",)`` sends (the API's message when it is known)."""
    return error_event(ERROR_MESSAGES.get(code, f"Injected error '{code}'."), code=code)


class ConversationFaults:
    """Applies the current :class:`Faults` to one conversation and its websocket views."""

    def __init__(self, records: ServerRecord, faults: Callable[[], Faults]) -> None:
        self._records = records
        self._faults = faults
        self._injected = False
        self._sidebands_dropped = 0

    async def after_send(self, link: Link) -> None:
        """Count one event sent on ``link``; close the link once ``close_after_events`` is reached, or drop it once
        ``drop_sideband_after`` is (a sideband, while ``drop_sideband_times`` allows)."""
        link.sent += 1
        faults = self._faults()
        limit = faults.close_after_events
        if limit is not None and link.sent >= limit:
            await self._close(link)
            return
        if faults.drop_sideband_on is None and link.sent >= faults.drop_sideband_after and self._may_drop(link, faults):
            assert faults.drop_sideband is not None
            self._sidebands_dropped += 1
            await self._drop_sideband(link, faults.drop_sideband)

    async def before_handle(self, link: Link, kind: object) -> bool:
        """A client frame of type ``kind`` arrived on ``link``: True when ``drop_sideband_on`` names it and the
        sideband was dropped (the frame is lost with it: the caller neither handles nor records it)."""
        faults = self._faults()
        if faults.drop_sideband_on is None or kind != faults.drop_sideband_on or not self._may_drop(link, faults):
            return False
        assert faults.drop_sideband is not None
        self._sidebands_dropped += 1
        await self._drop_sideband(link, faults.drop_sideband)
        return True

    def _may_drop(self, link: Link, faults: Faults) -> bool:
        """``link`` is a live sideband and ``drop_sideband`` asks for a drop that ``drop_sideband_times`` allows."""
        return (
            faults.drop_sideband is not None
            and link.record.kind == "sideband"
            and self._sidebands_dropped < faults.drop_sideband_times
            and not link.closing
        )

    async def _drop_sideband(self, link: Link, mode: str) -> None:
        """Lose one sideband abnormally; the call and its conversation go on."""
        link.closing = True
        if mode == "1011":
            link.record.end, link.record.close_code = "server_close", 1011
            self._records.changed()
            await link.write(functools.partial(link.ws.send_close, 1011, "rtengine local server: drop_sideband"))
            return
        if mode == "reset":
            link.ws.drop()
        link.record.end = "abrupt" if mode == "reset" else "server_eof"
        self._records.changed()
        link.scope.cancel()

    async def _close(self, link: Link) -> None:
        link.closing = True
        if self._faults().close_mode == "abrupt":
            link.ws.drop()
            link.record.end = "abrupt"
            self._records.changed()
            link.scope.cancel()
            return
        link.record.end = "server_close"
        link.record.close_code = 1000
        self._records.changed()
        await link.write(functools.partial(link.ws.send_close, 1000, "rtengine local server: close_after_events"))

    async def await_close_reply(self, link: Link) -> None:
        """After a fault's clean CLOSE: wait (bounded) for the client's CLOSE and record whether it answered."""
        with trio.move_on_after(CLOSE_REPLY_TIMEOUT):
            outcome = await link.ws.receive()
            while not isinstance(outcome, WsClosed):
                outcome = await link.ws.receive()
            link.record.close_answered = outcome.kind == "close"
            self._records.changed()

    @staticmethod
    async def play_dead(ws: WebSocket) -> None:
        """``ignore_client_close``: never answer the client's CLOSE; keep the TCP open until the client drops it."""
        while True:
            again = await ws.receive()
            if isinstance(again, WsClosed) and again.kind == "eof":
                return

    async def inject_once(self, views: ConversationViews) -> None:
        """Send the ``inject`` frames to every view, the first time only (after the first ``session.updated``)."""
        if self._injected:
            return
        self._injected = True
        faults = self._faults()
        for name in faults.inject:
            if name == "malformed_json":
                await views.broadcast('{"type": "response.created", "event_id": ', "<malformed>")
            elif name == "binary":
                await views.broadcast(None, "<binary>", data=b"\x00rtengine-binary-frame")
            elif name == "oversized":
                sent = await views.send({"type": "rtengine.oversized", "padding": "x" * faults.oversized_bytes})
                self._records.injected_event_ids.add(sent["event_id"])  # deliberately not a GA event
            elif name == "unknown_event":
                sent = await views.send({"type": "rtengine.unknown_event", "detail": "injected by the local server"})
                self._records.injected_event_ids.add(sent["event_id"])  # deliberately not a GA event
            else:
                await views.send(injected_error(name.split(":", 1)[1]))
