"""The websocket adapter: trio-websocket over a TCP (or TLS) stream that rtengine owns.

Theory of operation (stack-notes §3). :func:`open_socket` opens the TCP stream itself, wraps it with
``trio_websocket.wrap_client_stream`` inside a nursery private to this connection, and:

* bounds the whole opening (TCP, TLS, upgrade) with ``trio.fail_after`` — trio-websocket's own
  ``connect_timeout`` does not bound a stalled handshake;
* closes the TCP stream itself in every case, so a rejected or cancelled handshake never leaves a socket to
  the garbage collector;
* on leaving the block, runs the websocket close handshake **while the library's reader task is still alive**
  (only the reader can receive the server's CLOSE reply), shielded and bounded by ``close_timeout``, and only
  then cancels the reader.

trio-websocket, TLS and OS exceptions become rtengine errors in exactly one place, :func:`_translate`.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Final
from urllib.parse import urlsplit

import trio
import trio_websocket

from ..protocol._errors import ConfigError, ConnectFailed, ConnectionLost, RealtimeError
from ..protocol._payloads import encode
from ..protocol._util import collapse_single_group, describe_exception, sole_leaf

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "RealtimeSocket", "StreamOpener", "open_socket"]

#: ``open_stream(host, port)``: how a websocket gets its byte stream (default ``trio.open_tcp_stream``).
StreamOpener = Callable[[str, int], Awaitable[trio.abc.Stream]]

#: Largest frame accepted from the server (trio-websocket's default of 1 MiB is too small for sessions).
DEFAULT_MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024
#: Frames trio-websocket may queue before its reader stops reading (and answering pings).
DEFAULT_MESSAGE_QUEUE: Final = 256


@contextmanager
def _translate(what: str) -> Iterator[None]:
    """The one place where trio-websocket, TLS and socket exceptions become rtengine errors."""
    try:
        yield
    except RealtimeError:
        raise
    except trio_websocket.ConnectionRejected as exc:
        body = (exc.body or b"")[:2000].decode("utf-8", "replace")
        raise ConnectFailed(
            f"{what}: handshake rejected with HTTP {exc.status_code}: {body}".rstrip(": "),
            status=exc.status_code,
            body=body,
        ) from exc
    except trio_websocket.HandshakeError as exc:
        cause = exc.__cause__ or exc
        raise ConnectFailed(f"{what}: handshake failed: {cause!r}") from exc
    except trio_websocket.ConnectionClosed as exc:
        code = exc.reason.code if exc.reason is not None else None
        reason = exc.reason.reason if exc.reason is not None else None
        raise ConnectionLost(
            f"{what}: connection closed ({code} {reason or ''})".strip(), code=code, reason=reason
        ) from exc
    except trio.TooSlowError as exc:
        raise ConnectFailed(f"{what}: timed out") from exc
    except (OSError, ssl.SSLError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise ConnectFailed(f"{what}: {describe_exception(exc)}") from exc


class _OwnedStream(trio.abc.Stream):
    """The byte stream under a websocket, remembering whether a write was interrupted.

    trio leaves a stream whose ``send_all`` was cancelled (or failed) in an unknown state — part of a frame may
    be on the wire — so a close handshake on it could never complete. :meth:`RealtimeSocket.aclose` then skips the
    handshake and the TCP stream is simply closed.
    """

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.torn = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self.inner.send_all(data)
        except BaseException:
            self.torn = True
            raise

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


class RealtimeSocket:
    """An open realtime websocket. Sends never wait for a pending :meth:`receive`.

    ``close_code``/``close_reason`` say how the connection ended once it has (``None`` before).
    """

    def __init__(
        self, ws: trio_websocket.WebSocketConnection, stream: _OwnedStream, url: str, close_timeout: float
    ) -> None:
        self._ws = ws
        self._stream = stream
        self.url = url
        self.close_timeout = close_timeout
        self.close_took: float | None = None

    def __repr__(self) -> str:
        return f"<RealtimeSocket {self.url} {'closed' if self.closed else 'open'}>"

    @property
    def closed(self) -> bool:
        return self._ws.closed is not None

    @property
    def close_code(self) -> int | None:
        return self._ws.closed.code if self._ws.closed is not None else None

    @property
    def close_reason(self) -> str | None:
        return self._ws.closed.reason if self._ws.closed is not None else None

    async def send(self, event: Mapping[str, Any]) -> None:
        """Send one client event as compact JSON. Raises :class:`~rtengine.ConnectionLost` once closed."""
        await self.send_text(encode(event))

    async def send_text(self, text: str) -> None:
        with _translate("failed to send realtime request"):
            await self._ws.send_message(text)

    async def receive(self) -> str | bytes | None:
        """The next frame, or ``None`` once the connection has ended (see :attr:`close_code`).

        Cancellation: a cancelled receive loses nothing and leaves the socket usable.
        """
        try:
            return await self._ws.get_message()
        except trio_websocket.ConnectionClosed:
            return None

    async def aclose(self) -> None:
        """Run the close handshake, shielded and bounded by ``close_timeout``. Idempotent.

        When a write was interrupted (a frame may be half sent) there is no handshake to run: the TCP stream is
        closed by :func:`open_socket`. Cancellation: runs to completion or to the deadline even inside a
        cancelled scope.
        """
        if self._stream.torn:
            return
        start = trio.current_time()
        with trio.CancelScope(shield=True), trio.move_on_after(self.close_timeout):
            await self._ws.aclose()
        if self.close_took is None:
            self.close_took = trio.current_time() - start


def _endpoint(url: str) -> tuple[bool, str, int, str, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(f"not a websocket URL: {url!r}")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = (secure and port == 443) or (not secure and port == 80)
    host_header = parts.hostname if default_port else f"{parts.hostname}:{port}"
    if ":" in parts.hostname:
        host_header = f"[{parts.hostname}]" if default_port else f"[{parts.hostname}]:{port}"
    return secure, parts.hostname, port, resource, host_header


@asynccontextmanager
async def open_socket(
    url: str,
    headers: Mapping[str, str],
    *,
    connect_timeout: float = 10.0,
    close_timeout: float = 1.0,
    ssl_context: ssl.SSLContext | None = None,
    message_queue_size: int = DEFAULT_MESSAGE_QUEUE,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    open_stream: StreamOpener | None = None,
) -> AsyncIterator[RealtimeSocket]:
    """Open a websocket to ``url`` with ``headers`` for the duration of the block.

    Raises :class:`~rtengine.ConnectFailed` (``.status`` set for a rejected handshake) when the opening fails
    or exceeds ``connect_timeout``. Leaving the block closes the socket (see the module docstring).
    Cancellation: a cancelled opening closes the TCP stream and propagates ``Cancelled``; nothing leaks.
    """
    secure, host, port, resource, host_header = _endpoint(url)
    extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    what = f"failed to connect realtime websocket {url}"
    with collapse_single_group():
        with _translate(what), trio.fail_after(connect_timeout):
            tcp = await (open_stream or trio.open_tcp_stream)(host, port)
        stream: trio.abc.Stream = tcp
        try:
            if secure:
                context = ssl_context or ssl.create_default_context()
                stream = trio.SSLStream(tcp, context, server_hostname=host, https_compatible=True)
                with _translate(what), trio.fail_after(connect_timeout):
                    await stream.do_handshake()
            owned = _OwnedStream(stream)
            opened = False
            try:
                async with trio.open_nursery() as nursery:
                    with trio.fail_after(connect_timeout):
                        ws = await trio_websocket.wrap_client_stream(
                            nursery,
                            owned,  # type: ignore[arg-type]  # any trio Stream works
                            host_header,
                            resource,
                            extra_headers=extra,
                            message_queue_size=message_queue_size,
                            max_message_size=max_message_size,
                        )
                    opened = True
                    socket = RealtimeSocket(ws, owned, url, close_timeout)
                    try:
                        yield socket
                    finally:
                        await socket.aclose()
                        nursery.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                leaf = sole_leaf(group)
                if opened or leaf is None:
                    raise
                with _translate(what):
                    raise leaf from None
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()
