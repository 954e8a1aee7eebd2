"""A Ctrl-C in the end path of a WebRTC-call conversation (the hang-up of the call included) still delivers
``Closed`` and hangs the call up (issue #15, finding 8, at more points: ``test_interrupt`` covers websockets).

Each case runs its own ``trio.run`` and raises a real SIGINT at one point: right after the end is claimed, as the
call's hang-up starts, before the stream finishes. The events hold exactly one ``Closed``, last; the server saw the
call hung up; no engine task is left.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable
from typing import Any

import pytest
import trio
from engine_helpers import engine_tasks, until

import rtengine
from rtengine.adapters._http_calls import HttpCalls
from rtengine.adapters._peer import open_peer_service
from rtengine.engine._outlet import Outlet
from rtengine.events import Closed, ConversationEvent, SessionUpdated
from rtengine.server import ServerOptions, open_local_server

POINTS: dict[str, tuple[type, str, str]] = {
    "after_claim": (Outlet, "claim", "after"),
    "before_hangup": (HttpCalls, "hangup", "before"),
    "before_finish": (Outlet, "finish", "before"),
}


def _ctrl_c_at(monkeypatch: pytest.MonkeyPatch, point: str, fired: list[str]) -> None:
    owner, name, when = POINTS[point]
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    def interrupted(self: object, *args: Any) -> Any:
        fire = not fired
        if fire and when == "before":
            fired.append(point)
            signal.raise_signal(signal.SIGINT)
        result = original(self, *args)
        if fire and when == "after":
            fired.append(point)
            signal.raise_signal(signal.SIGINT)
        return result

    monkeypatch.setattr(owner, name, interrupted)


async def _conversation() -> tuple[list[ConversationEvent], BaseException | None, list[str], list[str]]:
    events: list[ConversationEvent] = []
    escaped: BaseException | None = None
    async with open_peer_service(loopback=True) as peers:
        offer = await peers.create_offer()
        async with open_local_server(ServerOptions(delta_interval=0.0), peers=peers) as server:
            client = rtengine.RealtimeClient(server.base_url, api_key="sk-x", backoff_base=0.01, close_timeout=1.0)
            async with client:
                with trio.fail_after(20):
                    try:
                        session = rtengine.SessionConfig(instructions="Be brief.")
                        async with rtengine.open_conversation(client, session, offer_sdp=offer.local_sdp) as conv:
                            events += await until(conv, SessionUpdated)
                            await conv.close()
                            await trio.sleep(5)  # the deferred Ctrl-C lands at a checkpoint of this (main) task
                    except BaseException as exc:
                        escaped = exc
                    while True:
                        try:
                            events.append(conv.events.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    tasks = engine_tasks()
            hangups = list(server.record.hangups)
            await offer.aclose()
    return events, escaped, tasks, hangups


def _only_keyboard_interrupts(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        match, rest = exc.split(KeyboardInterrupt)
        return match is not None and rest is None
    return isinstance(exc, KeyboardInterrupt)


@pytest.mark.parametrize("point", sorted(POINTS))
def test_a_ctrl_c_in_a_calls_end_path_still_delivers_closed_and_hangs_up(
    monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    fired: list[str] = []
    _ctrl_c_at(monkeypatch, point, fired)
    events, escaped, tasks, hangups = trio.run(_conversation)
    assert fired == [point]
    assert escaped is not None
    assert _only_keyboard_interrupts(escaped), repr(escaped)
    assert [e for e in events if isinstance(e, Closed)] == [Closed("requested")]
    assert isinstance(events[-1], Closed)
    assert len(hangups) == 1
    assert tasks == []
