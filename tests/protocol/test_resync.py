"""What a re-joined sideband is sent besides the buffered inputs (sans-IO): the session update and the owed
response (``rtengine/protocol/_resync.py`` and the brain's use of it)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rtengine import ConversationStats, ErrorClass
from rtengine.events import Error, ResponseCreated, ResponseDone, SessionUpdated
from rtengine.protocol._brain import Brain, RequestResponse, SendText, SendToolOutput
from rtengine.protocol._events import ServerErrorEvent
from rtengine.protocol._payloads import response_create, user_text
from rtengine.protocol._resync import with_response

APPLIED: dict[str, Any] = {"type": "session.update", "session": {"type": "realtime", "instructions": "mine"}}
ACTIVE = "conversation_already_has_active_response"


def brain() -> Brain:
    return Brain(ConversationStats(), truncate=False, id_prefix="t_")


def types(payloads: tuple[dict[str, Any], ...]) -> list[str]:
    return [p["type"] for p in payloads]


def refusal(payload: dict[str, Any], code: str, error_class: ErrorClass) -> ServerErrorEvent:
    return ServerErrorEvent("refused", code, error_event_id=payload["event_id"], error_class=error_class)


def test_a_confirmed_session_is_not_sent_again_on_a_rejoin() -> None:
    b = brain()
    b.stamp(dict(APPLIED))
    assert b.rejoin_update(APPLIED)["session"] == APPLIED["session"]  # never confirmed: the server may not have it
    b.server_event(SessionUpdated("sess_1", "mine"))
    update = b.stamp(b.rejoin_update(APPLIED))
    assert update["session"] == {"type": "realtime"}  # nothing another view could have changed is overwritten
    b.server_event(SessionUpdated("sess_1", "set by another view"))
    assert b.rejoin_update(APPLIED)["session"] == {"type": "realtime"}  # a field-less update confirms nothing new


def test_a_refused_rejoin_session_update_is_not_fatal_but_the_first_one_is() -> None:
    b = brain()
    first = b.stamp(dict(APPLIED))
    fatal = b.server_event(refusal(first, "invalid_value", ErrorClass.FATAL))
    assert fatal.end is not None
    assert fatal.end[0] is not None
    assert fatal.end[0].fatal
    update = b.stamp(b.rejoin_update(APPLIED))
    reaction = b.server_event(refusal(update, "invalid_value", ErrorClass.FATAL))
    assert reaction.end is None
    assert isinstance(reaction.deliver, Error)
    assert not reaction.deliver.fatal
    assert reaction.deliver.request_type == "session.update"


def test_a_create_written_and_never_acknowledged_is_sent_again_after_a_rejoin() -> None:
    b = brain()
    item, create = b.command(SendToolOutput("call_1", "42"))
    b.stamp(item)
    b.stamp(create)  # written; the socket was lost before the server read it
    control = b.rejoined()
    assert types(control) == ["response.create"]
    b.stamp(control[0])
    b.server_event(ResponseCreated("resp_1"))
    assert b.rejoined() == ()  # acknowledged: nothing owed on the next re-join


def test_a_repeated_create_refused_as_active_adopts_that_response() -> None:
    """The first create did reach the server: the repeat is refused, and no second response is requested."""
    stats = ConversationStats()
    b = Brain(stats, truncate=False, id_prefix="t_")
    b.stamp(b.command(RequestResponse())[0])
    (repeat,) = b.rejoined()
    b.stamp(repeat)
    reaction = b.server_event(refusal(repeat, ACTIVE, ErrorClass.DEFERRAL))
    assert (reaction.deliver, reaction.end) == (None, None)
    assert stats.responses_deferred == 0
    assert b.server_event(ResponseDone("resp_first", "completed")).send == ()  # nothing more owed
    assert types(b.command(RequestResponse())) == ["response.create"]


def test_an_owed_create_refused_after_a_rejoin_is_still_a_deferral() -> None:
    b = brain()
    b.stamp(b.command(RequestResponse())[0])
    b.server_event(ResponseCreated("resp_1"))
    assert b.command(RequestResponse()) == ()  # owed behind resp_1
    (owed,) = b.rejoined()
    b.stamp(owed)
    assert b.server_event(refusal(owed, ACTIVE, ErrorClass.DEFERRAL)).deliver is None
    assert types(b.server_event(ResponseDone("resp_1", "completed")).send) == ["response.create"]


def test_carried_creates_are_replaced_by_one_in_the_place_of_the_first() -> None:
    b = brain()
    item, create = b.command(SendToolOutput("call_1", "42"))
    text = b.command(SendText("after"))[0]
    control = b.rejoined((item, create, text))
    assert types(control) == ["conversation.item.create", "response.create", "conversation.item.create"]
    assert control[0] is item
    assert control[2] is text


def test_a_rejoin_that_fails_counts_the_owed_response() -> None:
    b = brain()
    item, create = b.command(SendToolOutput("call_1", "42"))
    rest, lost = b.rejoin_failed((item, create))
    assert (rest, lost) == ((item,), 1)
    assert b.rejoin_failed(()) == ((), 0)  # counted once


payloads = st.lists(
    st.sampled_from(["text", "create"]).map(lambda k: user_text(k) if k == "text" else response_create()), max_size=8
)


@given(payloads, st.booleans())
def test_with_response_keeps_the_inputs_in_order_and_at_most_one_create(
    carried: list[dict[str, Any]], owed: bool
) -> None:
    control, create = with_response(carried, owed)
    inputs = [p for p in carried if p["type"] != "response.create"]
    assert [p for p in control if p["type"] != "response.create"] == inputs
    creates = [p for p in control if p["type"] == "response.create"]
    had = any(p["type"] == "response.create" for p in carried)
    assert len(creates) == (1 if owed or had else 0)
    assert (create is None) == (not creates)
    if had:  # in the place of the first carried create
        first = next(i for i, p in enumerate(carried) if p["type"] == "response.create")
        assert control.index(creates[0]) == first
