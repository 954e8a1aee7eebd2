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
  (``receive_size`` bytes at a time), feeds wsproto and handles every event wsproto already has before it reads
  again: pings are answered, fragments are assembled, a server CLOSE is answered. The task that leaves the
  :meth:`WebSocketOpener.open` block runs the close handshake by itself — it sends CLOSE 1000 and reads until the
  server's CLOSE (or EOF), discarding data frames.
* Why: a reader task has to stay alive for a close handshake, since only it can receive the server's CLOSE reply.
  The engine cancels its work scope on close and on outer cancellation; a reader living inside that scope dies
  first, and every close then ran to its timeout. With no background task, whoever closes can finish the
  handshake, inside a cancelled scope too (the exit is shielded).
* Sends (text frames, pongs, close frames) are serialized by one :class:`trio.Lock`; reads by another.

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
  block's own exception propagates unchanged.

Third-party exceptions (OS, TLS, trio stream errors, wsproto and h11) become rtengine errors in exactly one place,
:func:`_translate`.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Final, NoReturn
from urllib.parse import urlsplit, urlunsplit

import h11
import trio
import wsproto
import wsproto.events as wse
import wsproto.utilities
from wsproto.connection import ConnectionState

from ..protocol._errors import ConfigError, ConnectFailed, ConnectionLost, RealtimeError
from ..protocol._lifecycle import SocketEnd
from ..protocol._util import describe_exception, sole_leaf

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_RECEIVE_SIZE",
    "RealtimeSocket",
    "StreamOpener",
    "WebSocketOpener",
    "open_socket",
]

log = logging.getLogger("rtengine.websocket")

#: ``open_stream(host, port)``: how a websocket gets its byte stream (default ``trio.open_tcp_stream``).
StreamOpener = Callable[[str, int], Awaitable[trio.abc.Stream]]
#: ``ssl_context``: a context, or a function that builds (or returns a cached) one when a ``wss://`` URL needs it.
SslContextSource = Callable[[], ssl.SSLContext] | ssl.SSLContext | None

#: Largest message accepted from the server (session and item payloads can be large).
DEFAULT_MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024
#: Bytes asked of the stream per read.
DEFAULT_RECEIVE_SIZE: Final = 65536
#: Largest body of a rejected upgrade that is read, and the characters of it that are kept.
_REJECT_BODY_CAP: Final = 64 * 1024
_REJECT_TEXT_CAP: Final = 2000
#: wsproto's "no status code in the close frame" (never on the wire).
_NO_STATUS: Final = 1005


@contextmanager
def _translate(what: str, error: type[ConnectFailed] | type[ConnectionLost]) -> Iterator[None]:
    """The one place where OS, TLS, trio-stream, wsproto and h11 exceptions become rtengine errors.

    ``error`` is :class:`ConnectFailed` while opening and :class:`ConnectionLost` on an open socket. rtengine's
    own errors and ``BaseException``\\ s (``Cancelled``, ``KeyboardInterrupt``) pass through unchanged.
    """
    try:
        yield
    except RealtimeError:
        raise
    except trio.TooSlowError as exc:
        raise error(f"{what}: timed out") from exc
    except (wsproto.utilities.ProtocolError, h11.ProtocolError) as exc:
        raise error(f"{what}: invalid handshake answer: {exc}") from exc
    except Exception as exc:  # OSError, ssl.SSLError, trio.BrokenResourceError/ClosedResourceError, anything else
        detail = describe_exception(exc)
        if isinstance(exc.__cause__, BaseExceptionGroup) and (leaf := sole_leaf(exc.__cause__)) is not None:
            # trio.open_tcp_stream: "all attempts to connect failed", the reason (refused, unreachable) in a group
            detail = f"{type(exc).__name__}: {exc} ({describe_exception(leaf)})"
        raise error(f"{what}: {detail}") from exc


def _fail(what: str, message: str) -> NoReturn:
    raise ConnectFailed(f"{what}: {message}")


def _rejected(what: str, status: int, body: bytes) -> ConnectFailed:
    text = body.decode("utf-8", "replace")[:_REJECT_TEXT_CAP]
    return ConnectFailed(
        f"{what}: handshake rejected with HTTP {status}: {text}".rstrip(": "), status=status, body=text
    )


