"""How a conversation's socket ending, and the session the server confirmed, read (sans-IO): :func:`socket_end`,
:func:`is_session_cap`, :func:`confirmed_output_format` (used by :class:`~rtengine.protocol._brain.Brain`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ._g711 import FORMAT_GEOMETRY
from ._lifecycle import Closed, Error, SocketEnd

__all__ = ["confirmed_output_format", "is_session_cap", "socket_end"]

_CAP_PREFIX: Final = "your session hit the maximum duration"


def is_session_cap(reason: str | None) -> bool:
    """The close reason the API gives at the session cap ("Your session hit the maximum duration of N minutes.")."""
    return reason is not None and reason.strip().lower().startswith(_CAP_PREFIX)


def socket_end(end: SocketEnd) -> tuple[Error | None, Closed]:
    """How a conversation ends when its socket ended: a close frame from the server is a clean end
    (``session_expired`` when it is the session cap's 1001); a frame over the size cap (1009) or a loss without a
    close frame is an error."""
    if end.clean and end.code == 1001 and is_session_cap(end.reason):
        return None, Closed("session_expired", 1001, end.reason)
    if end.code == 1009:
        message = "the server sent a message larger than max_message_size (closed with 1009)"
        return Error(message, "message_too_big"), Closed("error", 1009, end.reason)
    if end.clean:
        return None, Closed("transport_closed", end.code, end.reason)
    detail = end.detail or "the connection ended without a close frame"
    return Error(f"realtime connection lost: {detail}", "connection_lost"), Closed("error", end.code, end.reason)


def confirmed_output_format(session: Mapping[str, Any]) -> str | None:
    """The output audio format type a ``session.updated`` session states (``audio.output.format.type``), if any."""
    audio = session.get("audio")
    output = audio.get("output") if isinstance(audio, dict) else None
    fmt = output.get("format") if isinstance(output, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    return kind if kind in FORMAT_GEOMETRY else None
