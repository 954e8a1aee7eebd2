"""The replayable history, sans-IO: what a new session is given to rebuild the conversation so far."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtengine.protocol import function_call_output, parse_server_message, user_text
from rtengine.protocol._history import History


def feed(history: History, *events: dict[str, Any]) -> None:
    for event in events:
        parsed = parse_server_message(event)
        history.observe(parsed)  # type: ignore[arg-type]


def added(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "conversation.item.added", "item": item}


def done(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "conversation.item.done", "item": item}


def msg(item_id: str, role: str, parts: list[dict[str, Any]], status: str = "completed") -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "role": role, "content": parts}


def created(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "conversation.item.create", "item": item}


def audio_turn(history: History, user_id: str, said: str | None, answer_id: str, answer: str | None) -> None:
    """One spoken turn as the real API reports it (recorded order: the user transcript arrives after the answer
    began; the user's item.done carries ``transcript: null``)."""
    feed(
        history,
        added(msg(user_id, "user", [{"type": "input_audio", "transcript": None}])),
        done(msg(user_id, "user", [{"type": "input_audio", "transcript": None}])),
        added(msg(answer_id, "assistant", [], "in_progress")),
    )
    if said is not None:
        feed(history, {"type": "conversation.item.input_audio_transcription.completed", "item_id": user_id,
                       "content_index": 0, "transcript": said})  # fmt: skip
    if answer is not None:
        feed(history, {"type": "response.output_audio_transcript.done", "item_id": answer_id, "transcript": answer})
    feed(history, done(msg(answer_id, "assistant", [{"type": "output_audio", "transcript": answer}])))


def test_a_spoken_turn_replays_as_the_transcripts_with_the_item_ids() -> None:
    history = History()
    audio_turn(history, "item_u1", "Hello, my name is Marcelo.", "item_a1", "Hello, Marcelo!")
    replay = history.replay()
    assert replay.complete
    assert replay.items == (
        created({"id": "item_u1", "type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": "Hello, my name is Marcelo."}]}),
        created({"id": "item_a1", "type": "message", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Hello, Marcelo!"}]}),
    )  # fmt: skip


def test_audio_without_a_transcript_is_left_out_and_the_replay_is_incomplete() -> None:
    history = History()
    audio_turn(history, "item_u1", None, "item_a1", "Sorry?")
    replay = history.replay()
    assert not replay.complete
    assert [p["item"]["id"] for p in replay.items] == ["item_a1"]


def test_a_user_text_written_is_replayed_once_even_after_its_echo() -> None:
    history = History()
    history.sent(user_text("hi"))
    before_echo = history.replay()
    feed(history, added(msg("item_1", "user", [{"type": "input_text", "text": "hi"}])))
    feed(history, done(msg("item_1", "user", [{"type": "input_text", "text": "hi"}])))
    after_echo = history.replay()
    assert before_echo.items == (user_text("hi"),)  # written, not yet answered: still part of the conversation
    assert after_echo.items == (created({"id": "item_1", **user_text("hi")["item"]}),)
    assert before_echo.complete
    assert after_echo.complete


def test_a_tool_round_replays_call_then_output() -> None:
    history = History()
    call = {"id": "item_c", "type": "function_call", "status": "in_progress", "name": "get_weather",
            "call_id": "call_1", "arguments": ""}  # fmt: skip
    feed(history, added(call))
    feed(history, {"type": "response.function_call_arguments.done", "item_id": "item_c", "call_id": "call_1",
                   "name": "get_weather", "arguments": '{"city": "London"}'})  # fmt: skip
    feed(history, done({**call, "status": "completed", "arguments": '{"city": "London"}'}))
    history.sent(function_call_output("call_1", "foggy"))
    feed(history, added({"id": "item_o", "type": "function_call_output", "call_id": "call_1", "output": "foggy"}))
    replay = history.replay()
    assert replay.complete
    assert replay.items == (
        created({"id": "item_c", "type": "function_call", "call_id": "call_1", "name": "get_weather",
                 "arguments": '{"city": "London"}'}),
        created({"id": "item_o", "type": "function_call_output", "call_id": "call_1", "output": "foggy"}),
    )  # fmt: skip


def test_a_call_whose_arguments_never_finished_cannot_be_replayed() -> None:
    history = History()
    feed(history, added({"id": "item_c", "type": "function_call", "status": "in_progress", "name": "f",
                         "call_id": "call_1", "arguments": ""}))  # fmt: skip
    assert history.replay() == type(history.replay())((), False)


def test_the_replayed_items_echoed_by_the_new_session_are_not_recorded_twice() -> None:
    history = History()
    audio_turn(history, "item_u1", "hi", "item_a1", "hello")
    history.sent(user_text("and text"))
    first = history.replay()
    for payload in first.items:  # the new session echoes each replayed item (ids kept; the text one gets an id)
        item = payload["item"]
        feed(history, added({"id": item.get("id", "item_new"), "status": "completed", **item}))
    second = history.replay()
    assert len(second.items) == 3
    assert second.complete
    assert [p["item"]["content"] for p in second.items] == [p["item"]["content"] for p in first.items]


def test_a_deleted_item_is_not_replayed_and_a_truncated_answer_makes_the_replay_incomplete() -> None:
    history = History()
    audio_turn(history, "item_u1", "one", "item_a1", "a long answer")
    audio_turn(history, "item_u2", "two", "item_a2", "another")
    feed(history, {"type": "conversation.item.deleted", "item_id": "item_u1"})
    assert [p["item"]["id"] for p in history.replay().items] == ["item_a1", "item_u2", "item_a2"]
    feed(history, {"type": "conversation.item.truncated", "item_id": "item_a2", "content_index": 0,
                   "audio_end_ms": 300})  # fmt: skip
    replay = history.replay()
    assert [p["item"]["id"] for p in replay.items] == ["item_a1", "item_u2"]
    assert not replay.complete


def test_an_image_part_cannot_be_replayed() -> None:
    history = History()
    feed(history, added(msg("item_i", "user", [{"type": "input_image", "image_url": "data:image/png;base64,AA=="}])))
    assert not history.replay().complete


def test_the_memory_is_bounded_and_dropping_makes_the_replay_incomplete() -> None:
    history = History(max_items=3)
    for n in range(5):
        history.sent(user_text(f"t{n}"))
    replay = history.replay()
    assert len(history) == 3
    assert history.truncated
    assert [p["item"]["content"][0]["text"] for p in replay.items] == ["t2", "t3", "t4"]
    assert not replay.complete


def test_an_output_whose_call_was_dropped_is_left_out() -> None:
    history = History(max_items=1)
    feed(history, done({"id": "item_c", "type": "function_call", "status": "completed", "name": "f",
                        "call_id": "call_1", "arguments": "{}"}))  # fmt: skip
    history.sent(function_call_output("call_1", "ok"))
    assert history.replay().items == ()  # an orphan output would be refused by the API


def test_max_items_is_validated() -> None:
    with pytest.raises(ValueError, match="max_items"):
        History(max_items=0)


def test_other_events_and_payloads_do_not_change_the_history() -> None:
    history = History()
    history.sent({"type": "response.create"})
    history.sent({"type": "input_audio_buffer.append", "audio": ""})
    feed(history, {"type": "response.created", "response": {"id": "r"}}, {"type": "session.created",
                                                                           "session": {"id": "s"}})  # fmt: skip
    assert history.replay().items == ()
    assert len(history) == 0


# One conversation step: a user text written, a spoken turn (with or without transcript), a tool round.
step = st.one_of(
    st.tuples(st.just("text"), st.text(min_size=1, max_size=8)),
    st.tuples(st.just("audio"), st.one_of(st.none(), st.text(min_size=1, max_size=8))),
    st.tuples(st.just("tool"), st.text(min_size=1, max_size=8)),
)


@given(steps=st.lists(step, max_size=12), max_items=st.integers(1, 30), echo=st.booleans())
def test_the_replay_is_the_conversation_in_order_and_honest_about_gaps(
    steps: list[tuple[str, str | None]], max_items: int, echo: bool
) -> None:
    history = History(max_items=max_items)
    expected: list[tuple[str, str]] = []  # (role or kind, text) of every item, in order
    lost = False
    for n, (kind, value) in enumerate(steps):
        if kind == "text":
            assert value is not None
            history.sent(user_text(value))
            if echo:
                feed(history, added(msg(f"item_t{n}", "user", [{"type": "input_text", "text": value}])))
            expected.append(("user", value))
        elif kind == "audio":
            audio_turn(history, f"item_u{n}", value, f"item_a{n}", f"answer {n}")
            lost = lost or value is None
            expected += [("user", value or ""), ("assistant", f"answer {n}")]
        else:
            assert value is not None
            feed(history, done({"id": f"item_c{n}", "type": "function_call", "status": "completed",
                                "name": "f", "call_id": f"call_{n}", "arguments": "{}"}))  # fmt: skip
            history.sent(function_call_output(f"call_{n}", value))
            expected += [("function_call", f"call_{n}"), ("function_call_output", value)]
    replay = history.replay()
    kept = expected[-max_items:]
    got = [
        (p["item"].get("role") or p["item"]["type"], p["item"]["content"][0]["text"])
        if p["item"]["type"] == "message"
        else (p["item"]["type"], p["item"].get("output") or p["item"]["call_id"])
        for p in replay.items
    ]
    # What is replayed is the kept tail, in order, minus what cannot be rebuilt (audio without a transcript, an
    # output whose call was dropped).
    rest = iter(kept)
    assert all(any(e == k for k in rest) for e in got), (got, kept)  # a subsequence of the kept tail
    dropped = len(expected) > max_items
    assert replay.complete == (not dropped and not lost)
    if replay.complete:
        assert got == expected