def _endpoint(url: str) -> tuple[bool, str, int, str, str]:
    """``(secure, host, port, target, host_header)`` of a ``ws://``/``wss://`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(f"not a websocket URL: {_public(url)!r}")
    secure = parts.scheme == "wss"
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError as exc:
        raise ConfigError(f"not a websocket URL: {_public(url)!r} ({exc})") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = port == (443 if secure else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return secure, parts.hostname, port, target, host if default_port else f"{host}:{port}"


def _public(url: str) -> str:
    """``url`` without its query string and fragment (they may carry secrets)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _text_size(data: str | bytes | bytearray) -> int:
    """Bytes of a message part as it was on the wire (UTF-8 for text; ASCII text is counted without encoding)."""
    if isinstance(data, str) and not data.isascii():
        return len(data.encode("utf-8"))
    return len(data)


class RealtimeSocket:
    """An open realtime websocket (the :class:`~rtengine.engine._seams.Socket` seam). Created by
    :meth:`WebSocketOpener.open`.

    One task receives; any number of tasks may send (sends are serialized). ``close_code``/``close_reason`` say how
    the connection ended once it has (``None`` before, and ``close_code`` stays ``None`` for an end without a close
    frame); ``close_took`` is how long leaving the block took.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        ws: wsproto.WSConnection,
        url: str,
        *,
        close_timeout: float,
        max_message_size: int,
        receive_size: int,
    ) -> None:
        self._stream = stream
        self._ws = ws
        self.url = url
        self.close_timeout = close_timeout
        self.max_message_size = max_message_size
        self.receive_size = receive_size
        self.close_took: float | None = None
        self._send_lock = trio.Lock()
        self._read_lock = trio.Lock()
        self._parts: list[str | bytes] = []
        self._size = 0
        self._end: SocketEnd | None = None
        #: A write was interrupted after it may have begun: part of a frame may be on the wire.
        self._torn = False
        #: The server broke the protocol: the frame parser is unusable, no handshake is attempted.
        self._broken = False
        #: The block was left (the stream is closed or being closed).
        self._finished = False

    def __repr__(self) -> str:
        return f"<RealtimeSocket {_public(self.url)} {'closed' if self.closed else 'open'}>"

    @property
    def closed(self) -> bool:
        """True once the connection has ended (either side) or the block was left."""
        return self._end is not None or self._finished

    @property
    def end(self) -> SocketEnd | None:
        """How the connection ended, once it has."""
        return self._end

    @property
    def close_code(self) -> int | None:
        return self._end.code if self._end is not None else None

    @property
    def close_reason(self) -> str | None:
        return self._end.reason if self._end is not None else None

    # --- sending ------------------------------------------------------------------------------------------------

    async def send(self, text: str) -> None:
        """Write one text frame. Raises :class:`~rtengine.ConnectionLost` when the connection has ended, the socket
        is closed or torn, or the write fails. Cancellation: see the module docstring (a send cancelled before any
        byte was written leaves the socket whole)."""
        await self._write(wse.TextMessage(data=text))

    async def _write(self, event: wse.Event) -> None:
        what = "failed to send on the realtime websocket"
        async with self._send_lock:
            if self._finished or self._torn:
                raise ConnectionLost(f"{what}: the socket is {'closed' if self._finished else 'torn'}")
            if isinstance(event, wse.Message) and (end := self._end) is not None:
                message = f"{what}: the connection has ended: {end.detail}"
                raise ConnectionLost(message, code=end.code, reason=end.reason)
            if isinstance(event, wse.Message | wse.Pong) and self._ws.state is not ConnectionState.OPEN:
                raise ConnectionLost(f"{what}: the connection is closing", code=self.close_code)
            # A pending cancellation is taken here, before any byte is written: such a send is not torn.
            await trio.lowlevel.checkpoint_if_cancelled()
            with _translate(what, ConnectionLost):
                data = self._ws.send(event)
            try:
                with _translate(what, ConnectionLost):
                    await self._stream.send_all(data)
            except BaseException:
                self._torn = True
                raise

    # --- receiving ----------------------------------------------------------------------------------------------

    async def receive(self) -> str | bytes | SocketEnd:
        """The next complete message (text as ``str``, binary as ``bytes``), or how the connection ended.

        Pings are answered and a server CLOSE is answered here. Once ended, every call returns the same
        :class:`~rtengine.protocol.SocketEnd`. Cancellation: nothing is lost; the socket stays usable.
        """
        async with self._read_lock:
            while True:
                if (end := self._end_now()) is not None:
                    return end
                event = self._next_event()
                if event is None:
                    await self._fill()
                    continue
                message = await self._on_event(event)
                if message is not None:
                    return message

    def _end_now(self) -> SocketEnd | None:
        return self._end  # a call: mypy keeps no narrowing of ``_end`` across the awaits of the loop

    def _next_event(self) -> wse.Event | None:
        """One event wsproto already has (taking one at a time loses nothing if the caller is cancelled later)."""
        return next(iter(self._ws.events()), None)

    def _genuine_close(self) -> bool:
        """After a CloseConnection event: True when the server sent a close frame (wsproto moved its state), False
        when wsproto synthesized it for a protocol violation (a frame it could not parse)."""
        return self._ws.state in (ConnectionState.REMOTE_CLOSING, ConnectionState.CLOSED)

    async def _fill(self) -> bool:
        """Read once and feed wsproto. False at EOF or after a failed read: the connection has ended (not cleanly)."""
        try:
            with _translate("reading the realtime websocket failed", ConnectionLost):
                data = await self._stream.receive_some(self.receive_size)
        except ConnectionLost as exc:
            self._ended(SocketEnd(clean=False, detail=str(exc)))
            return False
        if not data:
            self._ended(SocketEnd(clean=False, detail="the server closed the connection without a close frame"))
            return False
        self._ws.receive_data(bytes(data))
        return True

    def _ended(self, end: SocketEnd) -> None:
        if self._end is None:
            self._end = end
            self._parts, self._size = [], 0

    async def _on_event(self, event: wse.Event) -> str | bytes | None:
        if isinstance(event, wse.TextMessage | wse.BytesMessage):
            return await self._on_message(event)
        if isinstance(event, wse.Ping):
            try:
                await self._write(event.response())
            except ConnectionLost as exc:
                log.debug("pong not sent: %s", exc)
            return None
        if isinstance(event, wse.CloseConnection):
            await self._on_close(event)
        return None

    async def _on_message(self, event: wse.TextMessage | wse.BytesMessage) -> str | bytes | None:
        data = event.data if isinstance(event.data, str) else bytes(event.data)
        self._size += _text_size(data)
        if self._size > self.max_message_size:
            self._ended(
                SocketEnd(
                    clean=False,
                    code=1009,
                    reason="message too big",
                    detail=f"the server sent a message larger than max_message_size ({self.max_message_size} bytes)",
                )
            )
            await self._send_close(1009, "message too big")
            return None
        self._parts.append(data)
        if not event.message_finished:
            return None
        parts, self._parts, self._size = self._parts, [], 0
        if isinstance(event, wse.TextMessage):
            return "".join(p for p in parts if isinstance(p, str))
        return b"".join(p for p in parts if isinstance(p, bytes))

    async def _on_close(self, event: wse.CloseConnection) -> None:
        code = int(event.code)
        if not self._genuine_close():
            # wsproto could not parse what the server sent: fail the connection with wsproto's code (1002 for a
            # protocol error, 1007 for invalid UTF-8).
            self._broken = True
            reason = event.reason or "protocol error"
            self._ended(
                SocketEnd(clean=False, code=code, reason=reason, detail=f"protocol violation by the server: {reason}")
            )
            await self._send_close(code, reason[:100])
            return
        public_code = None if code == _NO_STATUS else code
        self._ended(
            SocketEnd(
                clean=True,
                code=public_code,
                reason=event.reason or None,
                detail=f"the server closed the websocket ({public_code} {event.reason or ''})".replace(" )", ")"),
            )
        )
        if self._ws.state is ConnectionState.REMOTE_CLOSING:
            await self._send_close(1000 if public_code is None else public_code)

    async def _send_close(self, code: int, reason: str | None = None) -> None:
        """Send a close frame (ours, or the reply to the server's); a failed write is not an error here."""
        try:
            await self._write(wse.CloseConnection(code=code, reason=reason))
        except ConnectionLost as exc:
            log.debug("close frame not sent: %s", exc)

    # --- closing ------------------------------------------------------------------------------------------------

    async def _finish(self) -> None:
        """Leave the block: the close handshake (unless torn or broken), then close the stream. Shielded, bounded by
        ``close_timeout`` as a whole, never raises."""
        start = trio.current_time()
        deadline = start + self.close_timeout
        try:
            with trio.CancelScope(deadline=deadline, shield=True):
                await self._close_handshake()
        except Exception as exc:  # the exit never raises: the block's own exception (if any) must propagate
            log.debug("websocket close handshake failed: %s", describe_exception(exc))
        finally:
            self._finished = True
            with trio.CancelScope(deadline=deadline, shield=True):
                try:
                    await self._stream.aclose()  # cancelled at the deadline: still closed, forcefully
                except Exception as exc:
                    log.debug("closing the websocket stream failed: %s", describe_exception(exc))
            self.close_took = trio.current_time() - start
            self._ended(SocketEnd(clean=False, detail="the socket was closed locally"))

    async def _close_handshake(self) -> None:
        if self._torn or self._broken:
            return
        async with self._read_lock:
            state = self._ws.state
            if state is ConnectionState.OPEN:
                await self._write(wse.CloseConnection(code=1000))
            elif state is ConnectionState.REMOTE_CLOSING:
                code = self.close_code
                await self._write(wse.CloseConnection(code=1000 if code is None else code))
            while self._ws.state is ConnectionState.LOCAL_CLOSING and not self._broken:
                event = self._next_event()
                if event is None:
                    if not await self._fill():
                        return  # EOF or a failed read: nothing more will come
                    continue
                if isinstance(event, wse.CloseConnection):
                    if not self._genuine_close():
                        return
                    code = int(event.code)
                    public_code = None if code == _NO_STATUS else code
                    self._ended(
                        SocketEnd(
                            clean=True,
                            code=public_code,
                            reason=event.reason or None,
                            detail="the websocket was closed by the client",
                        )
                    )
                    return
                # Data frames and pings after our CLOSE are discarded (no pong may follow a CLOSE).


class WebSocketOpener:
    """Opens realtime websockets (the :class:`~rtengine.engine._seams.SocketOpener` seam).

    ``connect_timeout`` bounds the whole opening (TCP, TLS, upgrade); ``close_timeout`` the whole exit (close
    handshake and closing the stream). ``ssl_context`` is used for ``wss://`` only: a context, or a function that
    returns one (called when first needed); ``None`` builds the system's default context once per opener.
    ``max_message_size`` caps a server message (a larger one ends the socket with 1009). ``open_stream(host,
    port)`` replaces ``trio.open_tcp_stream`` (in-memory tests, proxies). ``receive_size`` is the read size.
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
    ) -> None:
        if connect_timeout <= 0 or close_timeout <= 0:
            raise ConfigError("connect_timeout and close_timeout must be > 0")
        if max_message_size <= 0 or receive_size <= 0:
            raise ConfigError("max_message_size and receive_size must be > 0")
        self.connect_timeout = connect_timeout
        self.close_timeout = close_timeout
        self.max_message_size = max_message_size
        self.receive_size = receive_size
        self._ssl_source = ssl_context
        self._ssl: ssl.SSLContext | None = ssl_context if isinstance(ssl_context, ssl.SSLContext) else None
        self._open_stream: StreamOpener = open_stream or trio.open_tcp_stream

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
        handshake (see the module docstring). Cancellation: a cancelled opening closes the stream and propagates
        ``Cancelled``.
        """
        return self._open(url, headers)

    @asynccontextmanager
    async def _open(self, url: str, headers: Mapping[str, str]) -> AsyncIterator[RealtimeSocket]:
        sock = await self._connect(url, headers)
        try:
            yield sock
        finally:
            await sock._finish()

    async def _connect(self, url: str, headers: Mapping[str, str]) -> RealtimeSocket:
        secure, host, port, target, host_header = _endpoint(url)
        extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        what = f"failed to connect realtime websocket {url}"
        stream: trio.abc.Stream | None = None
        try:
            with _translate(what, ConnectFailed), trio.fail_after(self.connect_timeout):
                stream = await self._open_stream(host, port)
                if secure:
                    stream = trio.SSLStream(stream, self._ssl_context(), server_hostname=host, https_compatible=True)
                    await stream.do_handshake()
                ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
                await stream.send_all(ws.send(wse.Request(host=host_header, target=target, extra_headers=extra)))
                await self._upgrade(stream, ws, what)
        except BaseException:
            if stream is not None:
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(stream)
            raise
        return RealtimeSocket(
            stream,
            ws,
            url,
            close_timeout=self.close_timeout,
            max_message_size=self.max_message_size,
            receive_size=self.receive_size,
        )

    async def _upgrade(self, stream: trio.abc.Stream, ws: wsproto.WSConnection, what: str) -> None:
        """Read the answer to the upgrade request: return on 101, raise :class:`ConnectFailed` otherwise."""
        status: int | None = None
        body = bytearray()
        while True:
            for event in ws.events():
                if isinstance(event, wse.AcceptConnection):
                    return  # bytes after the answer stay in wsproto for the first receive()
                if isinstance(event, wse.RejectConnection):
                    status = event.status_code
                    if not event.has_body:
                        raise _rejected(what, status, b"")
                elif isinstance(event, wse.RejectData) and status is not None:
                    body += event.data[: _REJECT_BODY_CAP - len(body)]
                    if event.body_finished or len(body) >= _REJECT_BODY_CAP:
                        raise _rejected(what, status, bytes(body))
            data = await stream.receive_some(self.receive_size)
            if not data:
                if status is not None:
                    raise _rejected(what, status, bytes(body))
                _fail(what, "the server closed the connection before answering the websocket upgrade")
            ws.receive_data(bytes(data))


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
