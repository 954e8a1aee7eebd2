"""The end of a response a session change cut mid-stream (sans-IO).

The app saw its ``response.created`` and maybe deltas; the server that produced it is gone (a rotation moved on, or
the socket was lost), so no ``response.done`` will ever come. Waiting for one would wait forever: rtengine ends it
itself, honestly — a ``ResponseDone`` with ``status="cancelled"``, whose ``status_details.reason`` says why
(``session_rotated`` or ``connection_lost``; the real API's own reasons are ``turn_detected``/``client_cancelled``).
"""

from __future__ import annotations

from typing import Final, Literal

from ._events import ResponseDone

__all__ = ["CUT_REASONS", "cut_response"]

#: Why a response was cut: the session rotated, or the socket was lost.
CUT_REASONS: Final = ("session_rotated", "connection_lost")


def cut_response(response_id: str | None, reason: Literal["session_rotated", "connection_lost"]) -> ResponseDone:
    """The ``ResponseDone`` that ends response ``response_id`` for the app, cut for ``reason``."""
    response = {
        "object": "realtime.response",
        "id": response_id,
        "status": "cancelled",
        "status_details": {"type": "cancelled", "reason": reason},
    }
    return ResponseDone(response_id, "cancelled", response)
