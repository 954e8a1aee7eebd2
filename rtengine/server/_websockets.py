"""The websocket side of the local server: which handshakes it accepts, and what each accepted socket serves.

``/v1/realtime?model=…`` is a direct conversation of its own; ``/v1/realtime?call_id=rtc_…`` is a sideband, one
more view of a live call's conversation (unknown call → 404, a malformed id or ``model`` beside ``call_id`` →
400). The handshake faults apply here (``websocket_status``, ``refuse_sideband_joins``, the accept delays, and
``ignore_client_close``, which is set on the socket before it is served). A sideband leaving does not end its call
(the call ends on hang-up, when its media peer goes, or at the session cap; see :mod:`~rtengine.server._calls`), so
a sideband may leave and join the same call again. A direct conversation is closed with ``1001`` at the session cap
(``ServerOptions.session_max_seconds`` after its handshake).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

import h11
import trio

from ..adapters._serving import HttpRequest, WebSocket
from ..protocol._calls import validate_call_id
from ..protocol._errors import InvalidCallId
from ..protocol._session import DEFAULT_MODEL
from ._calls import CALL_NOT_FOUND, Call, CallManager, stamp_session
from ._client_secrets import ClientSecrets
from ._faults import CLOSE_REPLY_TIMEOUT
from ._http import REALTIME_PATH, authorized, error_body
from ._ids import session_id
from ._options import Faults, ServerOptions
from ._realtime import RealtimeSession
from ._record import ConnectionRecord, ServerRecord
from ._scripting import Scripting

__all__ = ["WebSocketGate"]


class WebSocketGate:
    """Accepts (or rejects) websocket handshakes and serves each accepted socket until it ends."""

    def __init__(
        self,
        record: ServerRecord,
        options: ServerOptions,
        faults: Callable[[], Faults],
        calls: CallManager,
        secrets: ClientSecrets | None = None,
        scripting: Scripting | None = None,
    ) -> None:
        self._secrets = secrets or ClientSecrets()
        self._scripting = scripting or Scripting(record, calls)
        self._record = record
        self._options = options
        self._faults = faults
        self._calls = calls
        self._sideband_attempts = 0

    def reset_counters(self) -> None:
        """Count ``refuse_sideband_joins`` from zero again (new fault settings)."""
        self._sideband_attempts = 0

    async def serve(self, stream: trio.abc.Stream, request: HttpRequest) -> None:
        """One websocket upgrade request: record it, then reject it or serve it until it ends."""
        query = dict(parse_qsl(request.query, keep_blank_values=True))
        call_id = query.get("call_id")
        record = ConnectionRecord(
            "sideband" if call_id is not None else "direct", request.path, query, dict(request.headers), call_id
        )
        self._record.connections.append(record)
        self._record.changed()
        ws = WebSocket(stream, request, self._options.max_message_bytes, self._options.slow_client_seconds)
        faults = self._faults()
        ws.answer_close = not faults.ignore_client_close
        try:
            await self._serve(ws, record, request, query, faults)
        finally:
            if record.end is None:
                record.end = "server_shutdown"
            self._record.changed()

    async def _reject(self, ws: WebSocket, record: ConnectionRecord, status: int, message: str, code: str) -> None:
        record.status, record.end = status, "rejected"
        await ws.reject(status, error_body(message, code))

    async def _serve(
        self, ws: WebSocket, record: ConnectionRecord, request: HttpRequest, query: dict[str, str], faults: Faults
    ) -> None:
        call: Call | None = None
        if request.path.rstrip("/") != REALTIME_PATH:
            return await self._reject(ws, record, 404, f"No websocket route {request.path[:200]}.", "not_found")
        if not (authorized(self._options.api_key, request.headers) or self._secrets.accepts(request.headers)):
            return await self._reject(ws, record, 401, "Incorrect API key provided.", "invalid_api_key")
        if record.call_id is not None:
            if "model" in query:
                return await self._reject(ws, record, 400, "Do not send 'model' with 'call_id'.", "invalid_request")
            try:
                validate_call_id(record.call_id)
            except InvalidCallId:
                return await self._reject(ws, record, 400, "Invalid call_id.", "invalid_call_id")
            call = self._calls.calls.get(record.call_id)
            if call is None:
                return await self._reject(ws, record, 404, CALL_NOT_FOUND, "call_id_not_found")
            self._sideband_attempts += 1
            if self._sideband_attempts <= faults.refuse_sideband_joins:
                return await self._reject(ws, record, 503, "Sideband temporarily unavailable (injected).", "injected")
        if faults.websocket_status is not None:
            return await self._reject(ws, record, faults.websocket_status, "Injected rejection.", "injected")
        delay = faults.sideband_accept_delay if call is not None else faults.websocket_accept_delay
        queued = self._scripting.take_join_delay() if call is not None else None
        if queued is not None:  # a delay_next_join() of a test wins
            delay = queued
        if delay and await self._client_left_during(ws, delay):
            record.end = "handshake_abandoned"
            return None
        await ws.accept()
        record.accepted = True
        record.status = 101
        self._record.changed()
        if call is None:
            model = query.get("model") or DEFAULT_MODEL
            session = RealtimeSession(self._record, self._options, model=model, call=None, faults_getter=self._faults)
            minted = self._secrets.session_of(request.headers)
            if minted is not None:  # an ephemeral key's websocket starts from the session it was minted with
                session.state.session = minted
            stamp_session(session, session_id(), self._options.session_max_seconds)
            await self._serve_direct(session, ws, record)
            return None
        call.used.set()  # a joined call is in use: it does not expire as unused
        await call.conversation.serve(ws, record)  # the call outlives its sidebands
        return None

    async def _serve_direct(self, session: RealtimeSession, ws: WebSocket, record: ConnectionRecord) -> None:
        """A direct conversation until its client ends it, or the session cap closes it with ``1001``."""
        self._scripting.directs.append(session)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._expire, session, nursery.cancel_scope)
                await session.serve_alone(ws, record)
                nursery.cancel_scope.cancel()
        finally:
            self._scripting.directs.remove(session)

    async def _expire(self, session: RealtimeSession, scope: trio.CancelScope) -> None:
        await trio.sleep(self._options.session_max_seconds)
        await session.views.expire(self._options.session_cap_message, CLOSE_REPLY_TIMEOUT)
        scope.cancel()  # a client that never answered the CLOSE is dropped

    async def _client_left_during(self, ws: WebSocket, delay: float) -> bool:
        """Hold the handshake for ``delay`` seconds; True if the client hung up meanwhile."""
        with trio.move_on_after(delay):
            try:
                data = await ws.stream.receive_some(1)
            except trio.BrokenResourceError:
                return True
            if not data:
                return True
            # A client must not send frames before the accept; treat it as a protocol error.
            raise h11.RemoteProtocolError("data before the websocket handshake completed")
        return False
