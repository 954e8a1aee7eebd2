"""What a sideband re-join sends besides the buffered inputs (issue #11, behaviour 1; adversarial review findings),
against the local server over real loopback sockets.

* The session: a re-join must not overwrite what another view of the call (a second sideband, the browser's data
  channel) changed, and a refusal of the re-join's ``session.update`` must not end a healthy call.
* The owed response: a ``response.create`` written just before the drop (behind a tool output) never reached the
  server; it is sent again on the new socket, exactly once on the wire.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from engine_helpers import API_KEY, client_for, drain, serving, until
from helpers import read_until, sideband
from rejoin_helpers import delivered, joins_of, quiet

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.adapters._ws import RealtimeSocket, open_socket
from rtengine.events import Closed, Error, ResponseDone, SessionUpdated, SidebandLost, SidebandRestored
from rtengine.protocol._payloads import encode
from rtengine.server import Faults, LocalServer

SESSION = rtengine.SessionConfig(instructions="the caller's instructions", voice="alloy")


@asynccontextmanager
async def other_view(server: LocalServer, conv: rtengine.Conversation) -> AsyncIterator[RealtimeSocket]:
    """A second sideband of the conversation's call (another view, as a browser's server or a supervisor)."""
    assert conv.call_id is not None
    async with open_socket(sideband(server, conv.call_id), {"authorization": f"Bearer {API_KEY}"}) as sock:
        yield sock


async def change_session(sock: RealtimeSocket, **fields: object) -> dict[str, object]:
    await sock.send(encode({"type": "session.update", "session": {"type": "realtime", **fields}}))
    return (await read_until(sock, "session.updated"))[-1]


async def arm_drop(server: LocalServer, conv: rtengine.Conversation, **faults: object) -> None:
    """Drop the conversation's sideband on the next event the server sends it (a second view joined later has
    been sent fewer events, so it is not the one dropped)."""
    await quiet(server, conv)
    link = joins_of(server, conv)[-1]
    while True:  # settled: nothing more on its way (a response's last events, an audio buffer's stop)
        sent = len(link.frames_out)
        await trio.sleep(0.2)
        if len(link.frames_out) == sent:
            break
    server.set_faults(Faults(drop_sideband="reset", drop_sideband_after=sent + 1, **faults))  # type: ignore[arg-type]


async def test_a_rejoin_keeps_the_session_another_view_changed_during_the_gap(
    peers: PeerService, offer_sdp: str
) -> None:
    async with serving(peers) as server, client_for(server, sideband_rejoin_attempts=12) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                await until(conv, SessionUpdated)
                for n in range(3):  # the engine's sideband is sent more events than the other view will be
                    await conv.send_text(f"warm-up {n}")
                async with other_view(server, conv) as other:
                    await arm_drop(server, conv, refuse_sideband_joins=1000)
                    await conv.send_text("the server's answer to this drops the sideband")
                    await until(conv, SidebandLost)
                    changed = await change_session(other, instructions="set by another view")
                    assert changed["session"]["instructions"] == "set by another view"  # type: ignore[index]
                    assert "sideband_restored" not in conv.timeline  # the change happened during the gap
                    server.set_faults(Faults())  # the next re-join is accepted
                    await until(conv, SidebandRestored)
                    after = (await until(conv, SessionUpdated))[-1]
                    check = await change_session(other)  # what the server's session holds now
                await conv.close()
            events = await drain(conv)
    assert isinstance(after, SessionUpdated)
    assert after.instructions == "set by another view"
    assert check["session"]["instructions"] == "set by another view"  # type: ignore[index]
    rejoined = [j for j in joins_of(server, conv) if j.accepted][-1]  # the engine's; [1] is the other view
    assert rejoined.frames_in[0]["type"] == "session.update"
    assert "instructions" not in rejoined.frames_in[0]["session"]
    assert not [e for e in events if isinstance(e, Error)]
    assert events[-1] == Closed("requested")


async def test_a_rejoin_after_another_view_changed_the_voice_keeps_the_call(peers: PeerService, offer_sdp: str) -> None:
    """Another view changed the voice, then the assistant spoke: re-sending the caller's voice would be refused by
    the server (fatal) and end a healthy call. The call goes on: no ``Error``, a response after the re-join."""
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                await until(conv, SessionUpdated)
                async with other_view(server, conv) as other:
                    await change_session(other, audio={"output": {"voice": "verse"}})
                    await conv.request_response()
                    seen = await until(conv, ResponseDone)  # the assistant has spoken with the new voice
                    for n in range(3):
                        await conv.send_text(f"warm-up {n}")
                    await arm_drop(server, conv)
                    await conv.send_text("the server's answer to this drops the sideband")
                    seen += await until(conv, SidebandRestored)
                    await conv.request_response()
                    seen += await until(conv, ResponseDone)
                    assert conv.active
                await conv.close()
            seen += await drain(conv)
    assert not [e for e in seen if isinstance(e, Error)]
    assert seen[-1] == Closed("requested")
    assert conv.stats.sideband_losses == 1


async def test_a_response_requested_with_a_tool_output_right_before_a_drop_is_not_lost(
    peers: PeerService, offer_sdp: str
) -> None:
    """The drop lands after the tool output item was read and before the ``response.create`` behind it was (the
    server resets the sideband on that frame: it never reached the server): the create is sent again on the new
    socket, the response comes, and the server got one create."""
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                await until(conv, SessionUpdated)
                server.set_faults(Faults(drop_sideband="reset", drop_sideband_on="response.create"))
                await conv.send_tool_output("call_before_drop", "42", respond=True)
                seen = await until(conv, SidebandLost)
                seen += await until(conv, SidebandRestored)
                with trio.move_on_after(5):
                    seen += await until(conv, ResponseDone)
                await conv.close()
            seen += await drain(conv)
    joins = [j for j in joins_of(server, conv) if j.accepted]
    assert len(joins) == 2
    got = delivered(joins)
    assert got["tool"] == ["call_before_drop"]
    assert got["response"] == ["response.create"]
    first = [f["item"]["type"] for f in joins[0].frames_in if f["type"] == "conversation.item.create"]
    assert first == ["function_call_output"]  # the drop came between the two frames
    assert "response.create" not in joins[0].types_in()
    assert [e for e in seen if isinstance(e, ResponseDone)], "the requested response never came"
    assert not [e for e in seen if isinstance(e, Error)]
    assert seen[-1] == Closed("requested")
