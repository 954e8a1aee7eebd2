"""A browser-held call's session cap: rotation is impossible from the server (the app holds the media), so the app
is told ``rotate_margin`` seconds before the cap — ``Error("session_expiring", fatal=False)``, the conversation
goes on — and the cap itself (the sideband closed with 1001 "Your session hit the maximum duration of …") ends the
conversation with ``Closed("session_expired")`` (:func:`~rtengine.protocol._reattach.sideband_ending`)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import trio

from ..protocol._expiry import until_margin
from ..protocol._lifecycle import Error

if TYPE_CHECKING:
    from ._conversation import Core

__all__ = ["warn_expiry"]

log = logging.getLogger("rtengine")


async def warn_expiry(margin: float, core: Core, task_status: trio.TaskStatus[None]) -> None:
    """The job that announces the cap of each session the call states (once per ``expires_at``)."""
    task_status.started()
    changed = trio.Event()

    def session_changed() -> None:
        changed.set()

    core.brain.on_session = session_changed
    warned: int | None = None
    while True:
        changed = trio.Event()
        expires_at = core.brain.expires_at
        if expires_at is None or expires_at == warned:
            await changed.wait()
            continue
        with trio.move_on_after(until_margin(expires_at, margin, time.time())):
            await changed.wait()
        if changed.is_set():
            continue
        warned = expires_at
        left = max(0.0, expires_at - time.time())
        log.warning("realtime session expiring in %.0f s call_id=%s", left, core.timeline.call_id)
        message = (
            f"the session reaches its cap in {left:.0f} s (expires_at {expires_at}); the media is the app's, so "
            "rtengine cannot rotate it: re-offer to carry on"
        )
        await core.outlet.forward(Error(message, "session_expiring", fatal=False))
