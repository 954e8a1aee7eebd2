"""The audio a rotation writes again when it cuts an utterance, and the quiet moment that avoids cutting one."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from rtengine.protocol import parse_server_message
from rtengine.protocol._audio_tail import AudioTail
from rtengine.protocol._cut import cut_response
from rtengine.protocol._events import ProtocolWarning, ServerEvent
from rtengine.protocol._rotation import SessionClock


def event(frame: dict[str, object]) -> ServerEvent:
    parsed = parse_server_message(frame)
    assert not isinstance(parsed, ProtocolWarning)
    return parsed


def test_the_tail_is_what_the_server_holds_uncommitted() -> None:
    tail = AudioTail()
    tail.wrote(b"a")
    tail.sent({"type": "input_audio_buffer.commit"})
    tail.wrote(b"b")
    tail.wrote(b"c")
    assert tail.take() == (b"b", b"c")
    assert tail.take() == ()
    tail.wrote(b"d")
    tail.observe(event({"type": "input_audio_buffer.committed", "item_id": "i1"}))
    tail.wrote(b"e")
    assert tail.take() == (b"e",)


@given(st.lists(st.binary(min_size=1, max_size=50), max_size=60))
def test_the_tail_keeps_the_newest_audio_within_its_bound(frames: list[bytes]) -> None:
    tail = AudioTail(max_bytes=200)
    for frame in frames:
        tail.wrote(frame)
    kept = tail.take()
    assert kept == tuple(frames[len(frames) - len(kept) :])
    assert sum(map(len, kept)) <= 200 or len(kept) == 1


def test_a_user_turn_is_not_a_quiet_moment_until_its_answer_ends() -> None:
    clock = SessionClock(10.0)
    steps = [
        ('{"type": "input_audio_buffer.speech_started", "item_id": "i1", "audio_start_ms": 0}', False),
        ('{"type": "input_audio_buffer.speech_stopped", "item_id": "i1", "audio_end_ms": 900}', False),
        ('{"type": "response.created", "response": {"id": "r1", "status": "in_progress"}}', False),
        ('{"type": "response.done", "response": {"id": "r1", "status": "completed"}}', True),
    ]
    assert clock.quiet
    for frame, quiet in steps:
        clock.observe(event(json.loads(frame)), 0.0, 0.0)
        assert clock.quiet is quiet, frame
    assert clock.response_id is None


def test_a_cut_response_ends_with_a_cancelled_status_naming_why() -> None:
    done = cut_response("r1", "connection_lost")
    assert (done.response_id, done.status) == ("r1", "cancelled")
    assert done.response["status_details"] == {"type": "cancelled", "reason": "connection_lost"}
