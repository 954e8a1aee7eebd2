"""``RealtimeClient``: the provider endpoint, the credentials and the pooled resources shared by conversations.

It owns one ``httpx.AsyncClient`` and one ``SSLContext`` (built once, on first use — never per call) and the
settings every conversation uses: retries, timeouts, extra headers. The API key is never shown in its repr.
"""

from __future__ import annotations

import logging
import os
import random
import ssl
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from types import MappingProxyType, TracebackType
from typing import Final, Self

import httpx
import trio

from .adapters._http import HttpCalls
from .adapters._http_direct import pooled_client
from .adapters._http_sip import HttpCallControl
from .adapters._ws import DEFAULT_MAX_MESSAGE_SIZE, StreamOpener, WebSocketOpener
from .protocol._backoff import DEFAULT_BACKOFF_BASE, DEFAULT_RETRIES
from .protocol._calls import CallAnswer, CallBody
from .protocol._errors import ConfigError
from .protocol._headers import bearer, check_headers, merge_request_headers
from .protocol._reattach import DEFAULT_REJOIN_ATTEMPTS, DEFAULT_REJOIN_DEADLINE
from .protocol._secrets import redact_url
from .protocol._session import SessionConfig
from .protocol._sip import refer_body, reject_body
from .protocol._text import check_text
from .protocol._urls import calls_url, realtime_ws_url

__all__ = ["DEFAULT_BASE_URL", "RealtimeClient"]

log = logging.getLogger("rtengine")

#: The OpenAI API.
DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"
_USER_AGENT: Final = "rtengine/0.1"
#: Concurrent call-creation POSTs per client, kept below the pool size (encode/httpcore#1093).
_MAX_CONCURRENT_CALLS: Final = 8


