"""The phone example end to end against the local server: the simulated phone rings the app (a signed webhook),
the app verifies it, accepts inline, answers the caller's speech, and transfers the call on the caller's DTMF key."""

from __future__ import annotations

import base64

import trio
from engine_helpers import client_for, serving

from rtengine.adapters._peer import PeerService
from rtengine.apps._phone import open_phone_app
from rtengine.server import SipScript

SECRET = "whsec_" + base64.b64encode(b"phone-app-test-secret-32-bytes!!").decode()
FAST = SipScript(calls=0, dtmf_delay=0.3, dtmf_interval=0.05, join_wait=5.0)


async def test_the_phone_app_answers_and_transfers_on_dtmf(peers: PeerService) -> None:
    async with (
        serving(peers, webhook_secret=SECRET, sip=FAST) as server,
        client_for(server) as client,
        open_phone_app(client, SECRET, transfer_key="#", transfer_to="sip:front-desk@shop.example") as app,
    ):
        with trio.fail_after(20):
            sip = await server.sip.place_call(app.webhook_url)
            assert sip.state == "accepted"
            assert sip.deliveries == [200]
            await sip.ended.wait()
            call = app.calls[0]
            await call.done.wait()
    assert call.call_id == sip.call_id
    assert call.caller == FAST.from_uri
    phases = call.phases()
    assert phases[:3] == ["webhook_received", "accepted", "started"]
    for phase in (
        "sideband_joined",
        "session_updated",
        "first_response",
        "dtmf 5",
        "dtmf #",
        "refer sip:front-desk@shop.example",
    ):
        assert phase in phases, phases
    assert phases.index("first_response") < phases.index("dtmf 5") < phases.index("refer sip:front-desk@shop.example")
    assert phases[-1].startswith("closed")
    assert sip.refer_to == "sip:front-desk@shop.example"
    assert sip.end_reason == "REFER sip:front-desk@shop.example"
    assert sip.spoke
    assert sip.session is not None
    assert sip.session["instructions"] == app.session.instructions
    assert server.open_calls == []


async def test_a_webhook_with_another_secret_is_refused_and_the_call_rings_out(peers: PeerService) -> None:
    other = "whsec_" + base64.b64encode(b"not-the-phone-apps-secret-32byte").decode()
    script = SipScript(calls=0, ring_seconds=0.5, webhook_retries=0)
    async with (
        serving(peers, webhook_secret=other, sip=script) as server,
        client_for(server) as client,
        open_phone_app(client, SECRET) as app,
    ):
        with trio.fail_after(10):
            sip = await server.sip.place_call(app.webhook_url)
    assert sip.deliveries == [400]  # a 4xx is final: not retried
    assert (sip.state, sip.end_reason) == ("webhook_failed", "webhook not delivered")
    assert app.refused == ["WebhookSignatureError"]
    assert app.calls == []
