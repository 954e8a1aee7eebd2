"""The local realtime server: one trio listener for HTTP (call creation) and websockets (realtime, sideband).

Routes (the base URL is ``http://HOST:PORT/v1``):

* ``POST /v1/realtime/calls`` — multipart (``sdp`` + optional ``session``) or raw ``application/sdp``; answers
  ``201`` with a real aiortc SDP answer, ``Content-Type: application/sdp`` and
  ``Location: /v1/realtime/calls/rtc_…``; malformed input → 400 with a JSON error.
* ``POST /v1/realtime/calls/{call_id}/hangup`` — ends a call (closes its peer and sidebands).
* websocket ``/v1/realtime?model=…`` — a direct conversation; ``/v1/realtime?call_id=rtc_…`` — the sideband of
  a known call (unknown id → 404; a ``model`` beside ``call_id`` → 400).
* A call has one conversation (:class:`~rtengine.server._realtime.RealtimeSession`); its ``oai-events`` data
  channel and every sideband that joins are views of it. The call ends when its last sideband leaves.

Structure: :func:`open_local_server` owns a nursery holding the listener and one task per TCP connection,
and a :class:`~rtengine._peer.PeerService` for the answering peers (its own, unless one is passed in).
Leaving the block cancels every connection, then closes every call's peer, shielded and bounded.
"""

from __future__ import annotations

import email.parser
import email.policy
import hmac
import json
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Final
from urllib.parse import parse_qsl

import h11
import trio

from ..adapters._peer import PcmTrack, PeerService, open_peer_service
from ..adapters._serving import HttpRequest, WebSocket, serve_connection
from ..protocol._audio import tone
from ..protocol._calls import check_sdp, validate_call_id
from ..protocol._errors import InvalidCallId, InvalidSdp
from ..protocol._session import DEFAULT_MODEL
from ..protocol._util import collapse_single_group
from ._options import Faults, ServerOptions
from ._realtime import Call, RealtimeSession, error_event, new_id
from ._record import CallRecord, ConnectionRecord, ServerRecord

__all__ = ["LocalServer", "open_local_server"]

log = logging.getLogger("rtengine.server")

CALLS_PATH: Final = "/v1/realtime/calls"
REALTIME_PATH: Final = "/v1/realtime"
HANDSHAKE_LIMIT: Final = 64 * 1024
#: Received call audio kept in the record for assertions (10 s of PCM16 mono 24 kHz).
MAX_RECORDED_AUDIO: Final = 10 * 24000 * 2


