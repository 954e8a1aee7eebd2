"""``client.calls`` accept / reject / refer over httpx (a MockTransport): the requests, the error mapping, and
which are retried — reject (and hang-up) after a 5xx; accept and refer only when no connection could be made."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
import trio

import rtengine

CALL = "rtc_u1_9c6574da8b8a41a18da9308f4ad974ce"
NOT_FOUND = {"error": {"message": "No session found", "type": "invalid_request_error", "code": "call_id_not_found"}}
SESSION = rtengine.SessionConfig(instructions="Hello.")


Handler = Callable[[httpx.Request], httpx.Response]
ClientFor = Callable[[Handler], rtengine.RealtimeClient]


@pytest.fixture(params=["http_client", "http_transport"])
def make_client(request: pytest.FixtureRequest) -> ClientFor:
    """A client over a MockTransport: the caller's httpx client (requests through ``client.send``), or the one
    rtengine builds around the transport (requests the short way to it: rtengine.adapters._http_direct)."""

    def make(handler: Handler) -> rtengine.RealtimeClient:
        mock = httpx.MockTransport(handler)
        if request.param == "http_client":
            return rtengine.RealtimeClient(
                "https://api.example/v1",
                api_key="sk-x",
                http_client=httpx.AsyncClient(transport=mock),
                backoff_base=0.001,
            )
        return rtengine.RealtimeClient(
            "https://api.example/v1", api_key="sk-x", http_transport=mock, backoff_base=0.001
        )

    return make


async def test_the_requests(make_client: ClientFor) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    with trio.fail_after(5):
        async with make_client(handler) as client:
            await client.calls.accept(CALL, SESSION)
            await client.calls.reject(CALL)
            await client.calls.reject(CALL, status_code=486)
            await client.calls.refer(CALL, "tel:+14155550123")
            await client.calls.hangup(CALL)
    paths = [r.url.path for r in seen]
    base = f"/v1/realtime/calls/{CALL}"
    assert paths == [f"{base}/accept", f"{base}/reject", f"{base}/reject", f"{base}/refer", f"{base}/hangup"]
    assert all(r.headers["authorization"] == "Bearer sk-x" for r in seen)
    assert json.loads(seen[0].content) == {**SESSION.update_payload(), "model": SESSION.model}
    assert seen[0].headers["content-type"] == "application/json"
    assert [json.loads(r.content) for r in seen[1:4]] == [{}, {"status_code": 486}, {"target_uri": "tel:+14155550123"}]


@pytest.mark.parametrize("action", ["accept", "refer"])
async def test_accept_and_refer_are_not_retried_after_a_5xx(make_client: ClientFor, action: str) -> None:
    count = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        return httpx.Response(503, json={"error": {"message": "busy"}})

    with trio.fail_after(5):
        async with make_client(handler) as client:
            request = (
                client.calls.accept(CALL, SESSION)
                if action == "accept"
                else client.calls.refer(CALL, "sip:desk@shop.example")
            )
            with pytest.raises(rtengine.CallRejected) as caught:
                await request
    assert caught.value.status == 503
    assert count == 1


async def test_accept_is_retried_when_no_connection_could_be_made(make_client: ClientFor) -> None:
    count = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        if count < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200)

    with trio.fail_after(5):
        async with make_client(handler) as client:
            await client.calls.accept(CALL, SESSION)
    assert count == 3


async def test_accept_is_not_retried_after_a_read_error(make_client: ClientFor) -> None:
    count = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        raise httpx.ReadError("connection reset", request=request)

    with trio.fail_after(5):
        async with make_client(handler) as client:
            with pytest.raises(rtengine.ConnectFailed):
                await client.calls.accept(CALL, SESSION)
    assert count == 1


async def test_reject_is_retried_and_a_404_on_a_retry_means_it_went_through(make_client: ClientFor) -> None:
    answers = [httpx.Response(502), httpx.Response(404, json=NOT_FOUND)]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    with trio.fail_after(5):
        async with make_client(handler) as client:
            await client.calls.reject(CALL)
    assert answers == []


async def test_errors_are_specific(make_client: ClientFor) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/refer"):
            return httpx.Response(400, json={"error": {"message": "bad", "code": "invalid_value"}})
        return httpx.Response(404, json=NOT_FOUND)

    with trio.fail_after(5):
        async with make_client(handler) as client:
            with pytest.raises(rtengine.CallNotFound):
                await client.calls.accept(CALL, SESSION)
            with pytest.raises(rtengine.CallNotFound):
                await client.calls.reject(CALL)  # a 404 on the first attempt is the answer
            with pytest.raises(rtengine.CallRejected) as bad:
                await client.calls.refer(CALL, "tel:+1")
            assert bad.value.status == 400
            assert not isinstance(bad.value, rtengine.CallNotFound)
            with pytest.raises(rtengine.InvalidCallId):
                await client.calls.hangup("rtc_../../v1/files")
            with pytest.raises(rtengine.ConfigError):
                await client.calls.reject(CALL, status_code=200)


async def test_a_key_the_server_echoes_is_scrubbed_from_the_error(make_client: ClientFor) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        echoed = request.headers["authorization"]
        return httpx.Response(400, json={"error": {"message": f"bad request from {echoed}", "code": "invalid"}})

    with trio.fail_after(5):
        async with make_client(handler) as client:
            with pytest.raises(rtengine.CallRejected) as caught:
                await client.calls.refer(CALL, "tel:+1")
    assert "sk-x" not in str(caught.value)
    assert "sk-x" not in caught.value.body
