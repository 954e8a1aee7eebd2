"""The simulated phone as an app lives with it (review of #12): a call the app accepted stays live when its webhook
deliveries then fail, and the start-up call reaches an app started a few seconds after the server."""

from __future__ import annotations

import trio
from engine_helpers import client_for, serving
from loopback import Reply, serving_routes
from sip_helpers import SECRET

import rtengine
from rtengine import webhooks
from rtengine.adapters import HttpRequest
from rtengine.adapters._peer import PeerService
from rtengine.server import SipScript

SESSION = rtengine.SessionConfig(instructions="Answer the phone.")


class _AcceptsThenFails:
    """A webhook endpoint that accepts the call inside its handler, then answers every delivery 500 (a crash after
    the accept, or a proxy error on the way back)."""

    def __init__(self, client: rtengine.RealtimeClient) -> None:
        self.client = client
        self.accepted: list[str] = []

    async def route(self, request: HttpRequest) -> Reply:
        call = webhooks.verify(request.headers, request.body, SECRET)
        if not self.accepted:
            await self.client.calls.accept(call.call_id, SESSION)
            self.accepted.append(call.call_id)
        return 500, [], b""


async def test_a_failed_delivery_after_the_accept_leaves_the_accepted_call_alone(peers: PeerService) -> None:
    script = SipScript(calls=0, speech_ms=0, dtmf="", webhook_retries=1, webhook_backoff=0.01)
    async with serving(peers, webhook_secret=SECRET, sip=script) as server, client_for(server) as client:
        hook = _AcceptsThenFails(client)
        async with serving_routes(hook.route) as port:
            with trio.fail_after(10):
                sip = await server.sip.place_call(f"http://127.0.0.1:{port}/hook")
                assert sip.deliveries == [500, 500]
                assert hook.accepted == [sip.call_id]
                state = sip.state
                await client.calls.refer(sip.call_id, "tel:+14155550123")  # the call is live: it can be transferred
    assert state == "accepted"
    assert sip.end_reason == "REFER tel:+14155550123"


async def test_the_first_call_reaches_an_app_started_a_few_seconds_after_the_server(peers: PeerService) -> None:
    with trio.socket.socket() as probe:  # a loopback port nobody listens on yet
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = SipScript(calls=1, speech_ms=0, dtmf="", ring_seconds=1.0)
    url = f"http://127.0.0.1:{port}/hook"
    delivered: list[str] = []

    async def route(request: HttpRequest) -> Reply:
        delivered.append(webhooks.verify(request.headers, request.body, SECRET).call_id)
        return 200, [], b""

    async with serving(peers, webhook_secret=SECRET, sip_webhook=url, sip=script) as server:
        with trio.fail_after(15):
            await trio.sleep(3.0)  # the developer starts the app after the server
            async with serving_routes(route, port=port):
                with trio.move_on_after(5.0):
                    while not delivered:  # noqa: ASYNC110 - the receiver sets no event
                        await trio.sleep(0.05)
        placed = list(server.sip.calls.values())
    assert [call.call_id for call in placed] == delivered
