"""The pooled httpx client rtengine builds, and the short way its requests take to the connection pool.

Theory of operation
-------------------
``httpx.AsyncClient.send`` spends, per request, as much CPU as a loopback exchange itself: URL and header merging,
the cookie jar (a ``urllib`` request is built to extract cookies from every response), the auth flow and redirect
generators, event hooks, a log line. For a client with none of these configured, all that work ends in one call:
``transport.handle_async_request(request)`` (public httpx API) on the client's connection pool. :class:`Poster`
makes that call itself when it is known to be what the client would do, and gives the request what the client
would have: its default headers merged under the caller's (HTTP precedence as ``build_request``), ``Host`` and
``Content-Length`` where httpx puts them (an empty body's ``Content-Length: 0`` second), the client's timeouts (as
they are at each request: an ``httpx.Timeout`` may be changed in place) as the ``timeout`` extension, the jar's
cookies for the URL (an API behind a CDN may set some), and any ``Set-Cookie`` of the answer stored in the jar — the
same bytes on the wire.
Measured on a loopback POST: ≈175 µs of CPU less per request (of ≈860).

It is known only for a client built by :func:`pooled_client` whose transport it returned — every URL then goes to
that transport: when no proxy is configured in the environment (httpx mounts a proxy transport per
``HTTP(S)_PROXY``/``ALL_PROXY``; then there is no short way and the client is asked), or when the transport was
given (httpx ignores the environment's proxies then). And only while the client still has no auth, no event hook,
no default query parameter, no redirect following and no credentials in the URL, and while neither the caller nor
the client gives a header httpx writes itself (``Host``, ``Content-Length``, ``Transfer-Encoding``: httpx keeps
theirs): each is checked per request (a few attribute reads), and any of them sends the request through
``client.send`` instead, exactly as before. A closed client raises :class:`~rtengine.ConfigError` either way (httpx
would raise a ``RuntimeError``). The one visible difference: httpx's own ``INFO`` line per request ("HTTP Request:
…") is not logged on the short way.

Exceptions are unchanged: the transport raises the same httpx exceptions (with the request attached, as the client
does), and :func:`~rtengine.adapters._http_calls._translate` stays the one place they become rtengine errors.
Cancellation: as ``client.send`` (the transport is the part that does the I/O in both): the request is abandoned
and its connection closed by httpcore.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from typing import Final
from urllib.request import getproxies

import httpx

from ..protocol._errors import ConfigError
from ._http_exchange import _BodyStream

__all__ = ["Poster", "pooled_client"]

#: The proxy settings httpx turns into transports (``get_environment_proxies``: the rest is ignored).
_PROXY_SCHEMES: Final = ("http", "https", "all")


def _environment_proxies() -> bool:
    """True when httpx, trusting the environment, would route some URL through a proxy transport."""
    proxies = getproxies()
    if any(host.strip() == "*" for host in proxies.get("no", "").split(",")):
        return False  # NO_PROXY=*: httpx ignores every proxy setting
    return any(proxies.get(scheme) for scheme in _PROXY_SCHEMES)


def pooled_client(
    *,
    verify: ssl.SSLContext,
    timeout: httpx.Timeout,
    limits: httpx.Limits,
    headers: Mapping[str, str],
    trust_env: bool,
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[httpx.AsyncClient, httpx.AsyncBaseTransport | None]:
    """A pooled client that never follows redirects and, when every request it sends goes to one transport, that
    transport (the short way of :class:`Poster`), else None.

    ``transport`` replaces the connection pool (as httpx's own ``transport=``: the environment's proxies are then
    not used)."""
    if transport is None and not (trust_env and _environment_proxies()):
        # What httpx builds itself (``_init_transport``), kept: no proxy mount can route a URL elsewhere.
        transport = httpx.AsyncHTTPTransport(verify=verify, trust_env=trust_env, limits=limits)
    client = httpx.AsyncClient(
        verify=verify,
        timeout=timeout,
        limits=limits,
        follow_redirects=False,
        headers=headers,
        trust_env=trust_env,
        transport=transport,
    )
    return client, transport


#: Entries kept per cache (the engine has one or two header mappings and body sizes); past this it restarts.
_KEPT: Final = 8


#: Headers httpx itself writes (Host, Content-Length) or frames the body with: given by the caller or the client,
#: httpx keeps theirs, so such requests go through the client (the short way would send both).
_FRAMING: Final = frozenset({"host", "content-length", "transfer-encoding"})


class _Prepared:
    """The header list and extensions of requests with one headers mapping and content type on one client."""

    __slots__ = ("client_headers", "complete", "direct", "extensions", "raw", "timeout")

    def __init__(self, client: httpx.AsyncClient, headers: Mapping[str, str], content_type: str | None) -> None:
        self.client_headers = client.headers.raw
        #: A copy: an ``httpx.Timeout`` can be changed in place, and ``client.post`` reads it at each request.
        self.timeout = httpx.Timeout(client.timeout)
        merged = httpx.Headers(client.headers)  # as ``build_request``: the caller's headers over the client's
        merged.update(headers)
        if content_type is not None:
            merged["content-type"] = content_type
        self.raw = merged.raw
        #: False when a header httpx would otherwise write itself is given (see ``_FRAMING``): the client is asked.
        self.direct = _FRAMING.isdisjoint(merged.keys())
        self.extensions = {"timeout": self.timeout.as_dict()}  # each request copies it (``httpx.Request``)
        #: (Host, Content-Length) → every header of such a request (a request copies it: a list copy).
        self.complete: dict[tuple[bytes, int | None], httpx.Headers] = {}

    def headers(self, netloc: bytes, length: int | None) -> httpx.Headers:
        """As httpx's ``Request(content=…)`` orders them: Host first, the merged headers, then Content-Length
        (``length`` None: left out) — but an empty body's ``Content-Length: 0`` right after Host, where httpx puts
        it (it adds it itself, with Host, when the content sets none)."""
        key = (netloc, length)
        headers = self.complete.get(key)
        if headers is None:
            if len(self.complete) >= _KEPT:
                self.complete.clear()
            if length == 0:
                raw = [(b"Host", netloc), (b"Content-Length", b"0"), *self.raw]
            else:
                raw = [(b"Host", netloc), *self.raw]
                if length is not None:
                    raw.append((b"Content-Length", b"%d" % length))
            headers = self.complete[key] = httpx.Headers(raw)
        return headers

    def fits(self, client: httpx.AsyncClient) -> bool:
        return client.timeout == self.timeout and client.headers.raw == self.client_headers


class Poster:
    """POSTs on the pooled client: through ``transport()`` when that is what the client would do (see the module
    docstring), else through ``client.send``. The response is streamed (the caller reads and closes it).

    ``transport`` returns the transport :func:`pooled_client` gave with the client ``http`` returns, or None (a
    client rtengine did not build, a proxied one). The merged headers are kept per headers content (the engine's
    are one mapping per client): by content, not identity, so a mapping changed in place is merged afresh."""

    __slots__ = ("_http", "_prepared", "_transport")

    def __init__(
        self,
        http: Callable[[], httpx.AsyncClient],
        transport: Callable[[], httpx.AsyncBaseTransport | None] | None = None,
    ) -> None:
        self._http = http
        self._transport = transport
        #: (content type, each header of the mapping) → its prepared requests.
        self._prepared: dict[tuple[object, ...], _Prepared] = {}

    async def post(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        content_type: str | None = None,
        on_written: Callable[[], None] | None = None,
    ) -> httpx.Response:
        """POST ``body`` with ``headers`` (and ``content_type``); ``on_written`` as
        :class:`~rtengine.adapters._http_exchange._BodyStream`'s. Raises what httpx raises."""
        client = self._http()
        if client.is_closed:  # httpx would raise a RuntimeError
            raise ConfigError("the HTTP client is closed (client.http() was closed, or the client passed in)")
        transport = self._transport() if self._transport is not None else None
        if transport is not None and _plain(client):
            target = httpx.URL(url)
            if not target.userinfo:  # credentials in the URL: the client would add basic auth
                prepared = self._prepare(client, headers, content_type)
                if prepared.direct:
                    return await _direct(client, transport, target, prepared, body, on_written)
        if content_type is not None:
            headers = {**headers, "content-type": content_type}
        request = client.build_request("POST", url, content=body, headers=headers)
        request.stream = _BodyStream(body, on_written)  # not an async generator (see rtengine.adapters._http)
        return await client.send(request, stream=True)

    def _prepare(self, client: httpx.AsyncClient, headers: Mapping[str, str], content_type: str | None) -> _Prepared:
        # Kept by content, not identity: even a read-only view (MappingProxyType) shows its dict's changes.
        key = (content_type, *headers.items())
        prepared = self._prepared.get(key)
        if prepared is not None and prepared.fits(client):
            return prepared
        if len(self._prepared) >= _KEPT:
            self._prepared.clear()
        prepared = self._prepared[key] = _Prepared(client, headers, content_type)
        return prepared


