"""A Ctrl-C landing in a conversation's end path still delivers ``Closed`` (issue #15, finding 8).

Each test runs its own ``trio.run`` (trio delivers a deferred ``KeyboardInterrupt`` to the run's main task) and
raises a real SIGINT at one critical point of the end path: right after the end is claimed, after the final
``Error`` is put, before ``Closed`` is put, before the stream finishes. The signal lands in running engine code, as
a Ctrl-C does; trio defers it (the end path is KI-protected) and raises it in the main task afterwards. The events
then hold exactly one ``Closed``, last, and no engine task is left.
"""

from __future__ import annotations

import pytest
import trio
from engine_helpers import until
from interrupt_helpers import Point, ctrl_c_at, only_keyboard_interrupts, until_interrupted

import rtengine
from rtengine.engine._outlet import Outlet
from rtengine.engine._timeline import Timeline
from rtengine.events import Closed, ConversationEvent, Error, SessionUpdated
from rtengine.server import Faults, ServerOptions, open_local_server

SESSION = rtengine.SessionConfig(instructions="Be brief.")
#: Where the SIGINT is raised: (class, method, before or after the original runs).
POINTS: dict[str, Point] = {
    "after_claim": (Outlet, "claim", "after"),
    "after_put_final": (Outlet, "put_final", "after"),
    "before_finish": (Outlet, "finish", "before"),
    "before_closed_mark": (Timeline, "mark", "before"),
}


async def _conversation(end: str) -> tuple[list[ConversationEvent], BaseException | None, list[str]]:
    """One websocket conversation ended by ``close()`` (``requested``) or by the server dropping it (``lost``);
    the events it delivered, what escaped the block, and the engine tasks left after it."""
    faults = Faults(close_after_events=2, close_mode="abrupt") if end == "lost" else Faults()

    async def body(conv: rtengine.Conversation) -> list[ConversationEvent]:
        if end != "requested":
            return []
        events = await until(conv, SessionUpdated)
        await conv.close()
        return events

    async with open_local_server(ServerOptions(delta_interval=0.0, faults=faults)) as server:
        client = rtengine.RealtimeClient(server.base_url, api_key="sk-x", backoff_base=0.01, close_timeout=1.0)
        async with client:
            return await until_interrupted(client, SESSION, body)


@pytest.mark.parametrize(
    ("end", "point"),
    [
        ("requested", "after_claim"),
        ("requested", "before_finish"),
        ("requested", "before_closed_mark"),
        ("lost", "after_claim"),
        ("lost", "after_put_final"),
        ("lost", "before_finish"),
        ("lost", "before_closed_mark"),
    ],
)
def test_a_ctrl_c_in_the_end_path_still_delivers_closed(monkeypatch: pytest.MonkeyPatch, end: str, point: str) -> None:
    fired: list[str] = []
    ctrl_c_at(monkeypatch, POINTS, point, fired)
    events, escaped, tasks = trio.run(_conversation, end)
    assert fired == [point]
    assert escaped is not None
    assert only_keyboard_interrupts(escaped), repr(escaped)
    finals = [e for e in events if isinstance(e, Error | Closed)]
    expected = [Closed("requested")] if end == "requested" else [Closed("error")]
    assert [e for e in finals if isinstance(e, Closed)] == expected
    assert isinstance(events[-1], Closed)
    assert tasks == []
