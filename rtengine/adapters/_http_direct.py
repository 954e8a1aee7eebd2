"""The pooled httpx client rtengine builds, and the short way its requests take to the connection pool.

Theory of operation
-------------------
``httpx.AsyncClient.send`` spends, per request, as much CPU as a loopback exchange itself: URL and header merging,
the cookie jar (a ``urllib`` request is built to extract cookies from every response), the auth flow and redirect
generators, event hooks, a log line. For a client with none of these configured, all that work ends in one call:
``transport.handle_async_request(request)`` (public httpx API) on the client's connection pool. :class:`Poster`
makes that call itself when it is known to be what the client would do, and gives the request what the client
would have: its default headers merged under the caller's (HTTP precedence as ``build_request``), ``Host`` and
``Content-Length``, the client's timeouts as the ``timeout`` extension, the jar's cookies for the URL (an API behind a
CDN may set some), and any ``Set-Cookie`` of the answer stored in the jar — the same bytes on the wire.
Measured on a loopback POST: ≈175 µs of CPU less per request (of ≈860).

It is known only for a client built by :func:`pooled_client` whose transport it returned — every URL then goes to
that transport: when no proxy is configured in the environment (httpx mounts a proxy transport per
``HTTP(S)_PROXY``/``ALL_PROXY``; then there is no short way and the client is asked), or when the transport was
given (httpx ignores the environment's proxies then). And only while the client still has no auth, no event hook,
no default query parameter, no redirect following and no credentials in the URL, and is open: each is
checked per request (a few attribute reads), and any of them sends the request through ``client.send`` instead,
exactly as before. The one visible difference: httpx's own ``INFO`` line per request ("HTTP Request: …") is not
logged on the short way.

Exceptions are unchanged: the transport raises the same httpx exceptions (with the request attached, as the client
does), and :func:`~rtengine.adapters._http_calls._translate` stays the one place they become rtengine errors.
Cancellation: as ``client.send`` (the transport is the part that does the I/O in both): the request is abandoned
and its connection closed by httpcore.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final
from urllib.request import getproxies

import httpx

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


class _Prepared:
    """The header list and extensions of requests with one headers mapping and content type on one client."""

    __slots__ = ("client_headers", "complete", "extensions", "raw", "timeout")

    def __init__(self, client: httpx.AsyncClient, headers: Mapping[str, str], content_type: str | None) -> None:
        self.client_headers = client.headers.raw
        self.timeout = client.timeout
        merged = httpx.Headers(client.headers)  # as ``build_request``: the caller's headers over the client's
        merged.update(headers)
        if content_type is not None:
            merged["content-type"] = content_type
        self.raw = merged.raw
        self.extensions = {"timeout": client.timeout.as_dict()}
        #: (Host, Content-Length) → every header of such a request (a request copies it: a list copy).
        self.complete: dict[tuple[bytes, int | None], httpx.Headers] = {}

    def headers(self, netloc: bytes, length: int | None) -> httpx.Headers:
        """As httpx's ``Request(content=…)`` orders them: Host first, the merged headers, then Content-Length
        (``length`` None: left out)."""
        key = (netloc, length)
        headers = self.complete.get(key)
        if headers is None:
            if len(self.complete) >= _KEPT:
                self.complete.clear()
            raw = [(b"Host", netloc), *self.raw]
            if length is not None:
                raw.append((b"Content-Length", b"%d" % length))
            headers = self.complete[key] = httpx.Headers(raw)
        return headers

    def fits(self, client: httpx.AsyncClient) -> bool:
        return client.timeout is self.timeout and client.headers.raw == self.client_headers


class Poster:
    """POSTs on the pooled client: through ``transport()`` when that is what the client would do (see the module
    docstring), else through ``client.send``. The response is streamed (the caller reads and closes it).

    ``transport`` returns the transport :func:`pooled_client` gave with the client ``http`` returns, or None (a
    client rtengine did not build, a proxied one). The merged headers are kept per read-only headers mapping (the
    engine's are one per client); any other mapping is merged per request."""

    __slots__ = ("_http", "_prepared", "_transport")

    def __init__(
        self,
        http: Callable[[], httpx.AsyncClient],
        transport: Callable[[], httpx.AsyncBaseTransport | None] | None = None,
    ) -> None:
        self._http = http
        self._transport = transport
        #: (id of the headers mapping, content type) → (that mapping, kept alive so its id stays its own; prepared).
        self._prepared: dict[tuple[int, str | None], tuple[Mapping[str, str], _Prepared]] = {}

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
        transport = self._transport() if self._transport is not None else None
        if transport is not None and _plain(client):
            target = httpx.URL(url)
            if not target.userinfo:  # credentials in the URL: the client would add basic auth
                prepared = self._prepare(client, headers, content_type)
                return await _direct(client, transport, target, prepared, body, on_written)
        if content_type is not None:
            headers = {**headers, "content-type": content_type}
        request = client.build_request("POST", url, content=body, headers=headers)
        request.stream = _BodyStream(body, on_written)  # not an async generator (see rtengine.adapters._http)
        return await client.send(request, stream=True)

    def _prepare(self, client: httpx.AsyncClient, headers: Mapping[str, str], content_type: str | None) -> _Prepared:
        if not isinstance(headers, MappingProxyType):  # may change under the same identity: merged afresh
            return _Prepared(client, headers, content_type)
        key = (id(headers), content_type)
        kept = self._prepared.get(key)
        if kept is not None and kept[1].fits(client):
            return kept[1]
        if len(self._prepared) >= _KEPT:
            self._prepared.clear()
        prepared = _Prepared(client, headers, content_type)
        self._prepared[key] = (headers, prepared)
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
    if jar:  # as build_request does: the jar's cookies for this URL, then Content-Length
        headers, extensions = prepared.headers(url.netloc, None), prepared.extensions
        request = httpx.Request("POST", url, headers=headers, cookies=jar, stream=stream, extensions=extensions)
        request.headers["Content-Length"] = str(len(body))
    else:
        headers = prepared.headers(url.netloc, len(body))
        request = httpx.Request("POST", url, headers=headers, stream=stream, extensions=prepared.extensions)
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
        client.is_closed
        or client.auth is not None
        or hooks["request"]
        or hooks["response"]
        or client.params
        or client.follow_redirects
    )


def _attach(exc: httpx.RequestError, request: httpx.Request) -> None:
    """Give a transport's exception its request, as ``client.send`` does."""
    try:
        exc.request  # noqa: B018 - the property raises when no request was attached
    except RuntimeError:
        exc.request = request
