"""The ``realtime_server`` fixture's value: the local server of one test, with helpers that script it while the
test runs. Imported only when a test asks for the fixture (the server brings aiortc with it)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from rtengine.server import ConnectionRecord, LocalServer, ServerOptions, ServerRecord

__all__ = ["RealtimeTestServer"]


class RealtimeTestServer:
    """The local realtime server of one test (on 127.0.0.1, a free port), and the moves a test makes on it.

    ``base_url`` and ``api_key`` are what a client needs (the ``realtime_client`` fixture is bound to them);
    ``record`` is what the server saw; ``server`` is the :class:`rtengine.server.LocalServer` itself. The helpers
    that act on a conversation wait until it is there (put ``trio.fail_after`` around a test that could hang).
    """

    def __init__(self, server: LocalServer) -> None:
        #: The running :class:`rtengine.server.LocalServer`.
        self.server = server

    def __repr__(self) -> str:
        return f"<RealtimeTestServer {self.base_url}>"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: pass it as ``RealtimeClient(base_url)`` or ``$OPENAI_BASE_URL``."""
        return self.server.base_url

    @property
    def api_key(self) -> str | None:
        """The key the server requires (``None``: it takes any request)."""
        return self.server.options.api_key

    @property
    def options(self) -> ServerOptions:
        return self.server.options

    @property
    def record(self) -> ServerRecord:
        """Everything the server saw: ``record.calls``, ``record.connections``, ``record.hangups`` …"""
        return self.server.record

    @property
    def open_calls(self) -> list[str]:
        """The ids of the calls that are live now."""
        return self.server.open_calls

    def set_faults(self, **faults: Any) -> None:
        """Change fault knobs from now on (the names of :class:`rtengine.server.Faults`), keeping the others, e.g.
        ``set_faults(refuse_sideband_joins=2)``; counters such as ``refuse_sideband_joins`` start again."""
        self.server.set_faults(dataclasses.replace(self.server.faults, **faults))

    def delay_next_join(self, seconds: float) -> None:
        """Hold the next sideband join's handshake ``seconds`` before the server accepts it (the ones after it are
        not delayed; call again to delay more)."""
        self.server.delay_next_join(seconds)

    async def inject(
        self, event: dict[str, Any], *, call_id: str | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        """Send a server event (a dict with ``type``) into a live conversation, once its websocket has received its
        first event, so the app reads it after ``session.created`` (direct) or the first ``session.updated``
        (sideband). Returns the event as sent (with its ``event_id``).

        Which conversation: the WebRTC call ``call_id`` (``Conversation.call_id``); the websocket conversation
        ``session_id`` (the ``session_id`` of the :class:`~rtengine.events.SessionCreated` event the conversation
        received: a websocket conversation has no call id; after a rotation or a reconnect, the new session's id);
        or, naming neither, the only live conversation. ``LookupError`` (saying how to name one) when there is no
        such conversation, or, naming neither, several. Cancellation: while waiting, nothing was sent."""
        await self._wait_for_websocket(call_id, session_id, sideband=False)
        return await self.server.send_event(event, call_id=call_id, session_id=session_id)

    async def drop_sideband(
        self,
        *,
        call_id: str | None = None,
        session_id: str | None = None,
        code: int = 1011,
        reason: str = "",
        mode: Literal["close", "reset", "eof"] = "close",
    ) -> int:
        """Drop the sideband of the call ``call_id`` once it has joined — with a CLOSE ``code`` and ``reason``, or
        ``mode="reset"`` (a TCP reset) / ``"eof"`` (no close frame) — while the call lives on; return how many
        sidebands were dropped.

        On a websocket conversation (no call: named by ``session_id`` as for :meth:`inject`, or the only live
        conversation) it drops that conversation's websocket the same way, once the server has sent its first
        event: the app sees the connection lost (with ``reconnect=True``, ``ConnectionDropped`` then a new session;
        otherwise the conversation ends). ``LookupError`` as for :meth:`inject`. Naming neither, it waits for the
        only conversation's first websocket (a call's sideband, or a direct websocket). Cancellation: while
        waiting, nothing was dropped."""
        await self._wait_for_websocket(call_id, session_id, sideband=call_id is not None)
        return await self.server.drop_sideband(call_id, session_id=session_id, code=code, reason=reason, mode=mode)

    def client_events(self, type: str | None = None, *, call_id: str | None = None) -> list[dict[str, Any]]:
        """The client events the server received (JSON objects, per websocket in arrival order, then each call's
        data channel), all of them or those of ``type``; with ``call_id``, only that call's."""
        events = self.record.client_events(call_id)
        return events if type is None else [e for e in events if e.get("type") == type]

    async def wait_for_client_event(
        self, type: str, *, call_id: str | None = None, count: int = 1
    ) -> list[dict[str, Any]]:
        """Wait until the server has received ``count`` client events of ``type`` and return them all.
        Cancellation: nothing changes; put a deadline around it."""
        await self.record.wait_until(lambda: len(self.client_events(type, call_id=call_id)) >= count)
        return self.client_events(type, call_id=call_id)

    async def _wait_for_websocket(self, call_id: str | None, session_id: str | None, *, sideband: bool) -> None:
        if session_id is not None:  # the app saw its session.created: the websocket is there, or has gone
            return

        def ready(conn: ConnectionRecord) -> bool:
            return (
                conn.accepted
                and conn.end is None
                and bool(conn.frames_out)
                and (call_id is None or conn.call_id == call_id)
                and (not sideband or conn.kind == "sideband")
            )

        await self.record.wait_until(lambda: any(ready(conn) for conn in self.record.connections))
