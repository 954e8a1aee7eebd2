"""The short way to the pool (``rtengine.adapters._http_direct``): the same bytes on the wire as ``client.post``; the
client asked instead whenever it would add something (event hooks, cookies, an environment proxy); transport errors
as the client raises them. Against raw HTTP/1.1 servers on 127.0.0.1:0."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import MappingProxyType

import httpx
import pytest
import trio
from loopback import serving_raw
from raw_requests import Seen

import rtengine
from rtengine.adapters._http_direct import Poster, pooled_client

AUTH = MappingProxyType({"authorization": "Bearer sk-test-0123456789", "user-agent": "rtengine/0.1"})
BODY = b'{"type":"realtime","instructions":"Hello."}'


@asynccontextmanager
async def pooled(trust_env: bool = False) -> AsyncIterator[tuple[httpx.AsyncClient, Poster, bool]]:
    """The client rtengine builds, a :class:`Poster` on it, and whether the short way is open to it."""
    http, pool = pooled_client(
        verify=ssl.create_default_context(),
        timeout=httpx.Timeout(5.0),
        limits=httpx.Limits(),
        headers={"user-agent": "rtengine/0.1"},
        trust_env=trust_env,
    )
    async with http:
        yield http, Poster(lambda: http, lambda: pool), pool is not None


async def _post(poster: Poster, url: str) -> int:
    response = await poster.post(url, AUTH, BODY, content_type="application/json")
    await response.aread()
    await response.aclose()
    return response.status_code


async def test_the_short_way_sends_the_bytes_client_post_sends(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    seen = Seen()
    async with serving_raw(seen.serve) as port, pooled() as (http, poster, short):
        url = f"http://127.0.0.1:{port}/v1/realtime/calls/rtc_1/accept"
        with trio.fail_after(10):
            floor = await http.post(url, content=BODY, headers={**AUTH, "content-type": "application/json"})
            assert floor.status_code == 200
            assert await _post(poster, url) == 200
    assert short
    assert len(seen.requests) == 2
    assert seen.requests[1] == seen.requests[0]  # every header, in the same order, and the body
    assert b"\r\ncontent-type: application/json\r\n" in seen.requests[0]
    # httpx logs each request it sends itself; the short way went past it, straight to the pool.
    assert [r.getMessage() for r in caplog.records if r.name == "httpx"] == [
        f'HTTP Request: POST {url} "HTTP/1.1 200 OK"'
    ]


async def test_an_event_hook_sees_the_request() -> None:
    seen = Seen()
    hooked: list[str] = []

    async def hook(request: httpx.Request) -> None:
        hooked.append(request.url.path)

    async with serving_raw(seen.serve) as port, pooled() as (http, poster, _):
        http.event_hooks["request"].append(hook)
        with trio.fail_after(10):
            assert await _post(poster, f"http://127.0.0.1:{port}/v1/realtime/calls/rtc_1/accept") == 200
    assert hooked == ["/v1/realtime/calls/rtc_1/accept"]


async def test_a_cookie_the_server_sets_is_sent_back_as_the_client_does(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    seen = Seen(b"HTTP/1.1 200 OK\r\nset-cookie: lb=7; Path=/\r\ncontent-length: 0\r\n\r\n")
    async with serving_raw(seen.serve) as port, pooled() as (http, poster, _):
        url = f"http://127.0.0.1:{port}/v1/realtime/calls/rtc_1/accept"
        with trio.fail_after(10):
            await _post(poster, url)
            floor = await http.post(url, content=BODY, headers={**AUTH, "content-type": "application/json"})
            assert floor.status_code == 200
            await _post(poster, url)
    assert "cookie" not in seen.headers(0)
    assert seen.headers(1)["cookie"] == "lb=7"
    assert seen.requests[2] == seen.requests[1]
    # Still the short way with a cookie in the jar: httpx logged only the request it sent itself.
    assert len([r for r in caplog.records if r.name == "httpx"]) == 1


@pytest.mark.parametrize("trust_env", [True, False])
async def test_an_environment_proxy_is_followed_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch, trust_env: bool
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    proxy, target = Seen(), Seen()
    async with serving_raw(proxy.serve) as proxy_port, serving_raw(target.serve) as port:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
        async with pooled(trust_env=trust_env) as (_, poster, short):
            url = f"http://127.0.0.1:{port}/v1/realtime/calls/rtc_1/accept"
            with trio.fail_after(10):
                assert await _post(poster, url) == 200
    assert short is not trust_env
    reached, missed = (proxy, target) if trust_env else (target, proxy)
    assert missed.requests == []
    # Through the proxy, the request line names the whole URL (absolute form).
    target_path = url if trust_env else "/v1/realtime/calls/rtc_1/accept"
    assert reached.requests[0].startswith(f"POST {target_path} HTTP/1.1\r\n".encode())


async def test_a_refused_connection_raises_httpx_error_with_its_request() -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()  # nothing listens there now
    url = f"http://127.0.0.1:{port}/v1/realtime/calls/rtc_1/accept"
    async with pooled() as (_, poster, short):
        with trio.fail_after(10), pytest.raises(httpx.ConnectError) as raised:
            await _post(poster, url)
    assert short
    assert str(raised.value.request.url) == url


def test_a_client_takes_either_an_http_client_or_a_transport_for_its_own() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with pytest.raises(rtengine.ConfigError, match="either http_client or http_transport"):
        rtengine.RealtimeClient(
            "http://127.0.0.1:9/v1", api_key="k", http_client=httpx.AsyncClient(), http_transport=transport
        )
