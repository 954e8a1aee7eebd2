"""The web app's front door: requests reach it only for the origin it serves, and conversations are capped.

* **Host** (DNS rebinding): every request's ``Host`` must name this server — ``127.0.0.1``, ``localhost`` or
  ``[::1]``, the bound address when it is a specific one, or a name given with ``--allow-host`` — with the port the
  request arrived on. Anything else gets ``421`` before any route runs.
* **Origin** (cross-site requests, cross-site websocket hijacking): a request that carries an ``Origin`` must come
  from ``http(s)://`` + its own ``Host``. A websocket handshake and any method other than ``GET``/``HEAD`` must carry
  one. Anything else gets ``403``.
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

__all__ = ["LOOPBACK_NAMES", "Caps", "SameOriginGuard", "check_request", "is_loopback", "served_names"]

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
    """The host names (without port) a request may address: loopback names, a specific bound address, ``allowed``."""
    names = set(LOOPBACK_NAMES) | {name.lower() for name in allowed}
    if bind_host not in ("0.0.0.0", "::", ""):
        names.add(f"[{bind_host}]" if ":" in bind_host else bind_host.lower())
    return frozenset(names)


def check_request(
    *, host: str | None, origin: str | None, method: str, websocket: bool, port: int, names: frozenset[str]
) -> tuple[int, str, str] | None:
    """None when the request may go on, else ``(status, code, message)`` for the refusal."""
    hosts = {f"{name}:{port}" for name in names}
    if port == 80:
        hosts |= names
    if host is None or host.lower() not in hosts:
        return 421, "unknown_host", "this server does not serve that host name"
    if origin is None:
        if websocket or method not in SAFE_METHODS:
            return 403, "origin_required", "this request must come from the app's own page (no Origin header)"
        return None
    if origin.lower() not in (f"http://{host.lower()}", f"https://{host.lower()}"):
        return 403, "cross_origin", "requests from other sites are refused"
    return None


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"message": message, "code": code}}).encode()


class SameOriginGuard:
    """ASGI middleware applying :func:`check_request` to every HTTP request and websocket handshake."""

    def __init__(self, app: ASGIApp, names: frozenset[str]) -> None:
        self.app = app
        self.names = names
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
