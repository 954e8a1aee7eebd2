"""The ``response.create`` repeated after a sideband re-join, when the first one did reach the server (issue #11
review): over the engine's socket seam (fakes, autojump clock), so the exact interleaving is pinned — the server
started the response, and the drop took its ``response.created`` with it."""

from __future__ import annotations

import json
from typing import Any

import trio
from engine_fakes import OFFER, FakeEndpoint, FakeSocket, FakeSockets

import rtengine
from rtengine.events import Error, ResponseDone, SessionUpdated, SidebandLost, SidebandRestored
from rtengine.protocol import SocketEnd

ACTIVE = "Conversation already has an active response in progress: resp_1."


def _sent(sock: FakeSocket) -> list[dict[str, Any]]:
    return [json.loads(text) for text in sock.log]


def _push(sock: FakeSocket, event: dict[str, Any]) -> None:
    sock.push(json.dumps(event))


async def _next(conv: rtengine.Conversation, kind: type, seen: list[object]) -> Any:
    async for event in conv.events:
        seen.append(event)
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__} in {seen}")


async def _wait_sent(sock: FakeSocket, kind: str) -> dict[str, Any]:
    while True:
        for frame in _sent(sock):
            if frame["type"] == kind:
                return frame
        await trio.sleep(0.001)


async def test_a_repeated_create_the_server_refuses_as_active_adopts_the_response(
    autojump_clock: trio.abc.Clock,
) -> None:
    """The tool output and its ``response.create`` were written; the server started the response, and the
    sideband dropped before ``response.created`` arrived. After the re-join the create is repeated; the server
    refuses it (a response is active): no ``Error``, nothing deferred, and when that response ends no second
    ``response.create`` goes out — one response, as requested."""
    sockets = [FakeSocket(), FakeSocket()]
    endpoint = FakeEndpoint(sockets=FakeSockets(make=lambda n: sockets[n]))
    seen: list[object] = []
    updated = {"type": "session.updated", "session": {"id": "sess_1", "type": "realtime"}}
    async with rtengine.open_conversation(endpoint, rtengine.SessionConfig(), offer_sdp=OFFER) as conv:  # type: ignore[arg-type]
        first, second = sockets
        await _wait_sent(first, "session.update")
        _push(first, updated)
        await _next(conv, SessionUpdated, seen)
        await conv.send_tool_output("call_1", "42")
        await _wait_sent(first, "response.create")
        first.push(SocketEnd(clean=False, detail="reset"))  # response.created never arrived
        await _next(conv, SidebandLost, seen)
        await _next(conv, SidebandRestored, seen)
        repeat = await _wait_sent(second, "response.create")
        error = {"type": "invalid_request_error", "code": "conversation_already_has_active_response"}
        _push(
            second,
            {
                "type": "error",
                "event_id": "evt_1",
                "error": {**error, "message": ACTIVE, "event_id": repeat["event_id"]},
            },
        )
        _push(second, updated)
        done = {
            "type": "response.done",
            "response": {"id": "resp_1", "object": "realtime.response", "status": "completed", "output": []},
        }
        _push(second, done)
        await _next(conv, ResponseDone, seen)
        await trio.sleep(1)
        stats = conv.stats
        await conv.close()
    assert [f["type"] for f in _sent(first)] == ["session.update", "conversation.item.create", "response.create"]
    assert [f["type"] for f in _sent(second)] == ["session.update", "response.create"]  # no second create
    assert _sent(second)[0]["session"] == {"type": "realtime"}  # the confirmed session is not sent again
    assert not [e for e in seen if isinstance(e, Error)]
    assert stats.responses_deferred == 0
    assert stats.inputs_lost == stats.inputs_interrupted == 0
