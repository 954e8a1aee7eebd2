"""A Ctrl-C in the end path of a WebRTC-call conversation (the hang-up of the call included) still delivers
``Closed`` and hangs the call up (issue #15, finding 8, at more points: ``test_interrupt`` covers websockets).

Each case runs its own ``trio.run`` and raises a real SIGINT at one point: right after the end is claimed, as the
call's hang-up starts, before the stream finishes. The events hold exactly one ``Closed``, last; the server saw the
call hung up; no engine task is left.
"""

from __future__ import annotations

import pytest
import trio
from engine_helpers import until
from interrupt_helpers import Point, ctrl_c_at, only_keyboard_interrupts, until_interrupted

import rtengine
from rtengine.adapters._http_calls import HttpCalls
from rtengine.adapters._peer import open_peer_service
from rtengine.engine._outlet import Outlet
from rtengine.events import Closed, ConversationEvent, SessionUpdated
from rtengine.server import ServerOptions, open_local_server

POINTS: dict[str, Point] = {
    "after_claim": (Outlet, "claim", "after"),
    "before_hangup": (HttpCalls, "hangup", "before"),
    "before_finish": (Outlet, "finish", "before"),
}


async def _conversation() -> tuple[list[ConversationEvent], BaseException | None, list[str], list[str]]:
    async def body(conv: rtengine.Conversation) -> list[ConversationEvent]:
        events = await until(conv, SessionUpdated)
        await conv.close()
        return events

    async with open_peer_service(loopback=True) as peers:
        offer = await peers.create_offer()
        async with open_local_server(ServerOptions(delta_interval=0.0), peers=peers) as server:
            client = rtengine.RealtimeClient(server.base_url, api_key="sk-x", backoff_base=0.01, close_timeout=1.0)
            async with client:
                session = rtengine.SessionConfig(instructions="Be brief.")
                events, escaped, tasks = await until_interrupted(client, session, body, offer_sdp=offer.local_sdp)
            hangups = list(server.record.hangups)
            await offer.aclose()
    return events, escaped, tasks, hangups


@pytest.mark.parametrize("point", sorted(POINTS))
def test_a_ctrl_c_in_a_calls_end_path_still_delivers_closed_and_hangs_up(
    monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    fired: list[str] = []
    ctrl_c_at(monkeypatch, POINTS, point, fired)
    events, escaped, tasks, hangups = trio.run(_conversation)
    assert fired == [point]
    assert escaped is not None
    assert only_keyboard_interrupts(escaped), repr(escaped)
    assert [e for e in events if isinstance(e, Closed)] == [Closed("requested")]
    assert isinstance(events[-1], Closed)
    assert len(hangups) == 1
    assert tasks == []