class RealtimeClient:
    """Where and how to reach a Realtime API. Use as ``async with RealtimeClient(...) as client``.

    ``base_url=None`` reads ``$OPENAI_BASE_URL``, else ``https://api.openai.com/v1`` (as the ``openai`` package
    does). ``api_key=None`` reads ``$OPENAI_API_KEY`` (a missing key fails when a conversation starts, with
    :class:`~rtengine.ConfigError`). ``realtime_base_url`` routes websockets elsewhere than call creation.
    ``http_client`` reuses the caller's ``httpx.AsyncClient`` (the caller then owns it; it should not follow
    redirects). ``sideband_retries``/``call_retries`` are retries after the first attempt (0..100).
    ``max_message_size`` caps server frames (larger ones end the conversation with an error, code 1009).
    ``ssl_context`` replaces the default TLS context (the system's CA bundle) for both HTTPS and WSS: a private CA,
    a proxy that re-signs, client certificates.
    ``call_timeout`` bounds one call creation as a whole (every attempt and retry wait).
    ``extra_headers`` go on every request; a name that is not an HTTP token, or a value with a control, a line
    break or a non-ASCII character, raises :class:`~rtengine.ConfigError` here (never showing the value), as does
    a base URL with a lone surrogate.
    ``sideband_rejoin_attempts``/``sideband_rejoin_deadline``: when a WebRTC call's sideband is lost abnormally while
    the call lives, it is joined again — at most this many attempts (0..100; 0 turns re-attach off), all within
    this many seconds of the loss (``SidebandLost``/``SidebandRestored`` events; see ``rtengine.engine._rejoin``).
    ``open_stream(host, port)`` replaces ``trio.open_tcp_stream`` for websockets (in-memory tests, proxies).
    Proxies: without ``open_stream``, websockets (a conversation's, a call's sideband) follow the environment's proxy
    settings as httpx does for call creation — ``HTTPS_PROXY`` (``wss://``), ``HTTP_PROXY`` (``ws://``),
    ``ALL_PROXY``, and ``NO_PROXY`` — through an HTTP ``CONNECT`` tunnel (``http://`` proxies only).
    ``trust_env`` says whether websockets, and the HTTP client rtengine creates, follow those settings (``False``:
    always direct); left ``None``, a given ``http_client``'s own ``trust_env`` decides for websockets too, so
    both take the same route (otherwise they do, unless ``open_stream`` is given).
    ``http_transport`` replaces the connection pool of the HTTP client rtengine creates (an in-memory app, a custom
    transport; as httpx's ``transport=``, the environment's proxies then do not apply to it).
    ``aclose()`` closes the HTTP client rtengine created.

    Used as ``async with``, the client owns a nursery in which the websocket close handshakes of ended
    conversations finish: a conversation waits for its socket's close at most 50 ms (a healthy server's reply is
    in by then), and a server that never answers CLOSE holds it no longer — the handshake goes on in the client's
    nursery, bounded by ``close_timeout``. Leaving the client's block waits for those closes (at most
    ``close_timeout``), so no task and no socket outlives the client. Without ``async with`` (only ``aclose()``),
    each close runs inline, bounded by ``close_timeout``.

    Cancellation: leaving the block is shielded and bounded by ``close_timeout`` (the pending closes) plus the HTTP
    client's close.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        realtime_base_url: str | None = None,
        sideband_retries: int = DEFAULT_RETRIES,
        call_retries: int = DEFAULT_RETRIES,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        connect_timeout: float = 10.0,
        close_timeout: float = 1.0,
        http_client: httpx.AsyncClient | None = None,
        extra_headers: Mapping[str, str] | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        open_stream: StreamOpener | None = None,
        rand: Callable[[], float] = random.random,
        ssl_context: ssl.SSLContext | None = None,
        call_timeout: float = 15.0,
        sideband_rejoin_attempts: int = DEFAULT_REJOIN_ATTEMPTS,
        sideband_rejoin_deadline: float = DEFAULT_REJOIN_DEADLINE,
        trust_env: bool | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        for name, value in (
            ("sideband_retries", sideband_retries),
            ("call_retries", call_retries),
            ("sideband_rejoin_attempts", sideband_rejoin_attempts),
        ):
            if not 0 <= value <= 100:
                raise ConfigError(f"{name} must be within 0..100, got {value}")
        if connect_timeout <= 0 or close_timeout <= 0 or call_timeout <= 0 or backoff_base < 0:
            raise ConfigError("connect_timeout, close_timeout and call_timeout must be > 0 and backoff_base >= 0")
        if not sideband_rejoin_deadline > 0:
            raise ConfigError(f"sideband_rejoin_deadline must be > 0, got {sideband_rejoin_deadline}")
        base_url = check_text(base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL, "base_url")
        if realtime_base_url is not None:
            check_text(realtime_base_url, "realtime_base_url")
        self.base_url = base_url.rstrip("/") if base_url.endswith("/v1/") else base_url
        self.realtime_base_url = realtime_base_url or self.base_url
        self.calls_url = calls_url(self.base_url)
        realtime_ws_url(self.realtime_base_url, model=None)  # validate the websocket base now
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.sideband_retries = sideband_retries
        self.sideband_rejoin_attempts = sideband_rejoin_attempts
        self.sideband_rejoin_deadline = sideband_rejoin_deadline
        self.call_retries = call_retries
        self.backoff_base = backoff_base
        self.connect_timeout = connect_timeout
        self.close_timeout = close_timeout
        self.extra_headers: Mapping[str, str] = MappingProxyType(dict(extra_headers or {}))
        check_headers(self.extra_headers, "extra_headers")
        self.rand = rand
        self.max_message_size = max_message_size
        self.open_stream = open_stream
        if http_client is not None and http_transport is not None:
            raise ConfigError("pass either http_client or http_transport (for the client rtengine builds), not both")
        self._http = http_client
        self._owns_http = http_client is None
        self._http_transport = http_transport
        #: The transport every request of the client rtengine built goes to (None: unknown; see _http_direct).
        self._pool: httpx.AsyncBaseTransport | None = None
        self._trust_env = trust_env
        if trust_env is None and http_client is not None:
            trust_env = http_client.trust_env  # websockets take the route the caller's client takes
        self._ssl: ssl.SSLContext | None = ssl_context
        self._closed = False
        self._headers: Mapping[str, str] | None = None
        self._session_json: tuple[SessionConfig, str, bytes] | None = None
        self.call_limiter = trio.CapacityLimiter(_MAX_CONCURRENT_CALLS)
        #: Where ended sockets finish their close handshake (while the client is entered).
        self._closers: trio.Nursery | None = None
        self._closers_cm: AbstractAsyncContextManager[trio.Nursery] | None = None
        self._entered = 0
        #: The call seam (creation, hang-up) and the socket seam the engine uses.
        self.calls = _Calls(
            self,
            HttpCalls(
                self.http,
                self.calls_url,
                retries=call_retries,
                backoff_base=backoff_base,
                rand=rand,
                timeout=call_timeout,
                hangup_timeout=close_timeout + 1.0,
                transport=lambda: self._pool,
            ),
        )
        self.sockets = WebSocketOpener(
            connect_timeout=connect_timeout,
            close_timeout=close_timeout,
            ssl_context=lambda: self.ssl_context,
            max_message_size=max_message_size,
            open_stream=open_stream,
            hand_off=self._close_in_background,
            trust_env=trust_env,
        )

    def __repr__(self) -> str:
        key = "set" if self._api_key else "missing"
        return f"<RealtimeClient {redact_url(self.base_url)} api_key={key}>"

    async def __aenter__(self) -> Self:
        self._entered += 1
        if self._entered == 1:  # the outermost block owns the nursery (a nested one only closes the client)
            manager = trio.open_nursery()
            self._closers = await manager.__aenter__()
            self._closers_cm = manager
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._entered -= 1
        manager, nursery = (self._closers_cm, self._closers) if self._entered == 0 else (None, None)
        if self._entered == 0:
            self._closers_cm = self._closers = None
        try:
            if manager is not None and nursery is not None:
                # The closes handed over are each bounded by close_timeout and never raise: waiting for them is
                # shielded (the nursery's own scope), and the block's own exception is not given to the nursery
                # (it propagates unchanged, never wrapped in a group).
                nursery.cancel_scope.shield = True
                await manager.__aexit__(None, None, None)
        finally:
            await self.aclose()

    def _close_in_background(self, finish: Callable[[], Awaitable[None]], url: str) -> trio.Event | None:
        """The socket seam's hand-off: run an ended socket's exit in the client's nursery; the event is set once it
        has finished. None when the client is not entered, or is being left: the exit then runs inline."""
        nursery = self._closers
        if nursery is None:
            return None
        done = trio.Event()

        async def close() -> None:
            try:
                await finish()
            finally:
                done.set()

        nursery.start_soon(close, name=f"rtengine.RealtimeClient close handshake {url}")
        return done

    async def aclose(self) -> None:
        """Close the HTTP client rtengine created (not one passed in). Idempotent.

        Cancellation: the close is shielded, so the pool never leaks.
        """
        self._closed = True
        if self._http is not None and self._owns_http:
            http, self._http, self._pool = self._http, None, None
            with trio.CancelScope(shield=True):
                await http.aclose()

    @property
    def uses_tls(self) -> bool:
        """True when either endpoint is https/wss."""
        return any(url.split(":", 1)[0].lower() in ("https", "wss") for url in (self.base_url, self.realtime_base_url))

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The one TLS context (CA bundle loaded once, ≈20 ms), shared by HTTP and websockets: the one passed as
        ``ssl_context``, else built on first use.

        For plain-http endpoints no CA bundle is loaded: the context verifies against no authority, so a TLS
        connection (which rtengine never makes there: redirects are not followed) would fail closed.
        """
        if self._ssl is None:
            if self.uses_tls:
                self._ssl = ssl.create_default_context()
            else:
                self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        return self._ssl

    def http(self) -> httpx.AsyncClient:
        """The pooled HTTP client, created on first use (no redirects, keep-alive 30 s)."""
        if self._closed:
            raise ConfigError("this RealtimeClient is closed")
        if self._http is None:
            self._http, self._pool = pooled_client(
                verify=self.ssl_context,
                timeout=httpx.Timeout(self.connect_timeout, read=30.0),
                limits=httpx.Limits(max_connections=_MAX_CONCURRENT_CALLS * 2, keepalive_expiry=30.0),
                headers={"user-agent": _USER_AGENT},
                trust_env=self._trust_env is not False,
                transport=self._http_transport,
            )
        return self._http

    def session_json(self, session: SessionConfig) -> str:
        """``session.call_session_json()``, remembered for the last session used (configs are immutable)."""
        return self._session_rendered(session)[1]

    def _session_rendered(self, session: SessionConfig) -> tuple[SessionConfig, str, bytes]:
        """The last session used, its JSON and that JSON's UTF-8 bytes (a SIP accept's body), each made once."""
        cached = self._session_json
        if cached is not None and cached[0] is session:
            return cached
        rendered = session.call_session_json()
        cached = self._session_json = (session, rendered, rendered.encode("utf-8"))
        return cached

    def auth_headers(self) -> Mapping[str, str]:
        """Bearer auth plus the extra headers, merged by HTTP precedence (computed once; read-only).

        Raises :class:`~rtengine.ConfigError` when no API key is known.
        """
        if not self._api_key:
            raise ConfigError("realtime conversation requires API key auth (pass api_key or set OPENAI_API_KEY)")
        if self._headers is None:
            merged = merge_request_headers(
                self.extra_headers, bearer(self._api_key), defaults={"user-agent": _USER_AGENT}
            )
            self._headers = MappingProxyType(merged)
        return self._headers

    async def warm_up(self) -> None:
        """One cheap request to the provider, so the next call creation finds a warm connection. Never raises."""
        url = self.calls_url.rsplit("/realtime/calls", 1)[0] + "/models"
        try:
            await self.http().get(url, headers=dict(self.auth_headers()))
        except (httpx.HTTPError, ConfigError) as exc:  # a warm-up that fails costs nothing but the next handshake
            log.debug("connection warm-up failed: %s", exc)


