"""What a re-joined sideband is sent besides the buffered inputs, sans-IO: the session and the owed response.

Theory of operation. A call has one session and one conversation, seen through several views (its data channel,
every sideband). When rtengine's sideband is lost and joined again, the other views may have changed the session
during the gap, and the events of the gap never reached rtengine (a ``response.created``, a ``response.done``).

* **The session** (:class:`SessionLedger`). The server keeps the call's session across sidebands, so a re-join
  sends only what rtengine applied and the server never confirmed: once a ``session.updated`` followed rtengine's
  last ``session.update`` carrying fields, the re-join's ``session.update`` carries none (``{"type": …}`` only —
  it still comes first on the socket, and its ``session.updated`` shows the current session); before that, it
  carries rtengine's session again. It never carries a field another view set, so it cannot undo that view's
  change, nor be refused for it (the voice, once the assistant has spoken). Should the server refuse it all the
  same, the refusal is a non-fatal ``Error``: the call is healthy, and only the re-join's update was not applied.
* **The owed response** (:func:`with_response`). A ``response.create`` that was owed (deferred), or written or
  taken but never acknowledged by a ``response.created``, may have been lost with the socket (written into a
  connection the server had already dropped). It is sent again on the new socket, in the place of the first
  create the lost socket left unwritten (after the inputs that preceded it), else after the carried inputs. If
  the server did get the first one, its response is active and the repeat is refused with the active-response
  error: the repeat then adopts that response instead of deferring a second one (nothing is requested twice).
  Limit: a first create the server got *and* whose response ended during the gap is not visible on the new
  socket; the repeat then starts a second response (at least once, never silently lost).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._payloads import response_create

__all__ = ["SessionLedger", "session_fields", "with_response", "without_responses"]

Payload = dict[str, Any]


def session_fields(payload: Payload) -> bool:
    """True when ``payload`` is a ``session.update`` that sets fields (more than the session ``type``)."""
    if payload.get("type") != "session.update":
        return False
    session = payload.get("session")
    return isinstance(session, dict) and bool(set(session) - {"type"})


class SessionLedger:
    """Whether the server confirmed rtengine's last session change, and which ``session.update`` a re-join sent."""

    __slots__ = ("_rejoin", "confirmed")

    def __init__(self) -> None:
        #: A ``session.updated`` arrived after rtengine's last ``session.update`` that set fields.
        self.confirmed = False
        self._rejoin: Payload | None = None

    def stamped(self, payload: Payload) -> None:
        """``payload`` is about to be written: a ``session.update`` setting fields is unconfirmed until answered."""
        if session_fields(payload):
            self.confirmed = False

    def updated(self) -> None:
        """A ``session.updated`` arrived: rtengine's last change was applied (the server answers in order)."""
        self.confirmed = True

    def rejoin_update(self, applied: Payload) -> Payload:
        """The ``session.update`` for a re-joined socket, given ``applied`` (rtengine's own ``session.update``)."""
        session = applied["session"]
        if self.confirmed:
            payload: Payload = {"type": "session.update", "session": {"type": session.get("type", "realtime")}}
        else:
            payload = {"type": "session.update", "session": dict(session)}
        self._rejoin = payload
        return payload

    def is_rejoin_update(self, event_id: str | None) -> bool:
        """``event_id`` names the ``session.update`` of the latest re-join (once stamped)."""
        return event_id is not None and self._rejoin is not None and self._rejoin.get("event_id") == event_id


def without_responses(carried: Sequence[Payload]) -> tuple[tuple[Payload, ...], int | None]:
    """``carried`` without its ``response.create`` payloads, and where the first of them stood (None: none)."""
    rest: list[Payload] = []
    first: int | None = None
    for payload in carried:
        if payload.get("type") == "response.create":
            if first is None:
                first = len(rest)
        else:
            rest.append(payload)
    return tuple(rest), first


def with_response(carried: Sequence[Payload], owed: bool) -> tuple[tuple[Payload, ...], Payload | None]:
    """The control payloads for a re-joined socket: ``carried`` (what the lost socket took and did not write), with
    its creates replaced by one ``response.create`` when ``owed`` (see the module docstring); and that create."""
    rest, first = without_responses(carried)
    if not owed and first is None:
        return rest, None
    create = response_create()
    at = len(rest) if first is None else first
    return (*rest[:at], create, *rest[at:]), create
