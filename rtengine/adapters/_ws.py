"""The websocket adapter: rtengine's own websocket client, wsproto over a trio stream, with no background task.

Theory of operation
-------------------
:class:`WebSocketOpener` opens a byte stream (``trio.open_tcp_stream`` or the injected ``open_stream``), wraps it in
TLS for ``wss://`` and runs the HTTP upgrade with :class:`wsproto.WSConnection` (client side). The whole opening —
TCP, TLS and the upgrade — is bounded by one ``trio.fail_after(connect_timeout)``. Every way an opening can fail
(refused, reset, certificate, timeout, a rejected upgrade, a malformed answer) is a
:class:`~rtengine.ConnectFailed`; ``.status``/``.body`` are set when the server answered the upgrade with an HTTP
status other than 101.

An open :class:`RealtimeSocket` is a sans-IO state machine plus a stream, and nothing else:

* **There is no reader task.** The task that calls :meth:`RealtimeSocket.receive` reads the stream
  (``receive_size`` bytes at a time) and handles every frame already read before it reads again: pings are
  answered, fragments are assembled, a server CLOSE is answered. The bytes are split into frames first
  (:class:`~rtengine.adapters._ws_frames.Splitter`): a whole text frame — an audio delta, the usual frame — is
  decoded there; every other frame goes whole to wsproto, which judges it (so the two never disagree about where a
  frame starts; the opening keeps the bytes after the upgrade's answer from wsproto for the same reason). The
  task that leaves the
  :meth:`WebSocketOpener.open` block runs the close handshake by itself — it sends CLOSE 1000 and reads until the
  server's CLOSE (or EOF), discarding data frames.
* Why: a reader task has to stay alive for a close handshake, since only it can receive the server's CLOSE reply.
  The engine cancels its work scope on close and on outer cancellation; a reader living inside that scope dies
  first, and every close then ran to its timeout. With no background task, whoever closes can finish the
  handshake, inside a cancelled scope too (the exit is shielded).
* Sends (text frames, pongs, close frames) are serialized by one FIFO gate
  (:class:`~rtengine.adapters._ws_frames.Gate`); reads by another. Text frames are rtengine's own
  (:func:`~rtengine.adapters._ws_frames.text_frame`: what wsproto writes, masked with a fresh key); control frames
  are wsproto's. A message costs one schedule point: a free gate is taken without one; the read or write is one.

Cancellation semantics
----------------------
* A cancelled opening closes the stream (shielded) and propagates ``Cancelled``; nothing leaks.
* A cancelled :meth:`~RealtimeSocket.receive` loses nothing: a cancelled ``receive_some`` consumes no bytes, and
  the message being assembled stays in the socket. The socket stays usable.
* A cancelled :meth:`~RealtimeSocket.send` may have left part of a frame on the wire: the socket is then *torn* —
  further sends raise :class:`~rtengine.ConnectionLost` and leaving the block skips the handshake (no CLOSE can
  follow half a frame) and just closes the stream. A send is torn only when it was interrupted after writing may
  have begun: a cancellation that is already pending is taken by ``checkpoint_if_cancelled`` *before* the write,
  so nothing was written and the socket stays whole.
* Leaving the block — normally, by an exception, by cancellation — runs the close handshake shielded and bounded
  by ``close_timeout``, then closes the stream (shielded, within the same deadline). The exit never raises: the
  block's own exception propagates unchanged. With a ``hand_off`` (``RealtimeClient`` used as ``async with``),
  that exit runs in the hand-off owner's nursery instead, and leaving the block waits for it at most
  :data:`CLOSE_GRACE` (a server that never answers CLOSE cannot hold the block longer).

Third-party exceptions (OS, TLS, trio stream errors, wsproto and h11) become rtengine errors in exactly one place,
:func:`~rtengine.adapters._ws_opening._translate`.

Layout: the opening (URL, TCP, TLS, upgrade, ``_translate``) is :mod:`rtengine.adapters._ws_opening`; the open
socket (frames, close handshake) is :mod:`rtengine.adapters._ws_socket`, its per-message hot path (text frames, the
gate) :mod:`rtengine.adapters._ws_frames`; this module holds the opener and keeps every name importable from here.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final

import trio

from ..protocol._errors import ConfigError
from ..protocol._secrets import Scrubber
from ._ws_opening import _REJECT_BODY_CAP as _REJECT_BODY_CAP
from ._ws_opening import _REJECT_TEXT_CAP as _REJECT_TEXT_CAP
from ._ws_opening import SslContextSource as SslContextSource
from ._ws_opening import StreamOpener as StreamOpener
from ._ws_opening import _endpoint as _endpoint
from ._ws_opening import _fail as _fail
from ._ws_opening import _public as _public
from ._ws_opening import _rejected as _rejected
from ._ws_opening import _translate as _translate
from ._ws_opening import open_connection
from ._ws_proxy import environment_proxies
from ._ws_socket import _NO_STATUS as _NO_STATUS
from ._ws_socket import RealtimeSocket as RealtimeSocket
from ._ws_socket import _text_size as _text_size
from ._ws_socket import log as log

__all__ = [
    "CLOSE_GRACE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "CloseHandOff",
    "DEFAULT_RECEIVE_SIZE",
    "RealtimeSocket",
    "StreamOpener",
    "WebSocketOpener",
    "open_socket",
]

#: Largest message accepted from the server (session and item payloads can be large).
DEFAULT_MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024
#: Bytes asked of the stream per read.
DEFAULT_RECEIVE_SIZE: Final = 65536

#: How long leaving an ``open`` block waits for a close handed off (``WebSocketOpener.hand_off``) before it returns
#: and lets the close finish in the background: a healthy server's reply fits in it, so the order of events is the
#: same as with an inline close; a server that never answers holds the block this long, not ``close_timeout``.
CLOSE_GRACE: Final = 0.05

#: Takes over a socket's exit (its close handshake and stream close, bounded by ``close_timeout``, never raising)
#: and starts it in its owner's nursery: an event set once it has finished, or None when the exit must run inline.
#: Synchronous (the ``url`` is for the task's name: no query string).
CloseHandOff = Callable[[Callable[[], Awaitable[None]], str], trio.Event | None]


class WebSocketOpener:
    """Opens realtime websockets (the :class:`~rtengine.engine._seams.SocketOpener` seam).

    ``connect_timeout`` bounds the whole opening (TCP, TLS, upgrade); ``close_timeout`` the whole exit (close
    handshake and closing the stream). ``ssl_context`` is used for ``wss://`` only: a context, or a function that
    returns one (called when first needed); ``None`` builds the system's default context once per opener.
    ``max_message_size`` caps a server message (a larger one ends the socket with 1009). ``open_stream(host,
    port)`` replaces ``trio.open_tcp_stream`` (in-memory tests, proxies). ``receive_size`` is the read size.
    ``trust_env`` (default: when no ``open_stream`` is given) applies the environment's proxy settings as httpx
    does for call creation: ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and ``NO_PROXY``, read once, here
    (:mod:`~rtengine.adapters._ws_proxy`).
    ``hand_off``: when set, leaving an ``open`` block hands the exit (close handshake, stream close) to it and
    waits for it at most :data:`CLOSE_GRACE`; the rest finishes in the hand-off's owner (``RealtimeClient`` runs it
    in its own nursery). When it declines (returns None), or without one, the exit runs inline.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        close_timeout: float = 1.0,
        ssl_context: SslContextSource = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        open_stream: StreamOpener | None = None,
        receive_size: int = DEFAULT_RECEIVE_SIZE,
        trust_env: bool | None = None,
        hand_off: CloseHandOff | None = None,
    ) -> None:
        if connect_timeout <= 0 or close_timeout <= 0:
            raise ConfigError("connect_timeout and close_timeout must be > 0")
        if max_message_size <= 0 or receive_size <= 0:
            raise ConfigError("max_message_size and receive_size must be > 0")
        self.connect_timeout = connect_timeout
        self.close_timeout = close_timeout
        self.max_message_size = max_message_size
        self.receive_size = receive_size
        self.hand_off = hand_off
        self._ssl_source = ssl_context
        self._ssl: ssl.SSLContext | None = ssl_context if isinstance(ssl_context, ssl.SSLContext) else None
        self._open_stream: StreamOpener = open_stream or trio.open_tcp_stream
        self._proxies = environment_proxies() if (open_stream is None if trust_env is None else trust_env) else {}

    def __repr__(self) -> str:
        return f"<WebSocketOpener connect_timeout={self.connect_timeout:g} close_timeout={self.close_timeout:g}>"

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            source = self._ssl_source
            self._ssl = source() if callable(source) else ssl.create_default_context()
        return self._ssl

    def open(self, url: str, headers: Mapping[str, str]) -> AbstractAsyncContextManager[RealtimeSocket]:
        """A block holding an open socket to ``url``, sending ``headers`` with the upgrade.

        Entering raises :class:`~rtengine.ConnectFailed` (``.status``/``.body`` for a rejected upgrade) or
        :class:`~rtengine.ConfigError` for a URL that is not ``ws://``/``wss://``. Leaving runs the close
        handshake (see the module docstring), or hands it to ``hand_off`` and returns at once. Cancellation: a
        cancelled opening closes the stream and propagates ``Cancelled``.
        """
        return self._open(url, headers)

    @asynccontextmanager
    async def _open(self, url: str, headers: Mapping[str, str]) -> AsyncIterator[RealtimeSocket]:
        sock = await self._connect(url, headers)
        try:
            yield sock
        finally:
            hand_off = self.hand_off
            done = hand_off(sock._finish, _public(url)) if hand_off is not None else None
            if done is None:
                await sock._finish()
            else:
                with trio.CancelScope(deadline=trio.current_time() + CLOSE_GRACE, shield=True):
                    await done.wait()

    async def _connect(self, url: str, headers: Mapping[str, str]) -> RealtimeSocket:
        stream, ws, leftover = await open_connection(
            url,
            headers,
            open_stream=self._open_stream,
            ssl_context=self._ssl_context,
            connect_timeout=self.connect_timeout,
            receive_size=self.receive_size,
            proxies=self._proxies,
        )
        return RealtimeSocket(
            stream,
            ws,
            url,
            close_timeout=self.close_timeout,
            max_message_size=self.max_message_size,
            receive_size=self.receive_size,
            scrub=Scrubber.of(headers, (url,)),
            leftover=leftover,
        )


@asynccontextmanager
async def open_socket(
    url: str,
    headers: Mapping[str, str],
    *,
    connect_timeout: float = 10.0,
    close_timeout: float = 1.0,
    ssl_context: SslContextSource = None,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    open_stream: StreamOpener | None = None,
) -> AsyncIterator[RealtimeSocket]:
    """``WebSocketOpener(...).open(url, headers)`` in one call (kept for the current engine and tests)."""
    opener = WebSocketOpener(
        connect_timeout=connect_timeout,
        close_timeout=close_timeout,
        ssl_context=ssl_context,
        max_message_size=max_message_size,
        open_stream=open_stream,
    )
    async with opener.open(url, headers) as sock:
        yield sock
