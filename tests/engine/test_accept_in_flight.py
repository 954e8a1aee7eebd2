"""The SIP accept prepares the conversation (and its runner's jobs) while the accept is in flight; a call seam that
never reports its body sent gets the same conversation, prepared after the answer."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import trio
import trio.testing
from engine_fakes import FakeCalls, FakeEndpoint, FakeSocket, FakeSockets
from engine_helpers import drain, ends

import rtengine
from rtengine.events import Closed, SessionUpdated, Started

SESSION = rtengine.SessionConfig(instructions="You answer the phone.")
CALL = "rtc_u1_9c6574da8b8a41a18da9308f4ad974ce"
UPDATED = json.dumps({"type": "session.updated", "session": {"id": "sess_1"}})


class _Silent(FakeCalls):
    """A call seam that answers the accept without ever calling ``on_sent``."""

    async def accept(
        self,
        call_id: str,
        session: rtengine.SessionConfig,
        headers: Mapping[str, str],
        *,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        await trio.sleep(self.delay)
        self.accepted.append(call_id)


def _endpoint(calls: FakeCalls) -> FakeEndpoint:
    def make(_n: int) -> FakeSocket:
        sock = FakeSocket()
        sock.push(UPDATED)
        return sock

    return FakeEndpoint(calls=calls, sockets=FakeSockets(make=make))


async def _run(endpoint: FakeEndpoint) -> list[Any]:
    with trio.fail_after(30):
        async with rtengine.open_conversation(endpoint, SESSION, accept_call_id=CALL) as conv:  # type: ignore[arg-type]
            assert (conv.transport, conv.call_id) == ("sip", CALL)
            await conv.send_text("hello")
            assert await conv.events.receive() == Started("sip", CALL)
            assert isinstance(await conv.events.receive(), SessionUpdated)
            await trio.testing.wait_all_tasks_blocked()
        return await drain(conv)


async def test_a_seam_that_reports_the_body_sent_and_one_that_does_not_run_the_same_conversation(
    autojump_clock: trio.abc.Clock,
) -> None:
    for calls in (FakeCalls(delay=0.1), _Silent(delay=0.1)):
        endpoint = _endpoint(calls)
        events = await _run(endpoint)
        assert ends(events) == [Closed("requested")]
        assert calls.accepted == [CALL]
        assert calls.hangups == [CALL]
        sent = [json.loads(f) for f in endpoint.sockets.opened[0].log]
        assert [f["type"] for f in sent][:2] == ["session.update", "conversation.item.create"]