class _Calls:
    """``client.calls``: the Calls API behind the client's concurrency limit — the engine's call seam (creation,
    accept, refer, hang-up) and the public ``accept`` / ``reject`` / ``refer`` / ``hangup`` of SIP calls.

    Each raises :class:`~rtengine.InvalidCallId` (before any request) for an id that must not enter a URL,
    :class:`~rtengine.CallNotFound` (404 ``call_id_not_found``: unknown, or already ended),
    :class:`~rtengine.CallRejected` (any other non-2xx: ``.status``, ``.body``) or :class:`~rtengine.ConnectFailed`
    (network, timeout). ``hangup`` and ``reject`` are retried after a 5xx or a transport error (ending a call is
    idempotent); ``accept`` and ``refer`` only when no connection could be made (see :mod:`rtengine.protocol._sip`).
    ``headers`` defaults to the client's auth headers.
    """

    def __init__(self, client: RealtimeClient, calls: HttpCalls) -> None:
        self._client = client
        self._limiter = client.call_limiter
        self._calls = calls
        self._control = HttpCallControl(calls)

    def __repr__(self) -> str:
        return f"<calls {self._calls.calls_url}>"

    async def create(
        self, body: CallBody, headers: Mapping[str, str], *, on_sent: Callable[[], None] | None = None
    ) -> CallAnswer:
        limiter = self._limiter
        try:
            limiter.acquire_nowait()  # no scheduler round trip on the answer path unless at capacity
        except trio.WouldBlock:
            await limiter.acquire()
        try:
            return await self._calls.create(body, headers, on_sent=on_sent)
        finally:
            limiter.release()

    async def accept(
        self,
        call_id: str,
        session: SessionConfig,
        headers: Mapping[str, str] | None = None,
        *,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        """Accept an incoming SIP call with ``session`` (``POST …/{call_id}/accept``, the session as JSON).
        ``on_sent`` runs at most once, when the request body is on the wire."""
        body = self._client._session_rendered(session)[2]
        limiter = self._limiter
        try:
            limiter.acquire_nowait()
        except trio.WouldBlock:
            await limiter.acquire()
        try:
            await self._control.send("accept", call_id, body, self._headers(headers), on_sent=on_sent)
        finally:
            limiter.release()

    async def reject(self, call_id: str, status_code: int | None = None) -> None:
        """Decline an incoming SIP call (``…/reject``); ``status_code`` is the SIP code (the API's default: 603)."""
        await self._control.send("reject", call_id, reject_body(status_code), self._headers(None))

    async def refer(self, call_id: str, target_uri: str, headers: Mapping[str, str] | None = None) -> None:
        """Transfer a SIP call to ``target_uri`` (``tel:…``, ``sip:…``; ``…/refer``)."""
        await self._control.send("refer", call_id, refer_body(target_uri), self._headers(headers))

    async def hangup(self, call_id: str, headers: Mapping[str, str] | None = None) -> None:
        """End a call (``…/hangup``, empty body)."""
        await self._calls.hangup(call_id, self._headers(headers))

    def _headers(self, headers: Mapping[str, str] | None) -> Mapping[str, str]:
        return self._client.auth_headers() if headers is None else headers
