"""An accept whose outcome is unknown (timed out after its body went out, or a gateway's 5xx) hangs the call up; a
definite refusal does not; a SIP call's session-cap warning advises a transfer, not a re-offer; the example phone
app acknowledges a retried delivery with 200 and answers the call once (review of #12)."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
import trio
from engine_helpers import API_KEY, drain
from loopback import Reply, error_body, serving_routes
from sip_helpers import placed_call

import rtengine
from rtengine import webhooks
from rtengine.adapters import HttpRequest
from rtengine.adapters._peer import PeerService
from rtengine.apps._phone import WEBHOOK_PATH, open_phone_app
from rtengine.events import Closed, Error
from rtengine.protocol._webhooks import incoming_call_payload
from rtengine.server import SipScript

KEY = b"rtengine-review-webhook-key-32b!"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
NOW = 1_764_460_800
CALL_ID = "rtc_u1_9c6574da8b8a41a18da9308f4ad974ce"
BODY = json.dumps(incoming_call_payload("evt_1", CALL_ID, [("From", "<sip:+1555@x>")], NOW)).encode()
SESSION = rtengine.SessionConfig(instructions="You answer the phone.")


# --- the accept path -------------------------------------------------------------------------------------------


class _HoldingApi:
    """A Calls API over loopback that never answers ``…/accept`` (its body was received) and answers the rest 200."""

    def __init__(self, accept_status: int | None = None) -> None:
        self.paths: list[str] = []
        self.accept_status = accept_status

    async def route(self, request: HttpRequest) -> Reply:
        self.paths.append(request.path)
        if request.path.endswith("/accept"):
            if self.accept_status is not None:  # a gateway's answer: the accept may or may not have gone through
                return self.accept_status, [], error_body("upstream timed out", "gateway_timeout")
            await trio.sleep_forever()
        return 200, [], b""


async def test_an_accept_that_timed_out_after_its_body_went_out_hangs_the_call_up() -> None:
    api = _HoldingApi()
    async with serving_routes(api.route) as port:
        base = f"http://127.0.0.1:{port}/v1"
        with trio.fail_after(10):
            async with rtengine.RealtimeClient(base, api_key=API_KEY, call_timeout=0.5) as client:
                with pytest.raises(rtengine.ConnectFailed):
                    async with rtengine.open_conversation(client, SESSION, accept_call_id=CALL_ID):
                        pytest.fail("the accept was never answered")
    assert api.paths == [f"/v1/realtime/calls/{CALL_ID}/accept", f"/v1/realtime/calls/{CALL_ID}/hangup"]


async def test_an_accept_answered_by_a_gateway_error_hangs_the_call_up() -> None:
    api = _HoldingApi(accept_status=504)
    async with serving_routes(api.route) as port:
        base = f"http://127.0.0.1:{port}/v1"
        with trio.fail_after(10):
            async with rtengine.RealtimeClient(base, api_key=API_KEY) as client:
                with pytest.raises(rtengine.CallRejected):
                    async with rtengine.open_conversation(client, SESSION, accept_call_id=CALL_ID):
                        pytest.fail("the accept failed")
    assert api.paths == [f"/v1/realtime/calls/{CALL_ID}/accept", f"/v1/realtime/calls/{CALL_ID}/hangup"]


async def test_an_accept_refused_with_a_client_error_is_not_hung_up() -> None:
    api = _HoldingApi(accept_status=400)  # a definite refusal: the call was not accepted, nothing to hang up
    async with serving_routes(api.route) as port:
        with trio.fail_after(10):
            async with rtengine.RealtimeClient(f"http://127.0.0.1:{port}/v1", api_key=API_KEY) as client:
                with pytest.raises(rtengine.CallRejected):
                    async with rtengine.open_conversation(client, SESSION, accept_call_id=CALL_ID):
                        pytest.fail("the accept failed")
    assert api.paths == [f"/v1/realtime/calls/{CALL_ID}/accept"]


async def test_the_sip_session_cap_warning_does_not_ask_for_a_re_offer(peers: PeerService) -> None:
    script = SipScript(calls=0, speech_ms=0, dtmf="")
    async with placed_call(peers, script, session_max_seconds=4.0) as call:
        client, call_id = call.client, call.call_id
        async with rtengine.open_conversation(client, SESSION, accept_call_id=call_id, rotate_margin=2.0) as conv:
            events = await drain(conv)
    warnings = [e for e in events if isinstance(e, Error) and e.code == "session_expiring"]
    assert len(warnings) == 1
    assert not warnings[0].fatal
    assert "offer" not in warnings[0].message
    assert "refer" in warnings[0].message  # what a SIP app can do: transfer the call (or end it)
    assert isinstance(events[-1], Closed)
    assert events[-1].reason == "session_expired"


# --- the example phone app -------------------------------------------------------------------------------------


async def test_the_phone_app_acknowledges_a_retried_delivery_and_answers_the_call_once() -> None:
    signer = webhooks.WebhookSigner(SECRET)
    body = json.dumps(incoming_call_payload("evt_r", CALL_ID, [("From", "<sip:+1555@x>")], int(time.time()))).encode()
    api = _HoldingApi()  # the app's accept hangs here: this test is about the webhook answers only
    async with serving_routes(api.route) as port:
        with trio.fail_after(10):
            async with (
                rtengine.RealtimeClient(f"http://127.0.0.1:{port}/v1", api_key=API_KEY) as client,
                open_phone_app(client, SECRET) as app,
                httpx.AsyncClient() as http,
            ):
                assert app.webhook_url.endswith(WEBHOOK_PATH)
                statuses = []
                for attempt in range(2):  # the first answer was lost: the API retries, fresh timestamp and signature
                    headers = signer.headers("wh_retried", int(time.time()) + attempt, body)
                    response = await http.post(app.webhook_url, content=body, headers=headers)
                    statuses.append(response.status_code)
                calls = len(app.calls)
    assert statuses == [200, 200]
    assert calls == 1
