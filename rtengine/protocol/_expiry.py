"""When to act before a session's cap, sans-IO: the margin option and the delay until it is time.

The API caps a session (60 minutes; its sideband is then closed with 1001 "Your session hit the maximum duration
of 60 minutes.") and states the cap as the session's ``expires_at`` (unix seconds) in ``session.created`` and
``session.updated``. ``rotate_margin`` seconds before it, rtengine acts: a call it is the media peer of is
re-dialed (:mod:`~rtengine.engine._redial`); a browser-held call gets ``Error("session_expiring", fatal=False)``
so the app can re-offer. ``None`` turns both off.
"""

from __future__ import annotations

import math
from typing import Final

from ._errors import ConfigError

__all__ = ["DEFAULT_ROTATE_MARGIN", "RESPONSE_WAIT", "check_margin", "response_wait", "until_margin"]

#: Seconds before ``expires_at`` at which a session is rotated (or its expiry announced).
DEFAULT_ROTATE_MARGIN: Final = 30.0
#: At most this long a rotation waits for the response in flight to end.
RESPONSE_WAIT: Final = 10.0


def check_margin(margin: float | None) -> float | None:
    """``margin`` if usable (``None``, or a finite number > 0); else :class:`~rtengine.ConfigError`."""
    if margin is not None and not (isinstance(margin, int | float) and 0 < margin < math.inf):
        raise ConfigError(f"rotate_margin must be None or a number of seconds > 0, got {margin!r}")
    return margin


def until_margin(expires_at: int, margin: float, now: float, began: float | None = None) -> float:
    """Seconds from ``now`` (unix time) until ``margin`` seconds before ``expires_at``; 0 when that has passed.

    With ``began`` (when the session began, unix time), never before half its life: a margin longer than a short
    cap would otherwise rotate again at once, forever."""
    at = expires_at - margin
    if began is not None:
        at = max(at, began + (expires_at - began) / 2)
    return max(0.0, at - now)


def response_wait(expires_at: int, now: float, *, bound: float = RESPONSE_WAIT, spare: float = 1.0) -> float:
    """How long a rotation may wait for the response in flight: ``bound``, but never past ``spare`` seconds before
    the cap (the rotation itself needs that much)."""
    return max(0.0, min(bound, expires_at - spare - now))
