"""When to rotate a session before its cap, sans-IO, with plain values."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtengine import ConfigError
from rtengine.protocol import parse_server_message
from rtengine.protocol._rotation import (
    RESPONSE_WAIT,
    SPARE,
    SessionClock,
    check_margin,
    latest_start,
    may_rotate,
)


def created(expires_at: int, session_id: str = "sess_1") -> object:
    return parse_server_message({"type": "session.created", "session": {"id": session_id, "expires_at": expires_at}})


def test_the_rotation_is_due_the_margin_before_the_cap_on_the_callers_clock() -> None:
    clock = SessionClock(30.0)
    assert clock.observe(created(1_003_600), now=5.0, unix_now=1_000_000.0)  # type: ignore[arg-type]
    assert clock.session_id == "sess_1"
    assert clock.expires == 5.0 + 3600
    assert clock.due == 5.0 + 3600 - 30


def test_a_margin_larger_than_the_session_waits_half_its_life() -> None:
    clock = SessionClock(30.0)
    clock.observe(created(1_000_005), now=0.0, unix_now=1_000_000.0)  # type: ignore[arg-type]
    assert clock.due == 2.5  # never at once: that would rotate every new session immediately


def test_a_session_too_short_to_rotate_is_left_to_its_cap() -> None:
    clock = SessionClock(30.0)
    assert not clock.observe(created(1_000_001), now=0.0, unix_now=1_000_000.0)  # type: ignore[arg-type]
    assert clock.due is None  # 1 s left: no rotation (a new session would be as short: a loop of rotations)
    assert clock.expires == 1.0


def test_no_expiry_or_rotation_off_means_never() -> None:
    off = SessionClock(None)
    assert not off.observe(created(1_000_100), now=0.0, unix_now=1_000_000.0)  # type: ignore[arg-type]
    assert off.due is None
    assert off.expires == 100.0
    silent = SessionClock(30.0)
    assert not silent.observe(created(0), now=0.0, unix_now=1_000_000.0)  # type: ignore[arg-type]
    assert silent.due is None


def test_the_cap_is_set_once_and_session_updated_keeps_it() -> None:
    clock = SessionClock(10.0)
    clock.observe(created(1_000_100), now=0.0, unix_now=1_000_000.0)  # type: ignore[arg-type]
    updated = parse_server_message({"type": "session.updated", "session": {"id": "sess_1", "expires_at": 1_000_200}})
    assert not clock.observe(updated, now=50.0, unix_now=1_000_050.0)  # type: ignore[arg-type]
    assert clock.due == 90.0


def test_a_response_in_flight_delays_the_rotation_within_bounds() -> None:
    clock = SessionClock(30.0)
    clock.observe(created(1_003_600), now=0.0, unix_now=1_000_000.0)  # type: ignore[arg-type]
    clock.observe(parse_server_message({"type": "response.created", "response": {"id": "r"}}), 0.0, 0.0)  # type: ignore[arg-type]
    assert clock.response_active
    assert not may_rotate(clock, 3570.0, due_since=3570.0)
    assert may_rotate(clock, 3570.0 + RESPONSE_WAIT, due_since=3570.0)
    clock.observe(parse_server_message({"type": "response.done", "response": {"id": "r"}}), 0.0, 0.0)  # type: ignore[arg-type]
    assert may_rotate(clock, 3570.0, due_since=3570.0)


@given(
    life=st.integers(2, 7200),
    margin=st.floats(0.1, 7200, allow_nan=False),
    due_since_after=st.floats(0, 100, allow_nan=False),
)
def test_the_rotation_starts_before_the_cap_and_after_half_the_life(
    life: int, margin: float, due_since_after: float
) -> None:
    clock = SessionClock(margin)
    clock.observe(created(1_000_000 + life), now=0.0, unix_now=1_000_000.0)  # type: ignore[arg-type]
    assert clock.due is not None
    assert life / 2 <= clock.due < life
    clock.response_active = True
    due_since = clock.due + due_since_after
    latest = latest_start(clock, due_since)
    assert latest <= life - SPARE or latest <= due_since  # never waits past the spare before the cap
    assert latest <= due_since + RESPONSE_WAIT
    assert may_rotate(clock, max(latest, due_since), due_since)


@pytest.mark.parametrize("margin", [0, -1, math.inf, math.nan, True, "30"])
def test_a_bad_margin_is_a_config_error(margin: object) -> None:
    with pytest.raises(ConfigError, match="rotate_margin"):
        check_margin(margin)  # type: ignore[arg-type]
    assert check_margin(None) is None
    assert check_margin(0.5) == 0.5


def test_an_answer_playing_on_a_call_delays_the_rotation_until_it_stopped_or_was_cleared() -> None:
    """WebRTC/SIP: ``response.done`` comes when the answer is generated; a move then would hang up the call that
    is still playing it. The quiet moment waits for ``output_audio_buffer.stopped`` (or ``cleared``), bounded."""
    clock = SessionClock(30.0)
    clock.observe(created(1_003_600), now=0.0, unix_now=1_000_000.0)  # type: ignore[arg-type]
    for end in ("output_audio_buffer.stopped", "output_audio_buffer.cleared"):
        for kind in ("response.created", "output_audio_buffer.started", "response.done"):
            event = {"type": kind, "response": {"id": "r"}, "response_id": "r"}
            clock.observe(parse_server_message(event), 0.0, 0.0)  # type: ignore[arg-type]
        assert not clock.response_active
        assert not may_rotate(clock, 3570.0, due_since=3570.0)  # done, and still playing
        assert may_rotate(clock, 3570.0 + RESPONSE_WAIT, due_since=3570.0)  # bounded
        clock.observe(parse_server_message({"type": end, "response_id": "r"}), 0.0, 0.0)  # type: ignore[arg-type]
        assert may_rotate(clock, 3570.0, due_since=3570.0)
