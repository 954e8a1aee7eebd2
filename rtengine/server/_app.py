"""The local server: one trio listener for HTTP (call creation, hang-up) and websockets (realtime, sideband).

Routes (the base URL is ``http://HOST:PORT/v1``):

* ``POST /v1/realtime/calls`` — multipart (``sdp`` + optional ``session``) or raw ``application/sdp``; answers
  ``201`` with a real aiortc SDP answer, ``Content-Type: application/sdp`` and
  ``Location: /v1/realtime/calls/rtc_…``; malformed input → 400 with a JSON error.
* ``POST /v1/realtime/calls/{call_id}/hangup`` — ends a live call (closes its peer and sidebands): ``200`` with
  an empty body; any other id (unknown, malformed, already ended) → ``404`` ``call_id_not_found``, like the API.
* ``POST /v1/realtime/calls/{call_id}/accept|reject|refer`` — the Calls API of SIP calls, answered by the simulated
  phone (:mod:`~rtengine.server._sip`; ``ServerOptions(sip_webhook=…, webhook_secret=…)`` places incoming calls).
* ``POST /v1/realtime/client_secrets`` — mints an ephemeral key (``ek_…``, :mod:`~rtengine.server._client_secrets`)
  with its session; the key is then accepted as a bearer for calls, hang-ups and websockets until it expires.
* websocket ``/v1/realtime?model=…`` — a direct conversation; ``/v1/realtime?call_id=rtc_…`` — the sideband of
  a known call (unknown id → 404; a ``model`` beside ``call_id`` → 400).
* A call has one conversation (:class:`~rtengine.server._realtime.RealtimeSession`); its ``oai-events`` data
  channel and every sideband that joins are views of it. The call ends on hang-up, when its media peer goes away,
  or at the session cap (``ServerOptions.session_max_seconds``) — not when a sideband leaves.

This module routes requests and owns the lifecycle; the calls live in :mod:`~rtengine.server._calls`, the
websocket handshakes in :mod:`~rtengine.server._websockets`. :func:`open_local_server` owns a nursery holding the
listener, one task per TCP connection and one per call, and a :class:`~rtengine.adapters._peer.PeerService` for
the answering peers (its own, unless one is passed in). Leaving the block cancels every connection, then closes
every call's peer, shielded and bounded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Final

import trio

from ..adapters._peer import PeerService, open_peer_service
from ..adapters._serving import HttpRequest, Limits, serve_connection
from ..protocol._util import collapse_single_group
from ._calls import CallManager
from ._client_secrets import CLIENT_SECRETS_PATH, ClientSecrets
from ._http import CALLS_PATH, JSON_TYPE, REALTIME_PATH, Reply, authorized, error_body, hangup_target
from ._options import Faults, ServerOptions
from ._record import ServerRecord
from ._scripting import DropMode, Scripting
from ._sip import SipPhone, sip_target
from ._websockets import WebSocketGate

__all__ = ["LocalServer", "open_local_server"]

HANDSHAKE_LIMIT: Final = 64 * 1024


class LocalServer:
    """A running local realtime server. Get one from :func:`open_local_server` (or ``rtengine serve``).

    ``base_url`` is ``http://HOST:PORT/v1`` (``https://`` with ``ServerOptions(tls=…)``); ``record`` holds what
    the server saw; ``faults`` can be swapped at any time with :meth:`set_faults`.
    """

    def __init__(self, options: ServerOptions, peers: PeerService) -> None:
        self.options = options
        self.record = ServerRecord(options.record_limit)
        self._faults = options.faults
        self._peers = peers
        self._calls = CallManager(self.record, options, lambda: self._faults, peers)
        #: The simulated phone network (incoming SIP calls; active with ``ServerOptions.sip_webhook``).
        self.sip = SipPhone(self.record, options, lambda: self._faults, self._calls)
        self._secrets = ClientSecrets()
        self._scripting = Scripting(self.record, self._calls)
        self._websockets = WebSocketGate(
            self.record, options, lambda: self._faults, self._calls, self._secrets, self._scripting
        )
        self.port = 0
        self.host = options.host
        #: TCP connections being served now (``max_connections`` caps it).
        self.connections = 0

    def __repr__(self) -> str:
        return f"<LocalServer {self.base_url} calls={len(self._calls.calls)}>"

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.options.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}/v1"

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Replace the fault settings; counters such as ``refuse_sideband_joins`` start again from zero."""
        self._faults = faults
        self._websockets.reset_counters()

    @property
    def open_calls(self) -> list[str]:
        """Ids of the live calls (a call ends on hang-up, when its media peer goes, or at the session cap)."""
        return list(self._calls.calls)

    @property
    def peers(self) -> PeerService:
        return self._peers

    # --- lifecycle -------------------------------------------------------------------------------------------

    async def end_call(self, call_id: str) -> bool:
        """End a call: cancel its sidebands and close its peer (recorded as ``end_call``). False if the call is
        unknown or already ended."""
        return await self._calls.end(call_id, "end_call")

    # --- scripting a live conversation (tests) ----------------------------------------------------------------

    async def send_event(
        self, event: dict[str, Any], *, call_id: str | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        """Send a server event (a dict with ``type``; an ``event_id`` is added when missing) into a live
        conversation — the call ``call_id``, the conversation whose ``session.created`` showed ``session_id`` (how a
        direct websocket conversation is named), or the only live conversation — on every view (sidebands, the
        call's data channel, a direct websocket); return it as sent. ``LookupError`` when there is no such
        conversation (or, naming none, none or several). Cancellation: some views may have got it, others not."""
        return await self._scripting.send_event(event, call_id, session_id)

    async def drop_sideband(
        self,
        call_id: str | None = None,
        *,
        session_id: str | None = None,
        code: int = 1011,
        reason: str = "",
        mode: DropMode = "close",
    ) -> int:
        """End the sidebands attached to a call now, the call living on: a CLOSE ``code`` with ``reason``
        (``mode="close"``), a TCP reset (``"reset"``) or a TCP close without a close frame (``"eof"``). Returns how
        many were dropped. A direct websocket conversation (named by ``session_id``, or the only live one) has its
        websocket dropped the same way. Cancellation: those dropped stay dropped."""
        return await self._scripting.drop_sideband(call_id, session_id=session_id, code=code, reason=reason, mode=mode)

    def delay_next_join(self, seconds: float) -> None:
        """Hold the next sideband handshake ``seconds`` before accepting it (each call queues one more delay, used
        by the following joins in order); it takes precedence over ``Faults.sideband_accept_delay``."""
        if not seconds >= 0:
            raise ValueError("seconds must be >= 0")
        self._scripting.join_delays.append(seconds)

    async def aclose_calls(self) -> None:
        await self._calls.end_all()

    def _start(self, nursery: trio.Nursery) -> None:
        self._calls.nursery = nursery
        self.sip.nursery = nursery
        if self.options.webhook_secret is not None:
            nursery.start_soon(self.sip.run)

    # --- connections -----------------------------------------------------------------------------------------

    async def respond(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        """Answer one HTTP request in-process, exactly as over a socket: ``(status, headers, body)``.

        For transports that are not TCP (e.g. an ``httpx.MockTransport`` in tests run on a virtual clock).
        """
        request = HttpRequest(method, target, {k.lower(): v for k, v in headers.items()}, b"", body)
        if len(body) > self.options.max_body_bytes:
            message = f"Request body exceeds {self.options.max_body_bytes} bytes."
            return 413, [JSON_TYPE], error_body(message, "body_too_large")
        return await self._route(request)

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Serve one TCP connection (HTTP keep-alive, or one websocket). Never raises. Beyond ``max_connections``
        open at once, the connection's request is answered 503 and it is closed."""
        options = self.options
        limits = Limits(
            max_body=options.max_body_bytes,
            header_timeout=options.header_timeout,
            body_timeout=options.body_timeout,
            max_head=HANDSHAKE_LIMIT,
            refuse=self.connections >= options.max_connections,
        )
        self.connections += 1
        try:
            await serve_connection(
                stream, route=self._route, websocket=self._websockets.serve, limits=limits, error_body=error_body
            )
        finally:
            self.connections -= 1

    async def _route(self, request: HttpRequest) -> Reply:
        """Every method gets an answer: a route's own method, 405 (with ``Allow``) for another method on a known
        path, 404 elsewhere. A HEAD is answered like a GET, without the body."""
        path = request.path.rstrip("/")
        allowed = authorized(self.options.api_key, request.headers) or self._secrets.accepts(request.headers)
        call_id = hangup_target(path)
        if path == CLIENT_SECRETS_PATH:
            if request.method != "POST":
                message = f"Method {request.method[:20]} not allowed; use POST."
                return 405, [JSON_TYPE, ("allow", "POST")], error_body(message, "method_not_allowed")
            if not authorized(self.options.api_key, request.headers):  # an ephemeral key cannot mint another
                return 401, [JSON_TYPE], error_body("Incorrect API key provided.", "invalid_api_key")
            return self._secrets.mint(request)
        if path == REALTIME_PATH:
            message = "The realtime endpoint takes websocket upgrades (GET with Upgrade: websocket)."
            return 405, [JSON_TYPE, ("allow", "GET")], error_body(message, "method_not_allowed")
        sip = sip_target(path) if call_id is None else None
        if path != CALLS_PATH and call_id is None and sip is None:
            message = f"No route for {request.method[:20]} {request.path[:200]}."
            return 404, [JSON_TYPE], error_body(message, "not_found")
        if request.method != "POST":
            message = f"Method {request.method[:20]} not allowed; use POST."
            return 405, [JSON_TYPE, ("allow", "POST")], error_body(message, "method_not_allowed")
        if call_id is None and sip is None:
            return await self._calls.create(request, authorized=allowed)
        if not allowed:
            return 401, [JSON_TYPE], error_body("Incorrect API key provided.", "invalid_api_key")
        if sip is not None:
            return await self.sip.control(sip[1], sip[0], request)
        assert call_id is not None
        return await self._calls.hang_up(call_id)


@asynccontextmanager
async def open_local_server(
    options: ServerOptions | None = None, *, peers: PeerService | None = None
) -> AsyncIterator[LocalServer]:
    """Run a local realtime server for the duration of the block and yield it (``server.base_url``).

    ``peers`` shares an already open :class:`PeerService` (one trio-asyncio loop per process); by default the
    server opens its own. Cancellation: leaving the block — normally, by exception or by cancellation — closes
    the listener and every connection, then every call's peer (shielded, bounded).
    """
    options = options or ServerOptions()
    with collapse_single_group():
        async with _serving(options, peers) as server:
            yield server


@asynccontextmanager
async def _serving(options: ServerOptions, peers: PeerService | None) -> AsyncIterator[LocalServer]:
    async with AsyncExitStack() as stack:
        if peers is None:
            peers = await stack.enter_async_context(open_peer_service(loopback=options.loopback))
        server = LocalServer(options, peers)
        tcp_listeners = await trio.open_tcp_listeners(options.port, host=options.host)
        server.port = tcp_listeners[0].socket.getsockname()[1]
        listeners: list[trio.abc.Listener[trio.abc.Stream]] = list(tcp_listeners)
        if options.tls is not None:
            listeners = [trio.SSLListener(tcp, options.tls, https_compatible=True) for tcp in tcp_listeners]
        try:
            async with trio.open_nursery() as nursery:
                server._start(nursery)
                nursery.start_soon(trio.serve_listeners, server.handle, listeners)
                try:
                    yield server
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await server.aclose_calls()
