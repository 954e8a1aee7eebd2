"""Properties of the local server's VAD turns, on :class:`~rtengine.server._turns.Turns` alone (no sockets):
a model of the turns a talk should produce, and independence from how the microphone chunks its audio."""

import re
from typing import Any

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from rtengine.protocol._audio import tone
from rtengine.server._item_store import ConversationItems
from rtengine.server._model import ModelState
from rtengine.server._shapes import default_session, merge
from rtengine.server._turns import Turns

SILENCE_MS = 200
PREFIX_MS = 300

#: A talk: (loud ms, quiet ms) pairs, in whole 10 ms frames; some pauses are shorter than the silence that ends
#: a turn, so several loud stretches can make one turn.
talks = st.lists(
    st.tuples(st.integers(1, 30).map(lambda n: n * 10), st.integers(0, 40).map(lambda n: n * 10)),
    min_size=1,
    max_size=6,
)


def audio_of(talk: list[tuple[int, int]]) -> bytes:
    return b"".join(tone(440, loud) + b"\x00" * 48 * quiet for loud, quiet in talk)


def expected_turns(talk: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(audio_start_ms, audio_end_ms) of each turn, by the rules the server documents."""
    turns: list[tuple[int, int]] = []
    at, onset, last_end = 0, None, 0
    for loud, quiet in talk:
        if onset is None:
            onset = at
        at += loud
        if quiet >= SILENCE_MS:
            start = max(last_end, onset - PREFIX_MS)
            last_end = at + SILENCE_MS
            turns.append((start, last_end))
            onset = None
        at += quiet
    return turns


async def play(audio: bytes, chunks: list[int]) -> list[dict[str, Any]]:
    session = merge(
        default_session("gpt-realtime"),
        {"audio": {"input": {"turn_detection": {"silence_duration_ms": SILENCE_MS, "prefix_padding_ms": PREFIX_MS}}}},
    )
    state = ModelState(session)
    sent: list[dict[str, Any]] = []

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    async def reply(origin: object, event: dict[str, Any]) -> None:
        raise AssertionError(f"no client event was refused: {event}")

    turns = Turns(state, ConversationItems(state, send, reply), send, reply, lambda: True)
    at, index = 0, 0
    while at < len(audio):
        size = chunks[index % len(chunks)] * 2  # whole samples
        await turns.append(audio[at : at + size])
        at, index = at + size, index + 1
    return sent


def anonymous(events: list[dict[str, Any]]) -> str:
    return re.sub(r"item_[A-Za-z0-9_-]+", "item", repr(events))


@settings(max_examples=40, deadline=None)
@given(talks)
def test_turns_follow_the_documented_rules(talk: list[tuple[int, int]]) -> None:
    sent = trio.run(play, audio_of(talk), [480])
    started = [e for e in sent if e["type"] == "input_audio_buffer.speech_started"]
    stopped = [e for e in sent if e["type"] == "input_audio_buffer.speech_stopped"]
    turns = expected_turns(talk)
    assert [(a["audio_start_ms"], b["audio_end_ms"]) for a, b in zip(started, stopped, strict=False)] == turns
    assert len(started) - len(stopped) == (0 if talk[-1][1] >= SILENCE_MS else 1)  # the last turn may be open
    committed = [e["item_id"] for e in sent if e["type"] == "input_audio_buffer.committed"]
    assert committed == [e["item_id"] for e in stopped]
    assert len({e["item_id"] for e in started}) == len(started)


@settings(max_examples=25, deadline=None)
@given(talks, st.lists(st.integers(1, 3000), min_size=1, max_size=5))
def test_chunking_does_not_change_the_turns(talk: list[tuple[int, int]], chunks: list[int]) -> None:
    audio = audio_of(talk)
    assert anonymous(trio.run(play, audio, chunks)) == anonymous(trio.run(play, audio, [len(audio)]))
