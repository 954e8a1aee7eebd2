"""``rtengine serve`` (and the address check of ``rtengine web``, which runs in :mod:`._web_cli`): the commands that
listen, and the check of their address.

The address is checked before anything starts (:func:`check_bindable`): a port in use, a host that is not this
machine's or that does not resolve is one line on stderr and exit status 1, never a traceback. Both commands run
until SIGINT or SIGTERM and then leave their blocks (every connection and call closed) and exit 0.
"""

from __future__ import annotations

import errno
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Final, TypeVarTuple

import trio

from ..protocol import redact_url
from ..server import ServerOptions, open_local_server

Ts = TypeVarTuple("Ts")

__all__ = ["check_bindable", "refuse_unbindable", "run_listening", "serve"]

#: What binding a listening socket fails with when the address is taken, not this machine's or not allowed.
_BIND_ERRNOS: Final = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


async def serve(options: ServerOptions) -> None:
    """Run the local realtime server until SIGINT/SIGTERM; print its base URL once it listens."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_local_server(options) as server:
            print(server.base_url, flush=True)
            if options.sip_webhook:
                ringing = redact_url(options.sip_webhook)
                print(f"ringing {ringing} ({options.sip.calls} simulated SIP call(s))", flush=True)
            async for _ in signals:
                break


def check_bindable(host: str, port: int) -> None:
    """Raise ``OSError`` when a listener cannot bind ``host:port`` (bind a socket there, and close it at once)."""
    if not 0 <= port <= 65535:
        raise OSError(errno.EINVAL, "the port must be within 0..65535")
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as trio's listeners do
            probe.bind(address)


def _bind_error(exc: BaseException) -> OSError | None:
    """The bind failure ``exc`` is (or a group holds as its only failure), else None."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, socket.gaierror) or (isinstance(exc, OSError) and exc.errno in _BIND_ERRNOS):
        return exc
    return None


def refuse_unbindable(command: str, host: str, port: int) -> int | None:
    """1 with one line on stderr when ``host:port`` cannot be bound, else None (go on)."""
    try:
        check_bindable(host, port)
    except OSError as exc:
        return _cannot_listen(command, host, port, exc)
    return None


def run_listening(command: str, host: str, port: int, run: Callable[[*Ts], Awaitable[None]], *args: *Ts) -> int:
    """``trio.run(run, *args)`` for a command that listens on ``host:port``, its address checked first: 0 once it
    ends, 1 with one line on stderr when the address cannot be bound, any other failure raised as is."""
    try:
        check_bindable(host, port)
    except OSError as exc:
        return _cannot_listen(command, host, port, exc)
    try:
        trio.run(run, *args)
    except (OSError, BaseExceptionGroup) as exc:
        failure = _bind_error(exc)
        if failure is None:
            raise
        return _cannot_listen(command, host, port, failure)
    return 0


def _cannot_listen(command: str, host: str, port: int, failure: OSError) -> int:
    reason = failure.strerror or str(failure)
    print(f"rtengine {command}: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
    return 1