class _BadRequest(Exception):
    def __init__(self, status: int, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _error_body(message: str, code: str | None, type: str = "invalid_request_error") -> bytes:
    return json.dumps({"error": {"message": message, "type": type, "code": code, "param": None}}).encode()


def _parse_call_body(request: HttpRequest) -> tuple[str, dict[str, Any] | None, list[str], list[str]]:
    """``(sdp, session, part names, part content types)`` of a call-creation body, or :class:`_BadRequest`."""
    content_type = request.headers.get("content-type", "")
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/sdp":
        try:
            return request.body.decode("utf-8"), None, [], []
        except UnicodeDecodeError as exc:
            raise _BadRequest(400, "The SDP offer is not valid UTF-8.") from exc
    if mime != "multipart/form-data":
        raise _BadRequest(
            400, f"Unsupported Content-Type {mime or '(none)'!r}; send multipart/form-data or application/sdp."
        )
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    if not message.is_multipart() or message.defects:
        raise _BadRequest(400, "Malformed multipart body.")
    sdp: str | None = None
    session: dict[str, Any] | None = None
    names: list[str] = []
    types: list[str] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise _BadRequest(400, "A multipart part has no form-field name.")
        names.append(name)
        types.append(part.get_content_type())
        payload = part.get_payload(decode=True)
        raw = payload if isinstance(payload, bytes) else b""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _BadRequest(400, f"The {name!r} part is not valid UTF-8.") from exc
        if name == "sdp":
            sdp = text
        elif name == "session":
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise _BadRequest(400, f"The 'session' part is not valid JSON: {exc}") from exc
            if not isinstance(value, dict):
                raise _BadRequest(400, "The 'session' part must be a JSON object.")
            if "id" in value:
                raise _BadRequest(400, "Unknown parameter: 'session.id'.", "unknown_parameter")
            session = value
    if sdp is None:
        raise _BadRequest(400, "Missing required part 'sdp'.", "missing_required_parameter")
    return sdp, session, names, types


class LocalServer:
    """A running local realtime server. Get one from :func:`open_local_server` (or ``rtengine serve``).

    ``base_url`` is ``http://HOST:PORT/v1`` (``https://`` with ``ServerOptions(tls=…)``); ``record`` holds what
    the server saw; ``faults`` can be swapped
    at any time with :meth:`set_faults`.
    """

    def __init__(self, options: ServerOptions, peers: PeerService) -> None:
        self.options = options
        self.record = ServerRecord()
        self._faults = options.faults
        self._peers = peers
        self._calls: dict[str, Call] = {}
        self._sideband_attempts = 0
        self.port = 0
        self.host = options.host
        self._nursery: trio.Nursery | None = None

    def __repr__(self) -> str:
        return f"<LocalServer {self.base_url} calls={len(self._calls)}>"

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
        self._sideband_attempts = 0

    @property
    def open_calls(self) -> list[str]:
        """Ids of calls whose answering peer is still open."""
        return list(self._calls)

    @property
    def peers(self) -> PeerService:
        return self._peers

    # --- lifecycle -------------------------------------------------------------------------------------------

    async def end_call(self, call_id: str) -> bool:
        """End a call: cancel its sidebands and close its peer. False if the call is unknown or already ended."""
        call = self._calls.pop(call_id, None)
        if call is None:
            return False
        call.ended = True
        call.scope.cancel()
        call.conversation.drop_all("call_ended")
        await call.peer.aclose()
        self.record.changed()
        return True

    async def _call_media(self, call: Call, record: CallRecord) -> None:
        """The call, in the server's nursery until it ends: its conversation (served on the data channel and on
        every sideband that joins), the received audio (recorded, echoed back with ``echo``), and a greeting tone
        once the peer connection is up."""

        def received(pcm: bytes) -> None:
            record.audio_frames_in += 1
            if len(record.audio_in) < MAX_RECORDED_AUDIO:
                record.audio_in += pcm
            if self.options.echo:
                call.source.push(pcm)

        with call.scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(call.conversation.run)
                nursery.start_soon(call.peer.receive_audio, received)
                nursery.start_soon(self._serve_data_channel, call, record)
                await call.peer.connected.wait()
                record.connected = True
                self.record.changed()
                if self.options.greeting_ms:
                    call.source.push(tone(660.0, self.options.greeting_ms))

    async def _serve_data_channel(self, call: Call, record: CallRecord) -> None:
        """The call's ``oai-events`` data channel is a view of its conversation, like a sideband: it gets
        ``session.created`` when it opens, then every server event; its client events go into the conversation.
        A binary message, or one beyond the conversation's inbox, gets an ``error`` event: never dropped silently."""
        await call.peer.channel_open.wait()
        call.conversation.greet_data_channel()
        async for message in call.peer.messages:
            self.record.data_frame_in(record, message)
            if isinstance(message, bytes):
                reply = error_event("Binary messages are not supported; send JSON text.", code="invalid_json")
            elif call.conversation.deliver(message):
                continue
            else:
                reply = error_event("rtengine local server: too many client events at once.", code="rate_limited")
            record.data_frames_refused += 1
            self.record.changed()
            call.peer.send_data(json.dumps({**reply, "event_id": new_id("event")}, separators=(",", ":")))

    async def aclose_calls(self) -> None:
        for call_id in list(self._calls):
            await self.end_call(call_id)

    # --- connections -----------------------------------------------------------------------------------------

    async def respond(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Answer one HTTP request in-process, exactly as over a socket: ``(status, headers, body)``.

        For transports that are not TCP (e.g. an ``httpx.MockTransport`` in tests run on a virtual clock).
        """
        request = HttpRequest(method, target, {k.lower(): v for k, v in headers.items()}, b"", body)
        if len(body) > self.options.max_body_bytes:
            message = f"Request body exceeds {self.options.max_body_bytes} bytes."
            return 413, [("content-type", "application/json")], _error_body(message, "body_too_large")
        return await self._route(request)

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Serve one TCP connection (HTTP keep-alive, or one websocket). Never raises."""
        await serve_connection(
            stream,
            route=self._route,
            websocket=self._websocket,
            max_body=self.options.max_body_bytes,
            error_body=_error_body,
            max_head=HANDSHAKE_LIMIT,
        )

    def _authorized(self, headers: dict[str, str]) -> bool:
        key = self.options.api_key
        if key is None:
            return True
        return hmac.compare_digest(headers.get("authorization", "").encode(), f"Bearer {key}".encode())

    async def _route(self, request: HttpRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        json_type = [("content-type", "application/json")]
        path = request.path.rstrip("/")
        if path == CALLS_PATH:
            if request.method != "POST":
                return 405, [*json_type, ("allow", "POST")], _error_body("Use POST to create a call.", None)
            return await self._create_call(request)
        if path.startswith(CALLS_PATH + "/") and path.endswith("/hangup") and request.method == "POST":
            if not self._authorized(request.headers):
                return 401, json_type, _error_body("Incorrect API key provided.", "invalid_api_key")
            call_id = path[len(CALLS_PATH) + 1 : -len("/hangup")]
            if await self.end_call(call_id):
                self.record.hangups.append(call_id)
                return 200, json_type, json.dumps({"call_id": call_id, "status": "ended"}).encode()
            return 404, json_type, _error_body(f"Call {call_id[:80]!r} not found.", "call_not_found")
        return 404, json_type, _error_body(f"No route for {request.method} {request.path[:200]}.", "not_found")

    async def _create_call(self, request: HttpRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        json_type = [("content-type", "application/json")]
        record = CallRecord(request.path, request.query, dict(request.headers), request.headers.get("content-type", ""))
        self.record.calls.append(record)
        try:
            if not self._authorized(request.headers):
                raise _BadRequest(401, "Incorrect API key provided.", "invalid_api_key")
            sdp, session, record.part_names, record.part_types = _parse_call_body(request)
            record.sdp, record.session = sdp, session
            try:
                check_sdp(sdp, what="The SDP offer")
            except InvalidSdp as exc:
                raise _BadRequest(400, str(exc), "invalid_offer") from exc
            faults = self._faults
            if faults.call_delay:
                await trio.sleep(faults.call_delay)
            if faults.call_status is not None:
                raise _BadRequest(faults.call_status, "Injected failure (rtengine local server).", "injected")
            source = PcmTrack()
            try:
                peer = await self._peers.answer(sdp, source=source)
            except InvalidSdp as exc:
                raise _BadRequest(400, f"The SDP offer was rejected: {exc}", "invalid_offer") from exc
        except _BadRequest as exc:
            record.status, record.error = exc.status, str(exc)
            self.record.changed()
            headers = list(json_type)
            if exc.code == "injected" and self._faults.retry_after is not None:
                headers.append(("retry-after", f"{self._faults.retry_after:g}"))
            return exc.status, headers, _error_body(str(exc), exc.code)
        call_id = new_id("rtc")
        model = session.get("model") if session and isinstance(session.get("model"), str) else DEFAULT_MODEL
        call = Call(call_id, peer, source, str(model), session)
        call.conversation = RealtimeSession(
            self.record, self.options, model=call.model, call=call, faults_getter=lambda: self._faults
        )
        self._calls[call_id] = call
        if self._faults.media_unreachable:
            await peer.aclose()  # the answer stands, but nobody will ever answer ICE checks
        assert self._nursery is not None
        self._nursery.start_soon(self._call_media, call, record)
        record.status, record.call_id = 201, call_id
        self.record.changed()
        headers = [("content-type", "application/sdp"), ("location", f"{CALLS_PATH}/{call_id}")]
        return 201, headers, peer.local_sdp.encode("utf-8")

    async def _websocket(self, stream: trio.abc.Stream, request: HttpRequest) -> None:
        query = dict(parse_qsl(request.query, keep_blank_values=True))
        call_id = query.get("call_id")
        record = ConnectionRecord(
            "sideband" if call_id is not None else "direct", request.path, query, dict(request.headers), call_id
        )
        self.record.connections.append(record)
        self.record.changed()
        ws = WebSocket(stream, request, self.options.max_message_bytes)
        faults = self._faults
        ws.answer_close = not faults.ignore_client_close
        try:
            await self._serve_websocket(ws, record, request, query, faults)
        finally:
            if record.end is None:
                record.end = "server_shutdown"
            self.record.changed()

    async def _reject(self, ws: WebSocket, record: ConnectionRecord, status: int, message: str, code: str) -> None:
        record.status, record.end = status, "rejected"
        await ws.reject(status, _error_body(message, code))

    async def _serve_websocket(
        self, ws: WebSocket, record: ConnectionRecord, request: HttpRequest, query: dict[str, str], faults: Faults
    ) -> None:
        call: Call | None = None
        if request.path.rstrip("/") != REALTIME_PATH:
            return await self._reject(ws, record, 404, f"No websocket route {request.path[:200]}.", "not_found")
        if not self._authorized(request.headers):
            return await self._reject(ws, record, 401, "Incorrect API key provided.", "invalid_api_key")
        if record.call_id is not None:
            if "model" in query:
                return await self._reject(ws, record, 400, "Do not send 'model' with 'call_id'.", "invalid_request")
            try:
                validate_call_id(record.call_id)
            except InvalidCallId:
                return await self._reject(ws, record, 400, "Invalid call_id.", "invalid_call_id")
            call = self._calls.get(record.call_id)
            if call is None:
                return await self._reject(ws, record, 404, f"Call {record.call_id!r} not found.", "call_not_found")
            self._sideband_attempts += 1
            if self._sideband_attempts <= faults.refuse_sideband_joins:
                return await self._reject(ws, record, 503, "Sideband temporarily unavailable (injected).", "injected")
        if faults.websocket_status is not None:
            return await self._reject(ws, record, faults.websocket_status, "Injected rejection.", "injected")
        delay = faults.sideband_accept_delay if call is not None else faults.websocket_accept_delay
        if delay and await self._client_left_during(ws, delay):
            record.end = "handshake_abandoned"
            return None
        await ws.accept()
        record.accepted = True
        record.status = 101
        self.record.changed()
        if call is None:
            model = query.get("model") or DEFAULT_MODEL
            session = RealtimeSession(
                self.record, self.options, model=model, call=None, faults_getter=lambda: self._faults
            )
            await session.serve_alone(ws, record)
            return None
        try:
            await call.conversation.serve(ws, record)
        finally:
            if not call.ended and not call.conversation.links:
                # The last controlling connection left: the call ends with it (keeps peers from piling up).
                await self.end_call(call.call_id)
        return None

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
                server._nursery = nursery
                nursery.start_soon(trio.serve_listeners, server.handle, listeners)
                try:
                    yield server
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await server.aclose_calls()
