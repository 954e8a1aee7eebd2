"""An adversarial review of the short way to the pool (``rtengine.adapters._http_direct``), through the public API:
``RealtimeClient`` against raw HTTP/1.1 servers on 127.0.0.1:0. Each test names what a user (or a hostile network)
would see go wrong: bytes that differ from ``client.post``'s, headers or timeouts kept from an earlier request, a
stale session body, the API key in an exception, a response left to the garbage collector."""

from __future__ import annotations

import gc
import gzip
import json
import logging
import traceback
import warnings
from types import MappingProxyType

import httpx
import pytest
import trio
import trio.lowlevel
from loopback import serving_raw
from raw_requests import OK, Seen

import rtengine

CALL = "rtc_u1_9c6574da8b8a41a18da9308f4ad974ce"


def _client(port: int, **options: object) -> rtengine.RealtimeClient:
    return rtengine.RealtimeClient(f"http://127.0.0.1:{port}/v1", api_key="sk-review-0123456789", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("cookie", [False, True])
async def test_a_hang_up_sends_the_bytes_client_post_sends(cookie: bool) -> None:
    seen = Seen()
    async with serving_raw(seen.serve) as port, _client(port) as client:
        url = f"http://127.0.0.1:{port}/v1/realtime/calls/{CALL}/hangup"
        if cookie:  # a cookie in the jar (a CDN's): the Cookie header comes after the client's
            client.http().cookies.set("lb", "7", domain="127.0.0.1", path="/")
        with trio.fail_after(10):
            floor = await client.http().post(url, headers=dict(client.auth_headers()))
            assert floor.status_code == 200
            await client.calls.hangup(CALL)
    assert len(seen.requests) == 2
    assert seen.requests[1] == seen.requests[0]  # every header, in the same order
    assert (b"Cookie: lb=7" in seen.header_lines(1)) is cookie


async def test_a_host_header_the_caller_gives_is_sent_once_as_client_post_does() -> None:
    seen = Seen()
    headers = {"authorization": "Bearer sk-review-0123456789", "host": "api.example"}
    async with serving_raw(seen.serve) as port, _client(port) as client:
        url = f"http://127.0.0.1:{port}/v1/realtime/calls/{CALL}/hangup"
        with trio.fail_after(10):
            floor = await client.http().post(url, headers=headers)
            assert floor.status_code == 200
            await client.calls.hangup(CALL, headers=headers)
    hosts = [line for line in seen.header_lines(1) if line.lower().startswith(b"host:")]
    assert hosts == [b"host: api.example"]
    assert seen.requests[1] == seen.requests[0]


async def test_headers_changed_behind_a_read_only_view_are_sent_as_they_are_now() -> None:
    seen = Seen()
    live = {"authorization": "Bearer sk-tenant-a-0123456789", "x-tenant": "a"}
    view = MappingProxyType(live)  # a read-only view of a dict its owner still changes (a key rotation, a tenant)
    async with serving_raw(seen.serve) as port, _client(port) as client:
        with trio.fail_after(10):
            await client.calls.hangup(CALL, headers=view)
            live["authorization"] = "Bearer sk-tenant-b-0123456789"
            live["x-tenant"] = "b"
            await client.calls.hangup(CALL, headers=view)
    second = seen.header_lines(1)
    assert b"authorization: Bearer sk-tenant-b-0123456789" in second
    assert b"x-tenant: b" in second
    assert not any(b"tenant-a" in line or line == b"x-tenant: a" for line in second)


async def test_a_read_timeout_changed_in_place_on_the_client_applies_to_the_next_request() -> None:
    seen = Seen(OK, None)  # the second request is never answered
    async with serving_raw(seen.serve) as port, _client(port, call_timeout=4.0) as client:
        with trio.fail_after(10):
            await client.calls.accept(CALL, rtengine.SessionConfig(instructions="Hi"))
            client.http().timeout.read = 0.3  # what client.post would read at its next request
            start = trio.current_time()
            with pytest.raises(rtengine.ConnectFailed) as raised:
                await client.calls.accept(CALL, rtengine.SessionConfig(instructions="Hi"))
            took = trio.current_time() - start
    assert "ReadTimeout" in str(raised.value)  # not the whole call's 4 s deadline
    assert took < 3.0


class _Marking(httpx.AsyncBaseTransport):
    """A transport (``http_transport``) that hands requests to a real pool and adds a ``trace`` extension to the
    first request only (as a tracing transport marks the requests it follows); records what each request came with."""

    def __init__(self) -> None:
        self.pool = httpx.AsyncHTTPTransport()
        self.came_with: list[set[str]] = []
        self.traced: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.came_with.append(set(request.extensions))
        if len(self.came_with) == 1:
            request.extensions["trace"] = self.trace
        return await self.pool.handle_async_request(request)

    async def trace(self, name: str, info: object) -> None:
        self.traced.append(name)

    async def aclose(self) -> None:
        await self.pool.aclose()


async def test_what_a_transport_adds_to_one_request_does_not_reach_the_next() -> None:
    seen = Seen()
    transport = _Marking()
    async with serving_raw(seen.serve) as port, _client(port, http_transport=transport) as client:
        with trio.fail_after(10):
            await client.calls.hangup(CALL)
            traced_first = len(transport.traced)
            await client.calls.hangup(CALL)
    assert traced_first > 0
    assert transport.came_with == [{"timeout"}, {"timeout"}]
    assert len(transport.traced) == traced_first  # the second request was not traced


async def test_an_accept_sends_the_session_as_it_is_at_the_call() -> None:
    seen = Seen()
    extra: dict[str, object] = {"tracing": "auto"}
    session = rtengine.SessionConfig(instructions="Hi", extra=extra)
    async with serving_raw(seen.serve) as port, _client(port) as client:
        with trio.fail_after(10):
            await client.calls.accept(CALL, session)
            extra["tracing"] = None  # the caller's dict, changed after the first accept
            expected = json.loads(session.call_session_json())
            await client.calls.accept(CALL, session)
    assert json.loads(seen.body(1)) == expected


@pytest.mark.parametrize("key", ["sk-review-secret\n", "sk-review-secret ", "sk-review\x00secret", "sk-review-sécret"])
async def test_an_api_key_no_header_can_carry_is_a_config_error_that_never_shows_the_key(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen = Seen()
    async with (
        serving_raw(seen.serve) as port,
        rtengine.RealtimeClient(f"http://127.0.0.1:{port}/v1", api_key=key) as cl,
    ):
        with trio.fail_after(10), pytest.raises(rtengine.ConfigError) as raised:
            await cl.calls.accept(CALL, rtengine.SessionConfig(instructions="Hi"))
    shown = "".join(traceback.format_exception(raised.value)) + caplog.text
    for fragment in ("review-secret", "review\\x00secret", "review\x00secret", "sécret", "s\\xe9cret"):
        assert fragment not in shown
    assert seen.requests == []


async def test_an_error_body_that_fails_to_decode_is_closed_not_left_to_the_garbage_collector() -> None:
    seen = Seen(b"HTTP/1.1 400 Bad Request\r\ncontent-encoding: gzip\r\ncontent-length: 5\r\n\r\nhello")
    async with serving_raw(seen.serve) as port, _client(port) as client:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            failed = False
            try:
                with trio.fail_after(10):
                    await client.calls.accept(CALL, rtengine.SessionConfig(instructions="Hi"))
            except rtengine.RealtimeError:
                failed = True  # the exception (and its traceback's frames) let go here
            gc.collect()
            await trio.lowlevel.checkpoint()
        leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        caught.clear()  # a warning holds its generator: let go of them all here, quietly, not in a later test
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
            await trio.lowlevel.checkpoint()
        with trio.fail_after(10):
            await client.calls.hangup(CALL)  # the pool still serves
    assert failed
    assert leaked == []


async def test_a_request_on_a_closed_http_client_raises_a_realtime_error() -> None:
    seen = Seen()
    async with serving_raw(seen.serve) as port, _client(port) as client:
        await client.http().aclose()
        with trio.fail_after(10), pytest.raises(rtengine.RealtimeError):
            await client.calls.hangup(CALL)
    assert seen.requests == []


async def test_a_gzipped_error_body_is_read_decoded() -> None:
    error = {"error": {"message": "No session found", "type": "invalid_request_error", "code": "call_id_not_found"}}
    body = gzip.compress(json.dumps(error).encode())
    head = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
    seen = Seen(head + b"content-length: %d\r\n\r\n" % len(body) + body)
    async with serving_raw(seen.serve) as port, _client(port) as client:
        with trio.fail_after(10), pytest.raises(rtengine.CallNotFound) as raised:
            await client.calls.refer(CALL, "tel:+14155550123")
    assert "No session found" in str(raised.value)
