"""The simulated phone and the SIP Calls API of the local server, driven through ``client.calls``: webhook
deliveries (signed, retried on 5xx and timeouts like the API's), accept / reject / refer / hang-up and the API's
errors for unknown, ringing and ended calls, and a caller who hangs up mid-turn."""

from __future__ import annotations

import httpx
import pytest
import trio
from engine_helpers import API_KEY, client_for, drain, serving
from sip_helpers import SECRET, placed_call, receiving, wait_for_call

import rtengine
from rtengine import webhooks
from rtengine.adapters._peer import PeerService
from rtengine.events import Closed, DtmfReceived, ResponseCreated, ResponseDone, Started
from rtengine.server import SipScript

SESSION = rtengine.SessionConfig(instructions="Answer the phone.")
QUIET = SipScript(calls=0, speech_ms=0, dtmf="", ring_seconds=5.0)


async def test_webhook_is_retried_on_5xx_and_timeouts_with_the_same_id(peers: PeerService) -> None:
    script = SipScript(calls=0, webhook_timeout=0.3, webhook_backoff=0.05, ring_seconds=0.5)
    async with serving(peers, webhook_secret=SECRET, sip=script) as server, receiving(503, "hang", 200) as hook:
        with trio.fail_after(10):
            sip = await server.sip.place_call(hook.url)
    assert sip.deliveries == [503, "timeout", 200]
    assert len({d.headers["webhook-id"] for d in hook.deliveries}) == 1
    for delivery in hook.deliveries:  # each attempt is signed for its own timestamp
        assert webhooks.verify(delivery.headers, delivery.body, SECRET).call_id == sip.call_id
    incoming = hook.calls[0]
    assert incoming.call_id == sip.call_id
    assert incoming.header("to") == script.to_uri
    assert (sip.state, sip.end_reason) == ("no_answer", "487 no answer")  # nobody accepted it


async def test_every_failed_delivery_ends_the_call(peers: PeerService) -> None:
    script = SipScript(calls=0, webhook_retries=2, webhook_backoff=0.01)
    async with serving(peers, webhook_secret=SECRET, sip=script) as server, receiving(500, 502, 503) as hook:
        with trio.fail_after(10):
            sip = await server.sip.place_call(hook.url)
    assert sip.deliveries == [500, 502, 503]
    assert len(hook.deliveries) == 3
    assert sip.state == "webhook_failed"


async def test_reject_with_a_status_code_and_the_errors_after_it(peers: PeerService) -> None:
    async with placed_call(peers, QUIET, within=10) as call:
        server, client, call_id = call.server, call.client, call.call_id
        await client.calls.reject(call_id, status_code=486)
        sip = server.sip.calls[call_id]
        await sip.ended.wait()
        assert (sip.state, sip.reject_status, sip.end_reason) == ("rejected", 486, "486 rejected")
        for action in (client.calls.reject(call_id), client.calls.accept(call_id, SESSION)):
            with pytest.raises(rtengine.CallNotFound) as caught:
                await action
            assert caught.value.status == 404


async def test_accept_refer_hangup_and_the_apis_errors(peers: PeerService) -> None:
    async with (
        serving(peers, webhook_secret=SECRET, sip=QUIET) as server,
        client_for(server) as client,
        receiving() as hook,
        trio.open_nursery() as nursery,
    ):
        with trio.fail_after(15):
            for bad in ("rtc_nosuchcall", "rtc_u1_" + "0" * 32):
                for action in (
                    client.calls.accept(bad, SESSION),
                    client.calls.reject(bad),
                    client.calls.refer(bad, "tel:+1555"),
                    client.calls.hangup(bad),
                ):
                    with pytest.raises(rtengine.CallNotFound):
                        await action
            with pytest.raises(rtengine.InvalidCallId):
                await client.calls.accept("rtc_x/../../models", SESSION)
            nursery.start_soon(server.sip.place_call, hook.url)
            call_id = await wait_for_call(hook)
            with pytest.raises(rtengine.CallRejected, match="call_not_accepted") as ringing:
                await client.calls.refer(call_id, "tel:+14155550123")
            assert ringing.value.status == 400
            url = f"{server.base_url}/realtime/calls/{call_id}/accept"
            auth = {"authorization": f"Bearer {API_KEY}"}
            async with httpx.AsyncClient() as raw:
                assert (await raw.post(url, content=b"[1]", headers=auth)).status_code == 400
                assert (await raw.post(url, content=b"{", headers=auth)).status_code == 400
                assert (await raw.post(url, json={"type": "realtime"})).status_code == 401
            await client.calls.accept(call_id, SESSION)
            assert server.open_calls == [call_id]
            with pytest.raises(rtengine.CallRejected, match="call_already_accepted"):
                await client.calls.accept(call_id, SESSION)
            with pytest.raises(rtengine.CallRejected, match="call_already_accepted"):
                await client.calls.reject(call_id)
            with pytest.raises(rtengine.ConfigError):
                await client.calls.refer(call_id, "https://not-a-phone.example")
            await client.calls.hangup(call_id)
            sip = server.sip.calls[call_id]
            await sip.ended.wait()
            assert (sip.state, sip.end_reason) == ("ended", "BYE (app hung up)")
            assert server.open_calls == []
            for action in (client.calls.refer(call_id, "tel:+1555"), client.calls.accept(call_id, SESSION)):
                with pytest.raises(rtengine.CallNotFound):
                    await action


async def test_the_caller_hangs_up_mid_turn(peers: PeerService) -> None:
    script = SipScript(calls=0, caller_hangup_after=0.3, speech_ms=400, dtmf="")
    async with placed_call(peers, script, delta_interval=0.05) as call:
        server, client, call_id = call.server, call.client, call.call_id
        async with rtengine.open_conversation(client, SESSION, accept_call_id=call_id) as conv:
            events = await drain(conv)
        sip = server.sip.calls[call_id]
    assert events[0] == Started("sip", call_id)
    assert sip.end_reason == "BYE (caller hung up)"
    assert isinstance(events[-1], Closed)
    assert (events[-1].reason, events[-1].code) == ("call_ended", 1000)
    kinds = [type(e) for e in events]
    assert ResponseCreated in kinds  # the caller spoke, a response began ...
    assert ResponseDone not in kinds  # ... and the caller hung up before it ended
    assert not any(isinstance(e, DtmfReceived) for e in events)


async def test_the_session_cap_ends_an_accepted_call(peers: PeerService) -> None:
    async with placed_call(peers, QUIET, session_max_seconds=0.6) as call:
        server, client, call_id = call.server, call.client, call.call_id
        async with rtengine.open_conversation(client, SESSION, accept_call_id=call_id) as conv:
            events = await drain(conv)
        sip = server.sip.calls[call_id]
    assert isinstance(events[-1], Closed)
    assert events[-1].code == 1001
    assert sip.end_reason == "BYE (session_expired)"
    assert server.open_calls == []
