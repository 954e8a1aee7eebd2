"""The sans-IO decisions of sideband re-attach: which endings re-join, how the others end, the schedule, and what
the brain sends right after a re-join."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtengine.events import Closed, Error, ResponseCreated, ResponseDone
from rtengine.protocol import SocketEnd
from rtengine.protocol._brain import Brain, RequestResponse, SendText
from rtengine.protocol._lifecycle import ConversationStats
from rtengine.protocol._reattach import is_session_cap, rejoin_delays, sideband_ending, sideband_rejoinable

CAP = "Your session hit the maximum duration of 60 minutes."


@pytest.mark.parametrize(
    ("end", "rejoin"),
    [
        (SocketEnd(clean=False, detail="reset by peer"), True),
        (SocketEnd(clean=False, detail="EOF without a close frame"), True),
        (SocketEnd(clean=True, code=1001, reason="going away"), True),
        (SocketEnd(clean=True, code=1011, reason="server error"), True),
        (SocketEnd(clean=True, code=1012, reason="restart"), True),
        (SocketEnd(clean=True, code=1013, reason="try again later"), True),
        (SocketEnd(clean=True, code=1001, reason=CAP), False),
        (SocketEnd(clean=True, code=1000, reason="bye"), False),
        (SocketEnd(clean=True, code=1009, reason="too big"), False),
        (SocketEnd(clean=True, code=1008, reason="policy"), False),
        (SocketEnd(clean=True, code=None), False),
    ],
)
def test_which_sideband_endings_are_joined_again(end: SocketEnd, rejoin: bool) -> None:
    assert sideband_rejoinable(end) is rejoin


def test_a_clean_1000_is_the_end_of_the_call_the_cap_its_expiry_and_the_rest_end_as_on_a_websocket() -> None:
    assert sideband_ending(SocketEnd(clean=True, code=1000, reason="bye")) == (None, Closed("call_ended", 1000, "bye"))
    assert sideband_ending(SocketEnd(clean=True, code=1001, reason=CAP)) == (
        None,
        Closed("session_expired", 1001, CAP),
    )
    assert sideband_ending(SocketEnd(clean=True, code=1001, reason="going away")) == (
        None,
        Closed("transport_closed", 1001, "going away"),
    )
    error, closed = sideband_ending(SocketEnd(clean=False, detail="reset"))
    assert error == Error("realtime connection lost: reset", "connection_lost")
    assert closed == Closed("error")


def test_the_session_cap_reason_is_recognised_for_any_cap() -> None:
    assert is_session_cap("Your session hit the maximum duration of 0.02 minutes.")
    assert not is_session_cap("going away")
    assert not is_session_cap(None)


@given(st.integers(0, 20), st.floats(0.0, 2.0), st.integers(0, 2**32))
def test_the_first_rejoin_is_at_once_then_backoff(attempts: int, base: float, seed: int) -> None:
    delays = rejoin_delays(attempts, base, random.Random(seed).random)
    assert len(delays) == attempts
    if attempts:
        assert delays[0] == 0.0
    for n, delay in enumerate(delays[1:], 1):
        assert base * 2 ** (n - 1) * 0.9 <= delay <= base * 2 ** (n - 1) * 1.1


def test_after_a_rejoin_an_owed_create_goes_out_and_the_response_state_is_reset() -> None:
    brain = Brain(ConversationStats(), truncate=False)
    assert brain.command(RequestResponse())[0]["type"] == "response.create"
    brain.server_event(ResponseCreated(response_id="resp_1"))
    assert brain.command(RequestResponse()) == ()  # owed behind resp_1
    # resp_1's response.done was sent during the gap and never arrived.
    assert [p["type"] for p in brain.rejoined()] == ["response.create"]
    assert not brain.owes_response
    brain.server_event(ResponseDone(response_id="resp_1", status="completed"))  # stale: nothing owed, nothing sent
    assert brain.rejoined() == ()
    assert brain.command(SendText("hi"))[0]["type"] == "conversation.item.create"
