"""The engine against the local server's API-like call lifetime: no ``session.created`` on a sideband, the session
cap's close, and the engine's default hang-up as what ends a call whose sideband left."""

import trio
from engine_helpers import client_for, drain, serving, until

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import Closed, SessionCreated, SessionUpdated, Started

SESSION = rtengine.SessionConfig(instructions="lifetime")


async def test_a_sideband_conversation_starts_without_session_created(peers: PeerService, offer_sdp: str) -> None:
    """Like the API, the server sends a sideband no ``session.created``: the engine needs none; its first server
    event is the ``session.updated`` answering its own ``session.update``."""
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                events = await until(conv, SessionUpdated)
                assert server.open_calls == [conv.call_id]
            assert server.open_calls == []  # leaving the block hung the call up (the default)
            await server.record.wait_until(lambda: server.record.calls[0].end is not None)
    assert [type(e) for e in events] == [Started, SessionUpdated]
    updated = events[-1]
    assert isinstance(updated, SessionUpdated)
    assert not any(isinstance(e, SessionCreated) for e in events)
    assert server.record.calls[0].end == "hangup"
    assert server.record.hangups == [conv.call_id]


async def test_a_call_kept_by_hangup_false_outlives_its_conversation(peers: PeerService, offer_sdp: str) -> None:
    """With ``hangup=False`` the call is the caller's to end: the server keeps it after the sideband leaves."""
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp, hangup=False) as conv:
                await until(conv, SessionUpdated)
            await server.record.wait_until(lambda: server.record.sidebands()[0].end is not None)
            assert server.open_calls == [conv.call_id]
            assert server.record.calls[0].end is None
            assert server.record.hangups == []


async def test_the_session_cap_ends_a_websocket_conversation_with_1001(peers: PeerService) -> None:
    """Without rotation (``rotate_margin=None``) the cap ends the conversation."""
    async with serving(peers, session_max_seconds=0.5) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION, rotate_margin=None) as conv:
                events = await drain(conv)
    assert events[-1] == Closed("session_expired", 1001, "Your session hit the maximum duration of 0.01 minutes.")


async def test_the_session_cap_ends_a_webrtc_conversation_and_its_call(peers: PeerService, offer_sdp: str) -> None:
    async with serving(peers, session_max_seconds=1.0) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                events = await drain(conv)
            await server.record.wait_until(lambda: server.record.calls[0].end is not None)
    assert events[-1] == Closed("session_expired", 1001, "Your session hit the maximum duration of 0.02 minutes.")
    assert server.record.calls[0].end == "session_expired"
    assert server.record.refused_hangups == [conv.call_id]  # the engine's hang-up found the call already over
