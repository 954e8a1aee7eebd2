"""A browser-held or SIP call's session cap: rotation is impossible from the server (the browser or the caller's
phone holds the media), so the app is told ``rotate_margin`` seconds before the cap —
``Error("session_expiring", fatal=False)``, the conversation goes on — and the cap itself (the sideband closed with
1001 "Your session hit the maximum duration of …") ends the conversation with ``Closed("session_expired")``
(:func:`~rtengine.protocol._reattach.sideband_ending`). The warning is the conversation's alarm, not a task."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final

import trio

from ..protocol._lifecycle import Error

if TYPE_CHECKING:
    from ._conversation import Core
    from ._follow import Follow

__all__ = ["warn_expiry"]

log = logging.getLogger("rtengine")


#: What the app can do before the cap, by who holds the media: a browser re-offers (a new call); a phone call has
#: no offer to renew — the app can transfer it (``conv.refer``) or end it.
_ADVICE: Final = {
    False: "the media is the app's, so rtengine cannot rotate it: re-offer to carry on",
    True: "a SIP call cannot be moved to a new session: transfer it (conv.refer) or end it before then",
}


def warn_expiry(core: Core, *, sip: bool = False) -> None:
    """Announce the cap of the call's session when its rotation would be due (``core.follow``'s clock:
    ``rotate_margin`` before the cap). Once: a browser-held or SIP call has one session. No task: the conversation's
    alarm (:mod:`~rtengine.engine._alarm`) is set once the cap is known, and its ``fire`` delivers the warning
    without waiting (beyond the events capacity, like ``Started``: one event, once)."""
    follow: Follow | None = core.follow
    assert follow is not None

    def warn() -> None:
        clock = follow.clock
        left = max(0.0, (clock.expires or 0.0) - trio.current_time())
        log.warning("realtime session expiring in %.0f s call_id=%s", left, core.timeline.call_id)
        message = (
            f"the session reaches its cap in {left:.0f} s (at {time.time() + left:.0f}, unix time); {_ADVICE[sip]}"
        )
        core.outlet.put_now(Error(message, "session_expiring", fatal=False))

    def arm() -> None:
        due = follow.clock.due
        if due is not None:
            follow.on_change = None
            core.alarm.set(due, warn)

    follow.on_change = arm
