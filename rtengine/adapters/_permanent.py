"""Which connection failures another attempt cannot fix (they are not retried).

A host name that does not resolve (``EAI_NONAME``: the name does not exist; a temporary resolver failure,
``EAI_AGAIN``, is retried), a TLS handshake the two sides cannot complete (no common protocol version, a certificate
that does not verify), and an address the socket layer refuses outright (a port outside 0..65535). Retrying these
only delays the same error; timeouts, refused and reset connections stay transient.
"""

from __future__ import annotations

import socket
import ssl
from typing import Final

from ..protocol._util import causes

__all__ = ["is_permanent"]

#: ``getaddrinfo`` answers that mean the name cannot resolve, now or later.
_NO_SUCH_NAME: Final = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None), socket.EAI_SERVICE) if code is not None
)


def is_permanent(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a failure another attempt cannot fix (see the module docstring)."""
    for cause in causes(exc):
        if isinstance(cause, socket.gaierror):
            return cause.errno in _NO_SUCH_NAME
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return True
        if isinstance(cause, OverflowError | ValueError):
            return True
    return False
