"""Sideband re-attach decisions, sans-IO: which sideband endings are worth a re-join, how a call's sideband ends
otherwise, and the re-join schedule.

A WebRTC call outlives its sideband (the API ends a call on hang-up, when its media goes, or at the session cap —
never because a control socket left), so a sideband lost *abnormally* while the call lives is joined again:

* **re-join**: a loss without a close frame (a reset, an EOF, a failed read or write) or a close with
  1001 (going away), 1006, 1011 (server error), 1012 (service restart) or 1013 (try again later) —
  except a 1001 whose reason is the session cap ("Your session hit the maximum duration of …"): that session is
  over, and the conversation ends with ``Closed("session_expired", 1001, …)`` (rtengine's own media peer rotates
  the call before the cap: :mod:`~rtengine.engine._redial`);
* **the call ended**: a clean close with 1000 — ``Closed("call_ended")``, no re-join;
* anything else (a 1009, other close codes) ends the conversation as on a plain websocket
  (:func:`~rtengine.protocol._brain.socket_end`).

A join — the first one or a re-join, of a SIP or a WebRTC call — answered 404 (``call_id_not_found``) means the
call is over (hung up, e.g. a caller who hangs up before the sideband joins): ``Closed("call_ended")``, no
``Error``, no retry (:func:`join_refused_ending`).

The schedule: the first re-join at once (a blip costs one handshake), then the backoff sleeps of
:func:`~rtengine.protocol._backoff.backoff` between attempts; ``attempts`` bounds the joins and ``deadline`` the
whole re-join (seconds from the loss).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

from ._backoff import backoff
from ._brain import is_session_cap, socket_end
from ._lifecycle import Closed, Error, SocketEnd

__all__ = [
    "DEFAULT_REJOIN_ATTEMPTS",
    "DEFAULT_REJOIN_DEADLINE",
    "REJOIN_CLOSE_CODES",
    "is_session_cap",
    "join_refused_ending",
    "rejoin_delays",
    "sideband_ending",
    "sideband_rejoinable",
]

#: Close codes after which a call's sideband is joined again.
REJOIN_CLOSE_CODES: Final = frozenset({1001, 1006, 1011, 1012, 1013})
#: Re-join attempts after one loss (0 turns re-attach off: a loss then ends the conversation as before).
DEFAULT_REJOIN_ATTEMPTS: Final = 5
#: Seconds from the loss within which the sideband must be back.
DEFAULT_REJOIN_DEADLINE: Final = 15.0


def sideband_rejoinable(end: SocketEnd) -> bool:
    """True when a call's sideband that ended like ``end`` should be joined again (see the module docstring)."""
    if not end.clean:
        return True
    if end.code == 1001 and is_session_cap(end.reason):
        return False
    return end.code in REJOIN_CLOSE_CODES


def sideband_ending(end: SocketEnd) -> tuple[Error | None, Closed]:
    """How a call's conversation ends when its sideband ended like ``end`` and is not joined again: a clean 1000
    means the call ended; the rest (the session cap's 1001 included: ``session_expired``) as
    :func:`~rtengine.protocol._brain.socket_end`."""
    if end.clean and end.code == 1000:
        return None, Closed("call_ended", 1000, end.reason)
    return socket_end(end)


def join_refused_ending(status: int | None, *, rejoin: bool = False) -> Closed | None:
    """How a conversation ends when a join of its call's sideband was refused with HTTP ``status``: a 404
    (``call_id_not_found``) means the call is gone — ``Closed("call_ended")``, not retried, no ``Error``; ``None``
    for any other refusal or failure (retried as usual)."""
    if status != 404:
        return None
    which = "re-join" if rejoin else "join"
    return Closed("call_ended", None, f"the call is gone (its sideband {which} answered 404)")


def rejoin_delays(attempts: int, base: float, rand: Callable[[], float] = random.random) -> list[float]:
    """The sleep before each of ``attempts`` re-joins: 0 for the first, then ``backoff(base, 1)``, … ."""
    if not 0 <= attempts <= 100:
        raise ValueError("attempts must be within 0..100")
    return [0.0 if n == 0 else backoff(base, n, rand) for n in range(attempts)]
