"""The engine's sans-IO state machines, with plain values and hypothesis."""

import base64

from hypothesis import given
from hypothesis import strategies as st

from rtengine.protocol._state import ResponseSequencer, ToolCallDedupe, TruncationTracker, audio_duration_ms


def test_request_sends_at_once_when_idle_and_defers_when_active() -> None:
    seq = ResponseSequencer()
    assert seq.request() is True
    assert seq.request() is False  # deferred
    assert seq.request() is False  # coalesced into the same owed create
    seq.on_created("resp_1")
    assert seq.on_done("resp_1") is True  # the owed create goes out now
    seq.on_created("resp_2")
    assert seq.on_done("resp_2") is False
    assert not seq.active


def test_stale_done_cannot_clear_a_newer_response() -> None:
    seq = ResponseSequencer()
    seq.request()
    seq.on_created("resp_new")
    assert seq.on_done("resp_old") is False
    assert seq.active
    assert seq.request() is False


def test_active_response_conflict_is_a_deferral() -> None:
    seq = ResponseSequencer()
    assert seq.request() is True
    seq.on_conflict()  # the server already had a response running
    assert seq.on_done("resp_server") is True
    assert seq.active


def test_cancelled_status_also_ends_the_response() -> None:
    seq = ResponseSequencer()
    seq.request()
    seq.on_created("r")
    assert seq.on_done("r") is False
    assert seq.request() is True


@given(st.lists(st.sampled_from(["request", "created", "done"]), max_size=60))
def test_never_two_creates_in_flight(ops: list[str]) -> None:
    seq = ResponseSequencer()
    in_flight = 0  # creates sent whose response has not ended
    counter = 0
    for op in ops:
        if op == "request":
            if seq.request():
                in_flight += 1
        elif op == "created" and in_flight:
            counter += 1
            seq.on_created(f"r{counter}")
        elif op == "done" and in_flight:
            in_flight -= 1
            if seq.on_done(seq.response_id):
                in_flight += 1
        assert in_flight <= 1


def _pcm_b64(samples: int) -> str:
    return base64.b64encode(b"\x00\x00" * samples).decode()


def test_audio_duration() -> None:
    assert audio_duration_ms(_pcm_b64(2400)) == 100
    assert audio_duration_ms("", samples_per_channel=512, sample_rate=24000) == 21
    assert audio_duration_ms(_pcm_b64(4800), num_channels=2) == 100
    assert audio_duration_ms("!!!") == 0


def test_truncation_is_clamped_to_received_audio_and_keyed_on_the_assistant_item() -> None:
    tracker = TruncationTracker()
    tracker.on_audio("item_a", 100)
    tracker.on_audio("item_a", 50)
    tracker.on_audio(None, 500)  # no item id: not counted
    assert tracker.take(played_ms=10_000) == ("item_a", 150)
    assert tracker.take() is None  # taking clears
    tracker.on_audio("item_a", 100)
    tracker.on_audio("item_b", 40)  # a new item resets
    assert tracker.take(played_ms=30) == ("item_b", 30)


def test_no_truncation_at_zero_ms() -> None:
    tracker = TruncationTracker()
    tracker.on_audio("item_a", 0)
    assert tracker.take() is None
    tracker.on_audio("item_a", 100)
    assert tracker.take(played_ms=0) is None


def test_tool_calls_are_deduplicated_by_call_id() -> None:
    dedupe = ToolCallDedupe()
    assert dedupe.first("call_1")
    assert not dedupe.first("call_1")
    assert dedupe.first("call_2")
