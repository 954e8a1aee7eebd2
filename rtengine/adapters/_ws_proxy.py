"""Websockets through an HTTP proxy: the same proxy settings httpx applies to call creation (``trust_env``).

Theory of operation. :func:`proxy_for` reads the environment once per opener, as httpx does once per client:
``wss://`` goes through ``HTTPS_PROXY`` (``https_proxy``), ``ws://`` through ``HTTP_PROXY``, either through
``ALL_PROXY`` when the specific one is unset; ``NO_PROXY`` (a comma-separated list of host names, IP addresses,
domain suffixes — ``example.com`` and ``.example.com`` both cover its subdomains — or ``*``; ``host:port`` covers
that port only, as httpx reads it) sends a host direct.
Through a proxy, the TCP stream goes to the proxy and :func:`tunnel` asks it, with ``CONNECT host:port``, for a
tunnel to the API; TLS and the websocket upgrade then run inside the tunnel, end to end with the API (the proxy sees the
host name, never the API key). A ``user:password@`` in the proxy URL becomes ``Proxy-Authorization: Basic``.

Only ``http://`` proxies are supported; a ``socks5://`` or ``https://`` proxy URL for a websocket is a
:class:`~rtengine.ConfigError` rather than a silent direct connection. A proxy that refuses the tunnel is a
:class:`~rtengine.ConnectFailed` with the proxy's status (``407``: the proxy wants credentials). The proxy's
credential (``user:password@``, or a token alone) is never in an error, a repr or a log line, whatever characters
the password holds.
"""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote, urlsplit

import h11
import trio

from ..protocol._errors import ConfigError, ConnectFailed

__all__ = ["Proxy", "proxy_for", "tunnel"]

#: The largest answer to ``CONNECT`` that is read before it is given up on.
_ANSWER_CAP: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Proxy:
    """An HTTP proxy: where it listens, and the ``Proxy-Authorization`` value (never shown in a repr)."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)
    #: The proxy URL without its password, for messages.
    shown: str = ""


def environment_proxies() -> dict[str, str]:
    """The proxy settings of the environment (``*_proxy`` variables, lower case wins), as urllib reads them."""
    return urllib.request.getproxies_environment()


def proxy_for(secure: bool, host: str, proxies: Mapping[str, str], port: int | None = None) -> Proxy | None:
    """The proxy a websocket to ``host`` goes through (``secure``: ``wss://``; ``port``: the URL's port, None for
    the default one), or None for a direct connection. Raises :class:`~rtengine.ConfigError` for a proxy URL that
    is not ``http://`` or is malformed; the message never holds the credential."""
    url = proxies.get("https" if secure else "http") or proxies.get("all")
    if not url or _exempt(host, port if port != (443 if secure else 80) else None, proxies.get("no", "")):
        return None
    scheme, _, rest = url.partition("://") if "://" in url else ("http", "", url)
    scheme = scheme.lower()
    userinfo, _, address = rest.rpartition("@")  # the last "@": a password may hold "/", "#", "?" or "@"
    shown = f"{scheme}://{'***@' if userinfo else ''}{address}"  # the credential, user name or token, never shown
    parts = urlsplit(f"{scheme}://{address}")
    if scheme != "http" or not parts.hostname:
        raise ConfigError(f"websockets support http:// proxies only, not {shown!r} (set NO_PROXY to go direct)")
    try:
        proxy_port = parts.port or 80
    except ValueError as exc:
        raise ConfigError(f"invalid proxy URL {shown!r}: {exc}") from None
    authorization = None
    if userinfo:
        user, _, password = userinfo.partition(":")
        pair = f"{unquote(user)}:{unquote(password)}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode("ascii")
    return Proxy(parts.hostname, proxy_port, authorization, shown)


def _exempt(host: str, port: int | None, no_proxy: str) -> bool:
    """``host`` is covered by ``NO_PROXY``: ``*``, the host itself, or a domain it is under. An entry with a port
    covers that port only, and (as httpx matches it) only when the URL names that port: not the default one."""
    host = host.lower().strip("[]").rstrip(".")
    for entry in no_proxy.replace(" ", "").lower().split(","):
        name, entry_port = entry, None
        if entry.count(":") == 1 or (entry.startswith("[") and "]:" in entry):  # "host:port", not a bare IPv6
            name, _, digits = entry.rpartition(":")
            entry_port = int(digits) if digits.isdigit() else -1
        name = name.strip("[]").lstrip(".").rstrip(".")
        if entry_port is not None and entry_port != port:
            continue
        if entry == "*" or (name and (host == name or host.endswith("." + name))):
            return True
    return False


async def tunnel(stream: trio.abc.Stream, proxy: Proxy, host: str, port: int, what: str, receive_size: int) -> None:
    """Ask ``proxy`` (at the other end of ``stream``) for a tunnel to ``host:port``; return once it is open.
    Raises :class:`~rtengine.ConnectFailed` when the proxy refuses (``.status``) or answers something else than
    HTTP. The caller bounds it (the opening's ``connect_timeout``) and closes the stream on any failure."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    headers = [("Host", authority)]
    if proxy.authorization is not None:
        headers.append(("Proxy-Authorization", proxy.authorization))
    conn = h11.Connection(h11.CLIENT)
    request = conn.send(h11.Request(method="CONNECT", target=authority, headers=headers))
    await stream.send_all(request + (conn.send(h11.EndOfMessage()) or b""))
    read = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(receive_size)
            read += len(data)
            if read > _ANSWER_CAP:
                raise ConnectFailed(f"{what}: proxy {proxy.shown} sent an oversized answer to CONNECT")
            conn.receive_data(bytes(data))
            if not data and conn.their_state is not h11.SWITCHED_PROTOCOL:
                raise ConnectFailed(f"{what}: proxy {proxy.shown} closed the connection before answering CONNECT")
        elif isinstance(event, h11.Response):
            if not 200 <= event.status_code < 300:
                raise ConnectFailed(
                    f"{what}: proxy {proxy.shown} refused the tunnel with HTTP {event.status_code}",
                    status=event.status_code,
                )
            if conn.trailing_data[0]:
                raise ConnectFailed(f"{what}: proxy {proxy.shown} sent data before the tunnel was used")
            return
        elif isinstance(event, h11.InformationalResponse):
            continue
        else:  # pragma: no cover - h11 yields nothing else for a client before the response
            raise ConnectFailed(f"{what}: proxy {proxy.shown} answered CONNECT with {type(event).__name__}")
