"""Sideband re-attach when rtengine is the call's media peer (issue #11, behaviour 1): the media peer ending during
a sideband gap means the call is over. Real loopback WebRTC (ICE, DTLS, SCTP, RTP on 127.0.0.1), real clock."""

import trio
from engine_helpers import API_KEY, client_for, drain, engine_tasks, until

import rtengine
from rtengine import webrtc
from rtengine.events import Closed, Error, SessionUpdated, SidebandLost, SidebandRestored
from rtengine.server import Faults, ServerOptions, open_local_server

SESSION = rtengine.SessionConfig(turn_detection="disabled")


async def test_the_media_peer_closing_during_a_sideband_gap_ends_the_call() -> None:
    """The sideband drops and the re-join's handshake hangs (the server holds its answer); meanwhile rtengine's
    own peer connection closes. The conversation ends at once with one ``Closed("call_ended")`` — from the media
    peer, not from a later re-join answered 404 (that would take ``connect_timeout``) — no ``Error``, and nothing
    is left running."""
    settings = {"connect_timeout": 10.0, "sideband_rejoin_deadline": 15.0}
    with trio.fail_after(20):
        async with (
            webrtc.open_media_engine(loopback=True) as engine,
            open_local_server(ServerOptions(api_key=API_KEY, delta_interval=0.0), peers=engine) as media_server,
            client_for(media_server, **settings) as client,
        ):
            media = webrtc.Media(engine, connect_timeout=5)
            async with rtengine.open_conversation(client, SESSION, media=media) as conv:
                assert conv.media is not None
                seen = await until(conv, SessionUpdated)
                await conv.media.peer.connected.wait()
                media_server.set_faults(Faults(drop_sideband="reset", sideband_accept_delay=30.0))
                await conv.send_text("the server's answer to this drops the sideband")
                seen += await until(conv, SidebandLost)
                await media_server.record.wait_until(lambda: len(media_server.record.sidebands()) >= 2)
                assert conv.active  # in the gap: the re-join waits for the server's answer
                ended_at = trio.current_time()
                await conv.media.peer.aclose()  # rtengine's media peer goes: the call is over
                seen += await drain(conv)
                took = trio.current_time() - ended_at
            leftover, peers_open = engine_tasks(), engine.open_peers  # right after the block, engine still up
    assert [type(e) for e in seen if isinstance(e, Closed | Error)] == [Closed]
    closed = seen[-1]
    assert isinstance(closed, Closed)
    assert closed.reason == "call_ended"
    assert not [e for e in seen if isinstance(e, SidebandRestored)]
    assert took < 2.0  # the media peer ended it, not a re-join answered 404 after connect_timeout
    assert conv.stats.sideband_losses == 1
    assert leftover == []
    assert peers_open == 0
