"""``rtengine web [--workers N]``: run the web app in one process, or in N worker processes sharing one socket.

One worker runs in this process (``hypercorn.trio.serve``, stopped by our own shutdown trigger, which ends every
page session first so each page sees ``closed`` at once). Several workers run under ``hypercorn.run`` with the trio
worker class: the parent binds the socket (so a busy port is a one-line error and the URL printed is the real one),
hands it to the spawned workers and, on Ctrl-C or SIGTERM, sets the shared shutdown event; each worker stops
accepting, gives its open sessions hypercorn's graceful timeout (2 s), then its lifespan closes the conversations
still open (the pages show "disconnected"), and the parent returns once every worker has exited. The workers ignore
SIGINT themselves (hypercorn sets that up), so one Ctrl-C in a terminal is one orderly shutdown, not N tracebacks.
We use hypercorn's supervisor rather than our own SO_REUSEPORT one because it already does exactly this (spawned
workers, a shared listening socket, one shutdown event) and ends cleanly on Ctrl-C.

Each worker holds the conversations of the page sessions it accepted; without ``--base-url`` each worker embeds its
own local realtime server. The workers read their settings from ``RTENGINE_WEB_SETTINGS`` (JSON, no secrets: the API
key stays in ``$OPENAI_API_KEY``).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Final

import trio

from .. import RealtimeClient, RealtimeError, SessionConfig
from ..protocol import redact_url
from ..server import ServerOptions, open_local_server
from ._demo import tls_context
from ._web import WebApp, WebLimits, hypercorn_config, open_web_app
from ._web_clients import TrustedProxies
from ._web_guard import is_loopback, served_names

__all__ = ["add_web_arguments", "app_from_environment", "web_main"]

SETTINGS_ENV: Final = "RTENGINE_WEB_SETTINGS"
INSTRUCTIONS: Final = "You are the rtengine web demo. Answer in one short sentence."
LOCAL_KEY: Final = "sk-local-web"
#: What binding a listening socket fails with when the address is taken, not this machine's or not allowed.
BIND_ERRNOS: Final = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


@dataclass(frozen=True)
class WebSettings:
    """What a worker needs to build the app (JSON-able; never a secret)."""

    host: str = "127.0.0.1"
    base_url: str | None = None
    ca_file: str | None = None
    allow_hosts: tuple[str, ...] = ()
    forwarded_allow_ips: tuple[str, ...] = ()
    max_calls: int = 32
    max_calls_per_client: int = 4

    @property
    def limits(self) -> WebLimits:
        return WebLimits(self.max_calls, self.max_calls_per_client)


@asynccontextmanager
async def _provide(settings: WebSettings) -> AsyncIterator[tuple[RealtimeClient, SessionConfig]]:
    """The client (against ``--base-url``, or an embedded local server) and the session every call gets."""
    async with AsyncExitStack() as stack:
        if settings.base_url is None:
            server = await stack.enter_async_context(open_local_server(ServerOptions(api_key=LOCAL_KEY)))
            client = RealtimeClient(server.base_url, api_key=LOCAL_KEY)
        else:
            client = RealtimeClient(settings.base_url, ssl_context=tls_context(settings.ca_file))
            client.auth_headers()  # fail now, not on the first call, when $OPENAI_API_KEY is missing
        await stack.enter_async_context(client)
        yield client, SessionConfig(instructions=INSTRUCTIONS)


def app_from_environment() -> object:
    """The ASGI app of one worker process (hypercorn loads ``rtengine.apps._web_cli:app_from_environment()``)."""
    raw = json.loads(os.environ[SETTINGS_ENV])
    tuples = {name: tuple(raw.get(name, ())) for name in ("allow_hosts", "forwarded_allow_ips")}
    settings = WebSettings(**{**raw, **tuples})
    web = WebApp(
        lambda: _provide(settings),
        names=served_names(settings.host, settings.allow_hosts),
        limits=settings.limits,
        allowed=frozenset(settings.allow_hosts),
        proxies=TrustedProxies(settings.forwarded_allow_ips),
    )
    return web.asgi


def _warning(host: str) -> str | None:
    if is_loopback(host):
        return None
    return (
        f"WARNING: rtengine web is listening on {host}, not only on this machine: anyone who can reach it can start "
        "calls billed to your API key. Put it behind authentication, or bind 127.0.0.1 (the default). Pages must "
        "address it by a name given with --allow-host."
    )


async def _serve_here(settings: WebSettings, port: int) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with (
            _provide(settings) as (client, session),
            open_web_app(
                client,
                session,
                host=settings.host,
                port=port,
                limits=settings.limits,
                allow_hosts=settings.allow_hosts,
                forwarded_allow_ips=settings.forwarded_allow_ips,
            ) as app,
        ):
            _announce(settings, app.port, 1, client.base_url)
            async for _ in signals:
                break


def _announce(settings: WebSettings, port: int, workers: int, provider: str | None) -> None:
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    where = f"provider {redact_url(provider)}" if provider else "an embedded local server per worker"
    plural = "worker" if workers == 1 else "workers"
    print(f"rtengine web on http://{shown}:{port}/ ({workers} {plural}, {where})", flush=True)


def _serve_workers(settings: WebSettings, port: int, workers: int) -> int:
    from hypercorn.run import run

    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, port))
        bound = sock.getsockname()[1]
    except BaseException:
        sock.close()
        raise
    config = hypercorn_config(settings.host, port)
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns (and closes) the socket from here on
    config.application_path = "rtengine.apps._web_cli:app_from_environment()"
    config.worker_class = "trio"
    config.workers = workers
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
    _announce(settings, bound, workers, settings.base_url)
    return run(config)


def add_web_arguments(web: argparse.ArgumentParser) -> None:
    web.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    web.add_argument(
        "--port", type=port_number, default=8080, help="port to bind, 0 to 65535 (default: 8080; 0 picks a free one)"
    )
    web.add_argument("--workers", type=int, default=1, help="worker processes sharing the port (default: 1)")
    web.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a public name pages may use, e.g. a reverse proxy's (repeatable): NAME matches the Host NAME, NAME:80, "
        "NAME:443 and NAME:<bound port>; NAME:PORT matches exactly that",
    )
    web.add_argument(
        "--forwarded-allow-ips",
        type=_proxy_list,
        default=(),
        metavar="IPS",
        help="comma-separated proxy addresses (IPs, CIDR networks, or *) whose Forwarded / X-Forwarded-For headers "
        "name the real client for the per-client cap (default: none; headers from anyone else are ignored)",
    )
    web.add_argument("--max-calls", type=int, default=32, help="calls per worker at a time (default: 32)")
    web.add_argument("--max-calls-per-client", type=int, default=4, help="calls per client address (default: 4)")
    web.add_argument(
        "--base-url", help="the realtime provider (default: an embedded local server; else $OPENAI_API_KEY)"
    )
    web.add_argument("--ca-file", help="trust this CA (PEM) for the provider's TLS, instead of the system's CAs")


def port_number(value: str) -> int:
    """An argparse ``type``: a TCP port, 0 to 65535 (else a usage error, exit status 2)."""
    try:
        port = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from exc
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be within 0..65535, got {value!r}")
    return port


def _proxy_list(value: str) -> tuple[str, ...]:
    entries = tuple(entry.strip() for entry in value.split(",") if entry.strip())
    try:
        TrustedProxies(entries)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an IP address, a network or *: {exc}") from exc
    return entries


def web_main(args: argparse.Namespace) -> int:
    """Run ``rtengine web``: 0 after Ctrl-C, 1 with one line on stderr when it cannot start, 2 for bad arguments."""
    if args.workers < 1 or args.max_calls < 1 or args.max_calls_per_client < 1:
        print("rtengine web: --workers, --max-calls and --max-calls-per-client must be at least 1", file=sys.stderr)
        return 2
    settings = WebSettings(
        host=args.host,
        base_url=args.base_url,
        ca_file=args.ca_file,
        allow_hosts=tuple(args.allow_host),
        forwarded_allow_ips=args.forwarded_allow_ips,
        max_calls=args.max_calls,
        max_calls_per_client=args.max_calls_per_client,
    )
    warning = _warning(args.host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    try:
        if args.workers == 1:
            trio.run(_serve_here, settings, args.port)
            return 0
        return _serve_workers(settings, args.port, args.workers)
    except (OSError, BaseExceptionGroup) as exc:
        failure = _only(exc)
        if not isinstance(failure, OSError) or failure.errno not in BIND_ERRNOS:
            raise
        print(f"rtengine web: cannot listen on {args.host}:{args.port}: {failure.strerror or failure}", file=sys.stderr)
        return 1
    except RealtimeError as exc:
        print(f"rtengine web: {exc}", file=sys.stderr)
        return 1


def _only(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
