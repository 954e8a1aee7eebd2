"""``idle_timeout_ms`` on wall time (trio's ``MockClock``): ``response.done`` + playback + the timeout, whether or
not the client keeps sending audio; speech, a commit or a new response cancels it; each ``response.done`` re-arms it."""

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from turn_helpers import sdk_check

from rtengine.protocol._audio import tone
from rtengine.server._item_store import ConversationItems
from rtengine.server._model import ModelState
from rtengine.server._shapes import default_session, merge, with_event_id
from rtengine.server._turns import MAX_BUFFER_BYTES, Turns

IDLE_MS = 5000
PLAYBACK_MS = 200
TIMEOUT_TURN = [
    "input_audio_buffer.timeout_triggered",
    "input_audio_buffer.committed",
    "conversation.item.added",
    "conversation.item.done",
]


class Conversation:
    """A :class:`Turns` as a conversation runs it (its timer in a nursery), recording what it sends."""

    def __init__(self, nursery: trio.Nursery, idle_ms: int | None = IDLE_MS) -> None:
        detection = {"idle_timeout_ms": idle_ms}
        session = merge(default_session("gpt-realtime"), {"audio": {"input": {"turn_detection": detection}}})
        self.state = ModelState(session)
        self.sent: list[dict[str, Any]] = []
        self.responses = 0
        self.items = ConversationItems(self.state, self.send, self.reply)
        self.turns = Turns(
            self.state,
            self.items,
            self.send,
            self.reply,
            self.respond,
            lambda: nursery,
        )

    async def send(self, event: dict[str, Any]) -> None:
        sdk_check(with_event_id(event))
        self.items.observe(event)  # as the conversation does: the item store follows what is sent
        self.sent.append(event)

    async def reply(self, origin: object, event: dict[str, Any]) -> None:
        raise AssertionError(f"nothing was refused: {event}")

    def respond(self) -> bool:
        self.responses += 1
        return True

    def response_done(self) -> None:
        """A response with ``PLAYBACK_MS`` of output audio is done."""
        item = f"item_answer{len(self.sent)}"
        self.state.audio_items[item] = PLAYBACK_MS
        self.turns.observe({"type": "response.done", "response": {"output": [{"id": item}]}})

    def types(self) -> list[str]:
        return [e["type"] for e in self.sent]


@asynccontextmanager
async def conversation(idle_ms: int | None = IDLE_MS) -> AsyncIterator[Conversation]:
    async with trio.open_nursery() as nursery:
        yield Conversation(nursery, idle_ms)
        nursery.cancel_scope.cancel()


async def stream_silence(conv: Conversation, ms: int) -> None:
    """Real-time silence, 20 ms chunks every 20 ms (PCM16 24 kHz)."""
    for _ in range(ms // 20):
        await conv.turns.append(b"\x00" * 48 * 20)
        await trio.sleep(0.02)


async def test_it_fires_on_wall_time_when_the_client_sends_nothing(autojump_clock: trio.abc.Clock) -> None:
    async with conversation() as conv:
        await conv.turns.append(b"\x00" * 48 * 100)
        conv.response_done()
        await trio.sleep((PLAYBACK_MS + IDLE_MS) / 1000 - 0.001)
        assert conv.sent == []  # not before response.done + playback + timeout
        await trio.sleep(0.002)
        assert conv.types() == TIMEOUT_TURN
    timeout = conv.sent[0]
    assert (timeout["audio_start_ms"], timeout["audio_end_ms"]) == (100, 100)  # no audio arrived meanwhile
    assert timeout["item_id"] == conv.sent[1]["item_id"]
    assert conv.responses == 1


async def test_with_audio_streaming_it_spans_the_silence_after_playback(autojump_clock: trio.abc.Clock) -> None:
    async with conversation() as conv:
        await conv.turns.append(b"\x00" * 48 * 100)
        conv.response_done()
        start = trio.current_time()
        while not conv.sent:
            await stream_silence(conv, 20)
        elapsed = trio.current_time() - start
    assert conv.types() == TIMEOUT_TURN
    timeout = conv.sent[0]
    assert timeout["audio_start_ms"] == 100 + PLAYBACK_MS  # where playback ended, in the input audio
    assert 100 + PLAYBACK_MS + IDLE_MS - 20 <= timeout["audio_end_ms"] <= 100 + PLAYBACK_MS + IDLE_MS + 20
    assert abs(elapsed - (PLAYBACK_MS + IDLE_MS) / 1000) <= 0.021
    assert conv.responses == 1


async def test_speech_cancels_it(autojump_clock: trio.abc.Clock) -> None:
    async with conversation() as conv:
        conv.response_done()
        await stream_silence(conv, 2000)
        await conv.turns.append(tone(440, 300))  # the user speaks before the timeout
        await stream_silence(conv, 500)  # ... and stops: a VAD turn, answered
        await trio.sleep(IDLE_MS / 1000 * 3)
    types = conv.types()
    assert types[:2] == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"]
    assert "input_audio_buffer.timeout_triggered" not in types
    assert conv.responses == 1  # the VAD turn's, not a timeout's


async def test_a_new_response_cancels_it_and_its_done_rearms_it(autojump_clock: trio.abc.Clock) -> None:
    async with conversation() as conv:
        conv.response_done()
        await trio.sleep(3)
        conv.turns.observe({"type": "response.created"})
        await trio.sleep(IDLE_MS / 1000)
        assert conv.sent == []  # cancelled by the new response
        conv.response_done()
        await trio.sleep((PLAYBACK_MS + IDLE_MS) / 1000 - 0.001)
        assert conv.sent == []  # counted from the second response.done
        await trio.sleep(0.002)
    assert conv.types() == TIMEOUT_TURN


async def test_without_idle_timeout_or_turn_detection_nothing_fires(autojump_clock: trio.abc.Clock) -> None:
    async with conversation(idle_ms=None) as conv:
        conv.response_done()
        await trio.sleep(60)
    assert conv.sent == []
    async with conversation() as conv:
        conv.response_done()
        conv.state.session = merge(conv.state.session, {"audio": {"input": {"turn_detection": None}}})
        await trio.sleep(60)
    assert conv.sent == []


async def test_the_input_buffer_is_bounded_when_nobody_commits() -> None:
    """A call with turn detection off hears audio forever; the buffer keeps the newest audio only."""
    async with conversation(idle_ms=None) as conv:
        conv.state.session = merge(conv.state.session, {"audio": {"input": {"turn_detection": None}}})
        chunk = b"\x01\x00" * (1024 * 1024)  # 2 MiB
        for _ in range(10):
            await conv.turns.append(chunk)
        await conv.turns.append(b"\x02\x00")
        await conv.turns.commit(None, None)
    committed = conv.sent[0]
    assert committed["type"] == "input_audio_buffer.committed"
    held = conv.items.retrieved(committed["item_id"])["content"][0]["audio"]
    audio = base64.b64decode(held)
    assert len(audio) == MAX_BUFFER_BYTES
    assert audio.endswith(b"\x01\x00\x02\x00")  # the newest audio is kept
