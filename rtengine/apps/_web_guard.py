"""The web app's front door: requests reach it only for the origin it serves, and conversations are capped.

* **Host** (DNS rebinding): every request's ``Host`` must name this server. ``127.0.0.1``, ``localhost``,
  ``[::1]`` and the bound address (when it is a specific one) are addressed directly, so they must carry the port
  the request arrived on (bare only on port 80). A name given with ``--allow-host NAME`` is the public name of a
  reverse proxy in front of the app (TLS on 443, the ``Host`` forwarded as the browser sent it), so it matches
  ``NAME``, ``NAME:80``, ``NAME:443`` and ``NAME:<bound port>``; ``--allow-host NAME:PORT`` matches exactly
  ``NAME:PORT`` (a proxy on another public port). Anything else gets ``421`` before any route runs.
* **Origin** (cross-site requests, cross-site websocket hijacking): a request that carries an ``Origin`` must come
  from ``http(s)://`` + its own ``Host`` (a default port, ``:80`` for http or ``:443`` for https, may be left out,
  as browsers do). A websocket handshake and any method other than ``GET``/``HEAD`` must carry one. Anything else
  gets ``403``.
* **Caps**: :class:`Caps` counts the page sessions (each holds at most one conversation) per client address and in
  total; the session route refuses the handshake with ``429`` / ``503`` past them.

Every response also says which worker process served it (``x-rtengine-worker``), so a deployment with several
workers can be inspected from the browser.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "LOOPBACK_NAMES",
    "Caps",
    "SameOriginGuard",
    "check_request",
    "host_allowed",
    "is_loopback",
    "same_origin",
    "served_names",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The names a browser on this machine uses for a loopback server.
LOOPBACK_NAMES: Final = frozenset({"127.0.0.1", "localhost", "[::1]"})
#: Methods a cross-site page can trigger without CORS that change nothing here.
SAFE_METHODS: Final = frozenset({"GET", "HEAD"})
WORKER_HEADER: Final = b"x-rtengine-worker"
#: The ASGI messages that start a response (and carry its headers).
STARTS: Final = frozenset({"http.response.start", "websocket.http.response.start", "websocket.accept"})


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the app reachable from this machine only."""
    return host in LOOPBACK_NAMES or host in ("::1", "127.0.0.1") or host.startswith("127.")


def served_names(bind_host: str, allowed: Iterable[str] = ()) -> frozenset[str]:
    """The host names (without port) addressed directly: loopback names and a specific bound address (the
    ``--allow-host`` names are matched by :func:`check_request`'s ``allowed``; ``allowed`` here is kept for
    callers that list them, each one without a port added too)."""
    names = set(LOOPBACK_NAMES) | {name.lower() for name in allowed if not _has_port(name)}
    if bind_host not in ("0.0.0.0", "::", ""):
        names.add(f"[{bind_host}]" if ":" in bind_host else bind_host.lower())
    return frozenset(names)


def _has_port(entry: str) -> bool:
    head, colon, port = entry.rpartition(":")
    return bool(colon) and port.isdigit() and not head.endswith(":") and (":" not in head or head.endswith("]"))


def host_allowed(host: str, port: int, names: frozenset[str], allowed: frozenset[str] = frozenset()) -> bool:
    """Whether a request's ``Host`` names this server (the rule of the module docstring)."""
    host = host.lower()
    if host in {f"{name}:{port}" for name in names} or (port == 80 and host in names):
        return True
    for entry in allowed:
        entry = entry.lower()
        if host == entry or (not _has_port(entry) and host in (f"{entry}:80", f"{entry}:443", f"{entry}:{port}")):
            return True
    return False


def same_origin(origin: str, host: str) -> bool:
    """Whether ``origin`` is ``http(s)://`` + ``host``, a default port (``:80``/``:443``) optional in ``host``."""
    origin, host = origin.lower(), host.lower()
    for scheme, default in (("http", ":80"), ("https", ":443")):
        if origin == f"{scheme}://{host}" or (
            host.endswith(default) and origin == f"{scheme}://{host[: -len(default)]}"
        ):
            return True
    return False


def check_request(
    *,
    host: str | None,
    origin: str | None,
    method: str,
    websocket: bool,
    port: int,
    names: frozenset[str],
    allowed: frozenset[str] = frozenset(),
) -> tuple[int, str, str] | None:
    """None when the request may go on, else ``(status, code, message)`` for the refusal. ``names``: the names
    addressed directly (:func:`served_names`); ``allowed``: the ``--allow-host`` entries."""
    if host is None or not host_allowed(host, port, names, allowed):
        return 421, "unknown_host", "this server does not serve that host name"
    if origin is None:
        if websocket or method not in SAFE_METHODS:
            return 403, "origin_required", "this request must come from the app's own page (no Origin header)"
        return None
    if not same_origin(origin, host):
        return 403, "cross_origin", "requests from other sites are refused"
    return None


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"message": message, "code": code}}).encode()


class SameOriginGuard:
    """ASGI middleware applying :func:`check_request` to every HTTP request and websocket handshake."""

    def __init__(self, app: ASGIApp, names: frozenset[str], allowed: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.names, self.allowed = names, allowed
        self.worker = str(os.getpid()).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value.decode("latin-1") for name, value in scope["headers"]}
        server = scope.get("server") or ("", 0)
        method = scope.get("method", "GET")
        refusal = check_request(
            host=headers.get(b"host"),
            origin=headers.get(b"origin"),
            method=method,
            websocket=scope["type"] == "websocket",
            port=int(server[1] or 0),
            names=self.names,
            allowed=self.allowed,
        )
        if refusal is not None:
            await self._refuse(scope, send, *refusal)
            return

        async def send_marked(message: Message) -> None:
            if (
                message["type"] in ("http.response.start", "websocket.http.response.start")
                or message["type"] == "websocket.accept"
            ):
                message["headers"] = [*message.get("headers", []), (WORKER_HEADER, self.worker)]
            await send(message)

        await self.app(scope, receive, send_marked)

    async def _refuse(self, scope: Scope, send: Send, status: int, code: str, message: str) -> None:
        body = _error_body(code, message)
        headers = [(b"content-type", b"application/json"), (WORKER_HEADER, self.worker)]
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elif "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:  # a server without denial responses: closing before accepting refuses with 403
            await send({"type": "websocket.close", "code": 1008, "reason": code})


@dataclass
class Caps:
    """Page sessions per client address and in total (one worker's share)."""

    total: int
    per_client: int
    by_client: Counter[str] = field(default_factory=Counter)

    def refusal(self, client: str) -> tuple[int, str, str] | None:
        """None when ``client`` may open one more session, else ``(status, code, message)``."""
        if self.by_client[client] >= self.per_client:
            return 429, "too_many_calls", f"at most {self.per_client} calls per client at a time"
        if sum(self.by_client.values()) >= self.total:
            return 503, "server_full", f"the app holds its maximum of {self.total} calls; try again later"
        return None

    def take(self, client: str) -> None:
        self.by_client[client] += 1

    def give_back(self, client: str) -> None:
        self.by_client[client] -= 1
        if self.by_client[client] <= 0:
            del self.by_client[client]
