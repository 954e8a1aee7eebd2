"""The opening of a realtime websocket: the URL, TCP, TLS and the HTTP upgrade (see :mod:`rtengine.adapters._ws`).

It also holds :func:`_translate`, the one place where OS, TLS, trio-stream, wsproto and h11 exceptions become
rtengine errors, both while opening and on an open socket (:mod:`rtengine.adapters._ws_socket`).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Final, NoReturn
from urllib.parse import urlsplit, urlunsplit

import h11
import trio
import wsproto
import wsproto.events as wse
import wsproto.utilities
from wsproto.connection import Connection

from ..protocol._errors import ConfigError, ConnectFailed, ConnectionLost, RealtimeError
from ..protocol._secrets import Scrubber, redact_url
from ..protocol._util import describe_exception, sole_leaf
from ._ws_proxy import Proxy, proxy_for, tunnel

#: ``open_stream(host, port)``: how a websocket gets its byte stream (default ``trio.open_tcp_stream``).
StreamOpener = Callable[[str, int], Awaitable[trio.abc.Stream]]
#: ``ssl_context``: a context, or a function that builds (or returns a cached) one when a ``wss://`` URL needs it.
SslContextSource = Callable[[], ssl.SSLContext] | ssl.SSLContext | None

#: Largest body of a rejected upgrade that is read, and the characters of it that are kept.
_REJECT_BODY_CAP: Final = 64 * 1024
_REJECT_TEXT_CAP: Final = 2000
#: The end of an HTTP head as h11 finds it (bare LFs accepted): the bytes after it are the socket's, not wsproto's.
_HEAD_END: Final = re.compile(rb"\n\r?\n")
#: A scrubber that knows no configured secret: credential-shaped strings and URL secrets only.
SHAPES_ONLY: Final = Scrubber()


class _translate:
    """The one place where OS, TLS, trio-stream, wsproto and h11 exceptions become rtengine errors
    (``with _translate(what, error): ...``).

    ``error`` is :class:`ConnectFailed` while opening and :class:`ConnectionLost` on an open socket. rtengine's
    own errors and ``BaseException``\\ s (``Cancelled``, ``KeyboardInterrupt``) pass through unchanged. A small
    class rather than a ``@contextmanager`` generator: an open socket enters one on every read and every write, and
    keeps the one it reads with (it holds no state between uses)."""

    __slots__ = ("_error", "_what")

    def __init__(self, what: str, error: type[ConnectFailed] | type[ConnectionLost]) -> None:
        self._what = what
        self._error = error

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or isinstance(exc, RealtimeError) or not isinstance(exc, Exception):
            return
        what, error = self._what, self._error
        if isinstance(exc, trio.TooSlowError):
            raise error(f"{what}: timed out") from exc
        if isinstance(exc, wsproto.utilities.ProtocolError | h11.ProtocolError):  # may quote what the server sent
            raise error(SHAPES_ONLY(f"{what}: invalid handshake answer: {exc}")) from exc
        # OSError, ssl.SSLError, trio.BrokenResourceError/ClosedResourceError, anything else
        detail = describe_exception(exc)
        if isinstance(exc.__cause__, BaseExceptionGroup) and (leaf := sole_leaf(exc.__cause__)) is not None:
            # trio.open_tcp_stream: "all attempts to connect failed", the reason (refused, unreachable) in a group
            detail = f"{type(exc).__name__}: {exc} ({describe_exception(leaf)})"
        raise error(f"{what}: {detail}") from exc


def _fail(what: str, message: str) -> NoReturn:
    raise ConnectFailed(f"{what}: {message}")


def _rejected(what: str, status: int, body: bytes, scrub: Scrubber = SHAPES_ONLY) -> ConnectFailed:
    text = scrub(body.decode("utf-8", "replace"))[:_REJECT_TEXT_CAP]  # scrubbed whole, then cut
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
    """``url`` without its query string and fragment (they may carry secrets), nor a userinfo password."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    return redact_url(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))


