"""A sideband join answered 404 ``call_id_not_found`` means the call is over — a caller (or a browser) who hung up
before the sideband joined — for SIP and WebRTC calls alike: ``Closed("call_ended")``, no ``Error``, no retry (the
rule of a re-join's 404, :func:`rtengine.protocol._reattach.join_refused_ending`)."""

from __future__ import annotations

import trio
from engine_helpers import client_for, drain, ends, serving
from rejoin_helpers import joins_of
from sip_helpers import placed_call

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import Closed, Error
from rtengine.protocol._reattach import join_refused_ending
from rtengine.server import Faults, SipScript

SESSION = rtengine.SessionConfig(instructions="You answer the phone.")


def test_only_a_404_on_a_join_means_the_call_ended() -> None:
    ended = join_refused_ending(404)
    assert ended is not None
    assert ended.reason == "call_ended"
    assert [join_refused_ending(status) for status in (None, 400, 401, 403, 429, 500, 503)] == [None] * 7


async def test_a_caller_who_hangs_up_before_the_join_ends_the_conversation_as_call_ended(peers: PeerService) -> None:
    script = SipScript(calls=0, speech_ms=0, dtmf="", caller_hangup_after=0.0)
    faults = Faults(sideband_accept_delay=0.2)
    async with placed_call(peers, script, faults=faults) as call:
        server, client, call_id = call.server, call.client, call.call_id
        async with rtengine.open_conversation(client, SESSION, accept_call_id=call_id) as conv:
            events = await drain(conv)
    assert server.sip.calls[call_id].end_reason == "BYE (caller hung up)"
    assert [e for e in ends(events) if isinstance(e, Error)] == []
    assert isinstance(events[-1], Closed)
    assert events[-1].reason == "call_ended"


async def test_a_webrtc_call_hung_up_before_its_sideband_joined_ends_as_call_ended(
    peers: PeerService, offer_sdp: str
) -> None:
    faults = Faults(refuse_sideband_joins=1)  # the first join is refused (503): the call ends before the retry
    async with (
        serving(peers, faults=faults) as server,
        client_for(server, backoff_base=0.5, sideband_retries=4) as client,
    ):
        with trio.fail_after(15):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                assert conv.call_id is not None
                call_id = conv.call_id
                await server.record.wait_until(lambda: len(server.record.joins(call_id)) >= 1)
                assert await server.end_call(call_id)  # the browser hung up
                events = await drain(conv)
    assert [e for e in events if isinstance(e, Error)] == []
    assert isinstance(events[-1], Closed)
    assert events[-1].reason == "call_ended"
    assert [join.status for join in joins_of(server, conv)] == [503, 404]  # the 404 is not retried
