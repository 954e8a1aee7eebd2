"""Websocket reconnect on the fake seams (MockClock): a replayed item the new session refuses makes the restore
honest (``state_restored`` False, one non-fatal ``Error`` naming the ``conversation.item.create``), and the
conversation goes on; a restore whose replay is accepted is complete."""

from __future__ import annotations

import json

import trio
from engine_fakes import FakeEndpoint, FakeSocket, FakeSockets
from engine_helpers import drain, engine_tasks

import rtengine
from rtengine.events import ConnectionDropped, Error, SessionRestored
from rtengine.protocol import SocketEnd

SESSION = rtengine.SessionConfig(instructions="fakes")
USER_ITEM = {"id": "item_1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}


class Answering(FakeSocket):
    """A new session that answers each created item: added, or — ``refuse`` — refused with an error when it is a
    replayed one (it carries its old id)."""

    refuse: bool = False

    async def send(self, text: str) -> None:
        await super().send(text)
        frame = json.loads(text)
        if frame.get("type") != "conversation.item.create":
            return
        if self.refuse and "id" in frame["item"]:
            error = {"type": "invalid_request_error", "code": "invalid_value", "message": "no", "event_id": None}
            error["event_id"] = frame["event_id"]
            self.push(json.dumps({"type": "error", "error": error}))
        else:
            self.push(json.dumps({"type": "conversation.item.added", "item": frame["item"]}))


def sessions(refuse: bool) -> FakeSockets:
    def make(n: int) -> FakeSocket:
        sock = Answering()
        sock.refuse = refuse
        sock.push(json.dumps({"type": "session.updated", "session": {"id": f"sess_{n}"}}))
        if n == 0:
            sock.push(json.dumps({"type": "conversation.item.added", "item": {**USER_ITEM, "status": "completed"}}))
            sock.push(SocketEnd(clean=False, detail="reset by peer"))
        return sock

    return FakeSockets(make=make)


async def restore(refuse: bool) -> tuple[list[object], FakeSockets]:
    sockets = sessions(refuse)
    endpoint = FakeEndpoint(sockets=sockets)
    with trio.fail_after(30):
        async with rtengine.open_conversation(endpoint, SESSION, reconnect=True) as conv:  # type: ignore[arg-type]
            seen: list[object] = []
            async for event in conv.events:
                seen.append(event)
                if isinstance(event, SessionRestored):
                    break
            await conv.send_text("after")
            await trio.sleep(1.0)
            await conv.close()
        seen += await drain(conv)
    return seen, sockets


async def test_a_refused_replay_is_an_honest_restore_and_the_conversation_goes_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    seen, sockets = await restore(refuse=True)
    assert any(isinstance(e, ConnectionDropped) for e in seen)
    restored = next(e for e in seen if isinstance(e, SessionRestored))
    assert (restored.items_replayed, restored.state_restored) == (1, False)
    errors = [e for e in seen if isinstance(e, Error)]
    assert len(errors) == 1
    assert (errors[0].fatal, errors[0].request_type) == (False, "conversation.item.create")
    assert seen[-1] == rtengine.events.Closed("requested")
    second = [json.loads(f) for f in sockets.opened[1].log]
    assert [f["type"] for f in second] == ["session.update", "conversation.item.create", "conversation.item.create"]
    assert second[1]["item"]["id"] == "item_1"  # the replay, then the new text
    assert second[2]["item"]["content"][0]["text"] == "after"
    assert engine_tasks() == []


async def test_an_accepted_replay_is_a_complete_restore(autojump_clock: trio.abc.Clock) -> None:
    seen, _sockets = await restore(refuse=False)
    restored = next(e for e in seen if isinstance(e, SessionRestored))
    assert (restored.items_replayed, restored.state_restored, restored.attempts) == (1, True, 1)
    assert not [e for e in seen if isinstance(e, Error)]