async def open_connection(
    url: str,
    headers: Mapping[str, str],
    *,
    open_stream: StreamOpener,
    ssl_context: Callable[[], ssl.SSLContext],
    connect_timeout: float,
    receive_size: int,
    proxies: Mapping[str, str] | None = None,
) -> tuple[trio.abc.Stream, Connection, bytes]:
    """Open ``url`` and run the upgrade: the stream, the open wsproto connection (without the finished HTTP
    handshake and its h11 state, which an open socket never needs again) and the bytes read after the upgrade's
    answer (the server's first frames, not fed to wsproto: the socket splits them), all within
    ``connect_timeout``. With ``proxies`` (the environment's proxy settings), a host they do not exempt is reached
    through an HTTP ``CONNECT`` tunnel (:mod:`~rtengine.adapters._ws_proxy`).

    Raises :class:`~rtengine.ConnectFailed` (``.status``/``.body`` for a rejected upgrade) or
    :class:`~rtengine.ConfigError` for a URL that is not ``ws://``/``wss://``. ``ssl_context`` is called for
    ``wss://`` only. Any failure or cancellation closes the stream (shielded) before it propagates.
    """
    secure, host, port, target, host_header = _endpoint(url)
    extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    what = f"failed to connect realtime websocket {redact_url(url)}"
    stream: trio.abc.Stream | None = None
    proxy: Proxy | None = proxy_for(secure, host, proxies, port) if proxies else None
    try:
        with _translate(what, ConnectFailed), trio.fail_after(connect_timeout):
            if proxy is None:
                stream = await open_stream(host, port)
            else:
                stream = await open_stream(proxy.host, proxy.port)
                await tunnel(stream, proxy, host, port, what, receive_size)
            if secure:
                stream = trio.SSLStream(stream, ssl_context(), server_hostname=host, https_compatible=True)
                await stream.do_handshake()
            ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
            await stream.send_all(ws.send(wse.Request(host=host_header, target=target, extra_headers=extra)))
            leftover = await _upgrade(stream, ws, what, receive_size, Scrubber.of(headers, (url,)))
    except BaseException:
        if stream is not None:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
        raise
    assert ws.connection is not None  # the upgrade was accepted
    return stream, ws.connection, leftover


async def _upgrade(
    stream: trio.abc.Stream, ws: wsproto.WSConnection, what: str, receive_size: int, scrub: Scrubber
) -> bytes:
    """Read the answer to the upgrade request: on 101, return the bytes read after its head (frames the server sent
    at once: the socket's first bytes, kept from wsproto so that the socket's frame splitter starts at a frame
    boundary); otherwise raise :class:`ConnectFailed` (its text scrubbed of the request's secrets: a server may echo
    them)."""
    status: int | None = None
    body = bytearray()
    head = bytearray()  # the answer's head so far; ``fed`` of it went to wsproto
    fed = 0
    rest = b""  # read after the head: frames (after a 101) or the start of a rejection's body
    while True:
        for event in ws.events():
            if isinstance(event, wse.AcceptConnection):
                return rest
            if isinstance(event, wse.RejectConnection):
                status = event.status_code
                if not event.has_body:
                    raise _rejected(what, status, b"", scrub)
            elif isinstance(event, wse.RejectData) and status is not None:
                body += event.data[: _REJECT_BODY_CAP - len(body)]
                if event.body_finished or len(body) >= _REJECT_BODY_CAP:
                    raise _rejected(what, status, bytes(body), scrub)
        if status is not None and rest:  # a rejection's body that came with its head
            ws.receive_data(rest)
            rest = b""
            continue
        data = await stream.receive_some(receive_size)
        if not data:
            if status is not None:
                raise _rejected(what, status, bytes(body), scrub)
            _fail(what, "the server closed the connection before answering the websocket upgrade")
        if fed < 0:  # past the head: a rejection's body
            ws.receive_data(bytes(data))
            continue
        head += data
        found = _HEAD_END.search(head, max(fed - 2, 0))
        if found is None:
            ws.receive_data(bytes(head[fed:]))
            fed = len(head)
        else:
            end = found.end()
            ws.receive_data(bytes(head[fed:end]))
            rest, fed = bytes(head[end:]), -1
