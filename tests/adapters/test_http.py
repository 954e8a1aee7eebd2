"""The HTTP adapter against the local server: ``on_sent`` overlaps local work with the call-creation round trip."""

import httpx
import pytest
import trio
from engine_helpers import API_KEY, client_for, serving

import rtengine
from rtengine.adapters._http import create_call
from rtengine.adapters._peer import PeerService
from rtengine.protocol import multipart_body
from rtengine.server import Faults

HEADERS = {"authorization": f"Bearer {API_KEY}"}


async def test_on_sent_runs_once_the_body_is_out_and_before_the_answer(peers: PeerService, offer_sdp: str) -> None:
    body = multipart_body(offer_sdp, rtengine.SessionConfig().call_session_json())
    sent_at: list[float] = []
    async with serving(peers, faults=Faults(call_delay=0.3)) as server, httpx.AsyncClient() as http:
        with trio.fail_after(10):
            start = trio.current_time()
            answer = await create_call(
                http,
                f"{server.base_url}/realtime/calls",
                body,
                HEADERS,
                on_sent=lambda: sent_at.append(trio.current_time()),
            )
            answered = trio.current_time()
    assert answer.call_id.startswith("rtc_")
    assert len(sent_at) == 1
    # The hook ran while the server was still holding the request (it answers after 0.3 s).
    assert sent_at[0] - start < 0.2 < 0.3 <= answered - start
    # The bytes on the wire are a plain request: an exact Content-Length, no chunked encoding.
    call = server.record.calls[-1]
    assert call.headers["content-length"] == str(len(body.content))
    assert "transfer-encoding" not in call.headers
    assert call.part_names == ["sdp", "session"]
    assert call.sdp == offer_sdp


async def test_on_sent_runs_once_across_retries(peers: PeerService, offer_sdp: str) -> None:
    body = multipart_body(offer_sdp, "{}")
    calls: list[int] = []
    async with serving(peers, faults=Faults(call_status=503)) as server, httpx.AsyncClient() as http:
        with trio.fail_after(10), pytest.raises(rtengine.CallRejected) as raised:
            await create_call(
                http,
                f"{server.base_url}/realtime/calls",
                body,
                HEADERS,
                retries=2,
                backoff_base=0.01,
                on_sent=lambda: calls.append(len(server.record.calls)),
            )
    assert raised.value.status == 503
    assert len(server.record.calls) == 3
    assert len(calls) == 1


async def test_conversation_timeline_counts_from_before_the_post(peers: PeerService, offer_sdp: str) -> None:
    """The conversation is built during the POST, but its clock starts before it: ``answer`` includes the call."""
    async with serving(peers, faults=Faults(call_delay=0.3)) as server, client_for(server) as client:
        with trio.fail_after(10):
            start = trio.current_time()
            async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp) as conv:
                assert conv.started_at - start < 0.1
                assert conv.timeline["answer"] >= 0.3
