"""Scripting a live conversation from a test (``LocalServer.send_event``, ``drop_sideband``, ``delay_next_join``,
``ServerRecord.client_events``), seen from rtengine's side as a user of the server would see it."""

import pytest
import trio
from engine_helpers import client_for, serving, until
from helpers import call_id_of, create_call, read_until, sideband

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.adapters._ws import open_socket
from rtengine.events import RateLimit, RateLimits, SessionUpdated, SidebandLost, SidebandRestored
from rtengine.protocol import SocketEnd
from rtengine.protocol._payloads import encode, response_create, user_text
from rtengine.server import Faults, LocalServer

SESSION = rtengine.SessionConfig(instructions="scripted")
RATE_LIMITS = {
    "type": "rate_limits.updated",
    "rate_limits": [{"name": "requests", "limit": 100, "remaining": 7, "reset_seconds": 1.5}],
}


async def test_an_event_sent_into_a_direct_conversation_reaches_the_app(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await until(conv, SessionUpdated)
                sent = await server.send_event(RATE_LIMITS)
                events = await until(conv, RateLimits)
    assert events[-1] == RateLimits((RateLimit("requests", 100, 7, 1.5),), event_id=sent["event_id"])
    assert server.record.directs()[0].frames_out[-1] == sent


async def test_an_event_sent_into_a_call_reaches_its_sideband(peers: PeerService, offer_sdp: str) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                await until(conv, SessionUpdated)
                assert conv.call_id is not None
                sent = await server.send_event(RATE_LIMITS, call_id=conv.call_id)
                events = await until(conv, RateLimits)
    assert events[-1].event_id == sent["event_id"]  # type: ignore[union-attr]
    assert server.record.calls[0].data_frames_out[-1] == sent  # the call's data channel got it too


async def test_a_sideband_dropped_with_a_code_is_rejoined_and_the_code_reaches_the_app(
    peers: PeerService, offer_sdp: str
) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                await until(conv, SessionUpdated)
                assert await server.drop_sideband(code=1012, reason="restarting") == 1
                lost = (await until(conv, SidebandLost))[-1]
                await until(conv, SidebandRestored)
                assert conv.call_id is not None
                joins = server.record.joins(conv.call_id)
    assert lost == SidebandLost(1012, "restarting")
    assert (joins[0].end, joins[0].close_code) == ("server_close", 1012)
    assert len(joins) == 2
    assert joins[1].accepted


async def test_a_delayed_join_holds_the_next_sideband_only(peers: PeerService, offer_sdp: str) -> None:
    async with serving(peers) as server, client_for(server) as client:
        server.delay_next_join(60)
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                assert conv.call_id is not None
                await server.record.wait_until(lambda: len(server.record.sidebands()) == 1)
                await trio.sleep(0.3)
                assert not server.record.sidebands()[0].accepted  # still held back
            await server.record.wait_until(lambda: server.record.sidebands()[0].end is not None)
            assert server.record.sidebands()[0].end == "handshake_abandoned"
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as second:
                await until(second, SessionUpdated)  # the next join is not delayed


async def test_the_record_lists_the_client_events_a_call_received(peers: PeerService, offer_sdp: str) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                await conv.send_text("hello there")
                await server.record.wait_until(lambda: len(server.record.client_events()) >= 2)
                assert conv.call_id is not None
                events = server.record.client_events(conv.call_id)
    assert [e["type"] for e in events[:2]] == ["session.update", "conversation.item.create"]
    assert events[1]["item"]["content"][0]["text"] == "hello there"
    assert server.record.client_events("rtc_u1_unknown") == []


async def test_scripting_names_its_conversation_or_refuses(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            with pytest.raises(LookupError, match="0 live conversations"):
                await server.send_event(RATE_LIMITS)
            with pytest.raises(LookupError, match="no live call"):
                await server.drop_sideband("rtc_u1_unknown")
            async with rtengine.open_conversation(client, SESSION) as one, rtengine.open_conversation(client, SESSION):
                await until(one, SessionUpdated)
                with pytest.raises(LookupError, match="2 live conversations"):
                    await server.send_event(RATE_LIMITS)
            with pytest.raises(ValueError, match="cannot be sent"):
                await server.drop_sideband(code=1006)
            with pytest.raises(ValueError, match=">= 0"):
                server.delay_next_join(-1)


async def test_a_sideband_dropped_on_a_client_frame_never_handles_that_frame(
    server: LocalServer, offer_sdp: str
) -> None:
    """``Faults(drop_sideband_on=…)``: the frames before the named one were handled, the named one is lost with
    the connection (a reset), and the call lives on for the next sideband."""
    with trio.fail_after(10):
        call_id = call_id_of(await create_call(server, offer_sdp))
        server.set_faults(Faults(drop_sideband="reset", drop_sideband_on="response.create"))
        async with open_socket(sideband(server, call_id), {}) as sock:
            await sock.send(encode(user_text("before the drop")))
            await sock.send(encode(response_create()))
            await sock.send(encode(user_text("after the drop")))
            while not isinstance(await sock.receive(), SocketEnd):
                pass
        assert sock.end is not None
        assert not sock.end.clean
        async with open_socket(sideband(server, call_id), {}) as again:
            await again.send(encode(user_text("on the next sideband")))
            await read_until(again, "conversation.item.done")
    first, second = server.record.joins(call_id)
    assert first.types_in() == ["conversation.item.create"]
    assert first.end == "abrupt"
    assert second.types_in() == ["conversation.item.create"]
    assert second.end is not None  # the next sideband was not dropped (drop_sideband_times=1)
    assert "response.create" not in [event["type"] for event in server.record.client_events(call_id)]


def test_drop_sideband_on_needs_a_drop_and_an_event_type() -> None:
    with pytest.raises(ValueError, match="drop_sideband_on needs drop_sideband"):
        Faults(drop_sideband_on="response.create")
    with pytest.raises(ValueError, match="drop_sideband_on needs drop_sideband"):
        Faults(drop_sideband="reset", drop_sideband_on="")
