"""One writer per socket (fake seams, MockClock): the inputs go out in call order across the kinds — audio queued
before a text goes before it, audio queued after it waits for it — frames waiting together still go as one
``input_audio_buffer.append``, and an idle conversation runs no more tasks than it needs (its runner, which reads;
the writer; the owner watch, which keeps the alarm, once it is set)."""

from __future__ import annotations

import base64
import json
import time

import pytest
import trio
from engine_fakes import FakeEndpoint, FakeSocket, FakeSockets
from engine_helpers import engine_tasks

import rtengine

SESSION = rtengine.SessionConfig(instructions="fakes")
UPDATED = json.dumps({"type": "session.updated", "session": {"id": "sess_1"}})


def wire(sock: FakeSocket) -> list[str]:
    """The frames written after ``session.update``: their type, and each append's byte count."""
    out = []
    for text in sock.log[1:]:
        frame = json.loads(text)
        kind = frame["type"]
        if kind == "input_audio_buffer.append":
            out.append(f"append:{len(base64.b64decode(frame['audio']))}")
        elif kind == "conversation.item.create":
            out.append(f"item:{frame['item']['content'][0]['text']}")
        else:
            out.append(kind)
    return out


@pytest.mark.parametrize("rotate_margin", [None, 60.0], ids=["plain", "sessions"])
async def test_inputs_go_out_in_call_order_across_kinds(
    autojump_clock: trio.abc.Clock, rotate_margin: float | None
) -> None:
    sock = FakeSocket()
    endpoint = FakeEndpoint(sockets=FakeSockets(make=lambda _n: sock))
    with trio.fail_after(30):
        async with rtengine.open_conversation(endpoint, SESSION, rotate_margin=rotate_margin) as conv:  # type: ignore[arg-type]
            assert conv.send_audio(bytes(100))
            assert conv.send_audio(bytes(200))  # waiting together with the first: one append of 300 bytes
            await conv.send_text("first")
            assert conv.send_audio(bytes(40))  # after the text: after it on the wire
            await conv.request_response()
            await conv.send_text("second")
            assert conv.send_audio(bytes(60))
            await trio.sleep(1)
    assert wire(sock) == ["append:300", "item:first", "append:40", "response.create", "item:second", "append:60"]


@pytest.mark.parametrize("rotate_margin", [None, 60.0], ids=["plain", "sessions"])
async def test_an_idle_websocket_conversation_runs_two_tasks_and_a_third_once_its_rotation_is_armed(
    autojump_clock: trio.abc.Clock, rotate_margin: float | None
) -> None:
    """Joined and idle: the runner (reading) and the writer — each a task and its scopes, most of what an idle
    conversation costs in memory. The owner watch, which keeps the alarm, runs only once the alarm is set: here when
    the session states its cap (``expires_at``) and its rotation is armed (not due)."""
    sock = FakeSocket()
    expires_at = int(time.time()) + 3600
    sock.push(json.dumps({"type": "session.updated", "session": {"id": "sess_1", "expires_at": expires_at}}))
    endpoint = FakeEndpoint(sockets=FakeSockets(make=lambda _n: sock))
    before = len(engine_tasks())
    engine = "rtengine.engine."
    expected = {engine + "_conversation.Conversation._run", engine + "_sideband._pump"}
    if rotate_margin is not None:
        expected = {engine + "_conversation.Conversation._run", engine + "_conversation.Conversation._watch_owner",
                    engine + "_wsession._Writer.run"}  # fmt: skip
    with trio.fail_after(30):
        async with rtengine.open_conversation(endpoint, SESSION, rotate_margin=rotate_margin):  # type: ignore[arg-type]
            await trio.sleep(1)
            running = engine_tasks()[before:]
            assert sorted(running) == sorted(expected)
    assert engine_tasks()[before:] == []
