"""The inline step of a SIP conversation: accept the incoming call (instead of creating one).

``open_conversation(client, session, accept_call_id=…)`` posts ``…/{call_id}/accept`` with the session in the
caller's task; the block starts as soon as the accept is answered (time-to-accept is this transport's
time-to-answer), and the sideband then joins in the background through the WebRTC path's runner
(:func:`~rtengine.engine._start.launch`), with every engine guarantee: queued inputs, one ``Error`` then
``Closed("error")`` when the join fails, re-attach, the hang-up when the block is left (unless ``hangup=False``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

import trio

from ..protocol._calls import validate_call_id
from ..protocol._errors import CallRejected, RealtimeError, TransportError
from ._conversation import Conversation

if TYPE_CHECKING:
    from ..protocol._session import SessionConfig
    from ._seams import Endpoint
    from ._start import StartOptions

__all__ = ["accept_call"]

#: What the caller prepares from the conversation while the accept is in flight (the runner's jobs).
Plan = TypeVar("Plan")

log = logging.getLogger("rtengine")


async def accept_call(
    endpoint: Endpoint, session: SessionConfig, options: StartOptions, prepare: Callable[[Conversation], Plan]
) -> tuple[Conversation, Plan]:
    """Accept ``options.accept_call_id`` with ``session``: the conversation of the accepted call, no task yet, and
    what ``prepare(conv)`` made of it (the runner's jobs) — both while the accept is in flight, off the time to
    accept (or after its answer, for a call seam that never reports its body sent).

    Raises what the accept raises (:class:`~rtengine.InvalidCallId` before any request,
    :class:`~rtengine.CallNotFound`, :class:`~rtengine.CallRejected`, :class:`~rtengine.ConnectFailed`).
    Once the accept's body is out it may have gone through: when the accept is then cancelled, times out or loses
    its connection (:class:`~rtengine.TransportError`), or is answered 5xx (a gateway's 502/504: the API may have
    accepted it), the call is hung up (shielded, bounded, unless ``hangup=False``) before the error propagates;
    before the body is out, nothing is sent. Cancellation: as for any error once the body is out (the hang-up, then
    ``Cancelled``); before, ``Cancelled`` at once.
    """
    assert options.accept_call_id is not None
    call_id = validate_call_id(options.accept_call_id)
    headers = endpoint.auth_headers()
    started_at = trio.current_time()
    log.info("starting realtime conversation; accepting SIP call transport=sip call_id=%s", call_id)
    built: list[tuple[Conversation, Plan]] = []

    def build() -> None:  # while the accept is in flight: off the answer path
        if not built:
            caps = options.capacities
            conv = Conversation(endpoint, session, transport="sip", capacities=caps, started_at=started_at)
            conv.call_id = call_id
            conv.hangup = options.hangup
            conv._timeline.call_id = call_id
            built.append((conv, prepare(conv)))

    try:
        await endpoint.calls.accept(call_id, session, headers, on_sent=build)
    except (trio.Cancelled, TransportError, CallRejected) as exc:
        if built:  # the conversation exists (its telemetry span too) and will never run
            built[0][0]._timeline.never_ran(failed=not isinstance(exc, trio.Cancelled))
        ambiguous = not isinstance(exc, CallRejected) or exc.status >= 500
        if options.hangup and built and ambiguous:  # the body went out: the accept may have taken effect
            await _hang_up(endpoint, call_id, headers, exc)
        raise
    build()  # a call seam that never reported the body sent
    conv, plan = built[0]
    elapsed = conv._timeline.mark("answer")
    log.info("realtime SIP call accepted transport=sip call_id=%s elapsed_ms=%.0f", call_id, elapsed)
    return conv, plan


async def _hang_up(endpoint: Endpoint, call_id: str, headers: Mapping[str, str], cause: BaseException) -> None:
    """Hang up a call whose accept may have gone through (shielded, bounded); a failure is logged, not raised: the
    accept's own error is the one the caller sees."""
    what = "was cancelled" if isinstance(cause, trio.Cancelled) else f"failed ({type(cause).__name__})"
    with trio.CancelScope(shield=True), trio.move_on_after(endpoint.close_timeout + 1.0):
        try:
            await endpoint.calls.hangup(call_id, headers)
        except RealtimeError as exc:
            log.warning("could not hang up SIP call %s after its accept %s: %s", call_id, what, exc)
