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
from engine_helpers import API_KEY, client_for, drain, serving
from sip_helpers import SECRET as SERVER_SECRET
from sip_helpers import receiving, wait_for_call

import rtengine
from rtengine import webhooks
from rtengine.adapters import HttpRequest, Limits, serve_connection
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
Reply = tuple[int, list[tuple[str, str]], bytes]


# --- the accept path -------------------------------------------------------------------------------------------


class _HoldingApi:
    """A Calls API over loopback that never answers ``…/accept`` (its body was received) and answers the rest 200."""

    def __init__(self, accept_status: int | None = None) -> None:
        self.paths: list[str] = []
        self.port = 0
        self.accept_status = accept_status

    async def route(self, request: HttpRequest) -> Reply:
        self.paths.append(request.path)
        if request.path.endswith("/accept"):
            if self.accept_status is not None:  # a gateway's answer: the accept may or may not have gone through
                return self.accept_status, [], _body("upstream timed out", "gateway_timeout")
            await trio.sleep_forever()
        return 200, [], b""

    async def handle(self, stream: trio.abc.Stream) -> None:
        async def no_ws(s: trio.abc.Stream, r: HttpRequest) -> None:
            await s.aclose()

        await serve_connection(stream, route=self.route, websocket=no_ws, limits=Limits(65536), error_body=_body)


def _body(message: str, code: str) -> bytes:
    return json.dumps({"error": {"message": message, "code": code}}).encode()


async def test_an_accept_that_timed_out_after_its_body_went_out_hangs_the_call_up() -> None:
    api = _HoldingApi()
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        api.port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(trio.serve_listeners, api.handle, listeners)
        base = f"http://127.0.0.1:{api.port}/v1"
        with trio.fail_after(10):
            async with rtengine.RealtimeClient(base, api_key=API_KEY, call_timeout=0.5) as client:
                with pytest.raises(rtengine.ConnectFailed):
                    async with rtengine.open_conversation(client, SESSION, accept_call_id=CALL_ID):
                        pytest.fail("the accept was never answered")
        nursery.cancel_scope.cancel()
    assert api.paths == [f"/v1/realtime/calls/{CALL_ID}/accept", f"/v1/realtime/calls/{CALL_ID}/hangup"]


async def test_an_accept_answered_by_a_gateway_error_hangs_the_call_up() -> None:
    api = _HoldingApi(accept_status=504)
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        api.port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(trio.serve_listeners, api.handle, listeners)
        base = f"http://127.0.0.1:{api.port}/v1"
        with trio.fail_after(10):
            async with rtengine.RealtimeClient(base, api_key=API_KEY) as client:
                with pytest.raises(rtengine.CallRejected):
                    async with rtengine.open_conversation(client, SESSION, accept_call_id=CALL_ID):
                        pytest.fail("the accept failed")
        nursery.cancel_scope.cancel()
    assert api.paths == [f"/v1/realtime/calls/{CALL_ID}/accept", f"/v1/realtime/calls/{CALL_ID}/hangup"]


async def test_an_accept_refused_with_a_client_error_is_not_hung_up() -> None:
    api = _HoldingApi(accept_status=400)  # a definite refusal: the call was not accepted, nothing to hang up
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        api.port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(trio.serve_listeners, api.handle, listeners)
        with trio.fail_after(10):
            async with rtengine.RealtimeClient(f"http://127.0.0.1:{api.port}/v1", api_key=API_KEY) as client:
                with pytest.raises(rtengine.CallRejected):
                    async with rtengine.open_conversation(client, SESSION, accept_call_id=CALL_ID):
                        pytest.fail("the accept failed")
        nursery.cancel_scope.cancel()
    assert api.paths == [f"/v1/realtime/calls/{CALL_ID}/accept"]


async def test_the_sip_session_cap_warning_does_not_ask_for_a_re_offer(peers: PeerService) -> None:
    script = SipScript(calls=0, speech_ms=0, dtmf="")
    async with (
        serving(peers, webhook_secret=SERVER_SECRET, sip=script, session_max_seconds=4.0) as server,
        client_for(server) as client,
        receiving() as hook,
        trio.open_nursery() as nursery,
    ):
        with trio.fail_after(15):
            nursery.start_soon(server.sip.place_call, hook.url)
            call_id = await wait_for_call(hook)
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
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        api.port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(trio.serve_listeners, api.handle, listeners)
        with trio.fail_after(10):
            async with (
                rtengine.RealtimeClient(f"http://127.0.0.1:{api.port}/v1", api_key=API_KEY) as client,
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
        nursery.cancel_scope.cancel()
    assert statuses == [200, 200]
    assert calls == 1
