"""A response requested with a tool output is never lost silently across sideband drops (issue #11 review), as a
property on MockClock against the real local server (``memnet``).

Each example drops the call's sideband (EOF or CLOSE 1011; on the in-memory network a reset is an EOF) after a
drawn number of server events — so the drop lands anywhere around the tool output item, its ``response.create``
and the response — on up to three sidebands in a row. Whatever the timing, no ``Error``, and the server received
at least one ``response.create`` after the output item and at most two (a repeat after a re-join is a second one
only when the engine never saw the first acknowledged). (The response's own events may fall into a gap and never
reach the app: a re-join does not replay what the server sent meanwhile.)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import trio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schedule_harness import memnet_client, run_virtual

import rtengine
from rtengine.events import Closed, ConversationEvent, Error, SessionUpdated
from rtengine.server import Faults, ServerOptions

KEY = "sk-rejoin-response-property"


@dataclass
class Outcome:
    events: list[ConversationEvent] = field(default_factory=list)
    frames: list[dict[str, object]] = field(default_factory=list)  # what the server received, all sockets in order
    losses: int = 0


def asked_creates(frames: list[dict[str, object]]) -> int | None:
    """How many ``response.create`` the server received after the tool output item (None: no item yet)."""
    for index, frame in enumerate(frames):
        item = frame.get("item")
        if isinstance(item, dict) and item.get("call_id") == "call_asked":
            return [f.get("type") for f in frames[index:]].count("response.create")
    return None


async def scenario(after: int, mode: str, times: int, warm: int, out: Outcome) -> None:
    options = ServerOptions(api_key=KEY, delta_interval=0.0, call_connect_seconds=600.0)
    async with memnet_client(
        options, backoff_base=0.2, rand=random.Random(0).random, sideband_rejoin_attempts=times + 1
    ) as on:
        server = on.server

        def received() -> list[dict[str, object]]:
            return [f for c in server.record.sidebands() if c.accepted for f in c.frames_in]

        offer = await on.peers.create_offer()
        session = rtengine.SessionConfig()
        try:
            async with rtengine.open_conversation(on.client, session, offer_sdp=offer.local_sdp) as conv:
                async for item in conv.events:
                    out.events.append(item)
                    if isinstance(item, SessionUpdated):
                        break
                for n in range(warm):
                    await conv.send_text(f"warm-up {n}")
                link = server.record.sidebands()[-1]
                await server.record.wait_until(lambda: len(link.frames_out) >= 1 + 2 * warm)  # answered
                sent = len(link.frames_out)
                drop = Faults(drop_sideband=mode, drop_sideband_after=sent + after, drop_sideband_times=times)  # type: ignore[arg-type]
                server.set_faults(drop)
                await conv.send_tool_output("call_asked", "42", respond=True)
                with trio.move_on_after(20):
                    await server.record.wait_until(lambda: bool(asked_creates(received())))
                out.losses = conv.stats.sideband_losses
                await conv.close()
                out.events += [item async for item in conv.events]
        finally:
            await offer.aclose()
        out.frames = received()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    after=st.integers(1, 4),
    mode=st.sampled_from(["eof", "1011"]),
    times=st.integers(1, 3),
    warm=st.integers(0, 2),
)
def test_a_requested_response_is_never_lost_silently(after: int, mode: str, times: int, warm: int) -> None:
    out = Outcome()
    run_virtual(scenario, after, mode, times, warm, out)
    assert [e for e in out.events if isinstance(e, Error)] == []
    assert out.events[-1] == Closed("requested")
    creates = asked_creates(out.frames)
    assert creates is not None, "the tool output never reached the server"
    assert 1 <= creates <= 2, "the requested response.create was lost" if creates == 0 else creates
    event(f"losses: {out.losses}")