async def _direct(
    client: httpx.AsyncClient,
    transport: httpx.AsyncBaseTransport,
    url: httpx.URL,
    prepared: _Prepared,
    body: bytes,
    on_written: Callable[[], None] | None,
) -> httpx.Response:
    stream = _BodyStream(body, on_written)
    jar = client.cookies
    extensions = prepared.extensions
    if jar:  # as build_request does: the jar's cookies for this URL, then Content-Length (an empty body's: second)
        headers = prepared.headers(url.netloc, None if body else 0)
        request = httpx.Request("POST", url, headers=headers, cookies=jar, stream=stream, extensions=extensions)
        if body:
            request.headers["Content-Length"] = str(len(body))
    else:
        headers = prepared.headers(url.netloc, len(body))
        request = httpx.Request("POST", url, headers=headers, stream=stream, extensions=extensions)
    try:
        response = await transport.handle_async_request(request)
    except httpx.RequestError as exc:
        _attach(exc, request)
        raise
    response.request = request
    if "set-cookie" in response.headers:  # the jar reads nothing else (Set-Cookie2 is off by default)
        jar.extract_cookies(response)
    return response


def _plain(client: httpx.AsyncClient) -> bool:
    """The client adds nothing to a request but its headers and timeouts (see the module docstring)."""
    hooks = client.event_hooks
    return not (
        client.auth is not None or hooks["request"] or hooks["response"] or client.params or client.follow_redirects
    )


def _attach(exc: httpx.RequestError, request: httpx.Request) -> None:
    """Give a transport's exception its request, as ``client.send`` does."""
    try:
        exc.request  # noqa: B018 - the property raises when no request was attached
    except RuntimeError:
        exc.request = request
