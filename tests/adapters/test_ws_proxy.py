"""Websockets honour the environment's proxy settings, as call creation does (httpx ``trust_env``): a conversation
and a call's sideband go through a tiny HTTP ``CONNECT`` proxy on loopback; ``NO_PROXY`` sends them direct; a
refused tunnel is a ``ConnectFailed`` that names the status and never the proxy's password."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import httpx
import pytest
import trio
from engine_helpers import API_KEY, serving, until
from rawnet import read_head

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.adapters._ws_proxy import _exempt, proxy_for
from rtengine.events import SessionUpdated

PASSWORD = "proxy-secret-9f8e7d"


@dataclass
class ConnectProxy:
    """What the proxy saw: one request head per connection; ``status`` is what it answers (200: a tunnel)."""

    port: int = 0
    status: int = 200
    heads: list[list[str]] = field(default_factory=list)


async def _pipe(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
        await sink.send_eof()  # type: ignore[attr-defined]
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def _handle(proxy: ConnectProxy, client: trio.SocketStream) -> None:
    async with client:
        head = await read_head(client)
        if b"\r\n\r\n" not in head:
            return
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        proxy.heads.append(lines)
        if proxy.status != 200:
            await client.send_all(f"HTTP/1.1 {proxy.status} No\r\nContent-Length: 0\r\n\r\n".encode())
            return
        host, port = lines[0].split()[1].rsplit(":", 1)
        async with await trio.open_tcp_stream(host, int(port)) as upstream:
            await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_pipe, client, upstream)
                nursery.start_soon(_pipe, upstream, client)


@asynccontextmanager
async def connect_proxy(status: int = 200) -> AsyncIterator[ConnectProxy]:
    proxy = ConnectProxy(status=status)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, partial(_handle, proxy), 0, host="127.0.0.1"))
        proxy.port = listeners[0].socket.getsockname()[1]
        yield proxy
        nursery.cancel_scope.cancel()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


@asynccontextmanager
async def _client(server: rtengine.server.LocalServer) -> AsyncIterator[rtengine.RealtimeClient]:
    # Call creation over plain HTTP would use the proxy too (httpx trust_env): the test proxy only tunnels, so the
    # caller's client goes direct and trust_env=True sends the websockets through the environment's proxy.
    async with (
        httpx.AsyncClient(trust_env=False, follow_redirects=False) as http,
        rtengine.RealtimeClient(server.base_url, api_key=API_KEY, http_client=http, trust_env=True) as client,
    ):
        yield client


async def test_a_websocket_conversation_goes_through_the_proxy(
    peers: PeerService, clean_env: pytest.MonkeyPatch
) -> None:
    async with connect_proxy() as proxy, serving(peers) as server:
        clean_env.setenv("HTTP_PROXY", f"http://user:{PASSWORD}@127.0.0.1:{proxy.port}")
        with trio.fail_after(10):
            async with _client(server) as client, rtengine.open_conversation(client, rtengine.SessionConfig()) as conv:
                await until(conv, SessionUpdated)
    port = server.base_url.rsplit(":", 1)[1].split("/")[0]
    assert len(proxy.heads) == 1
    assert proxy.heads[0][0] == f"CONNECT 127.0.0.1:{port} HTTP/1.1"
    credentials = base64.b64encode(f"user:{PASSWORD}".encode()).decode()
    headers = dict(line.split(": ", 1) for line in proxy.heads[0][1:])
    assert {name.lower(): value for name, value in headers.items()} == {
        "host": f"127.0.0.1:{port}",
        "proxy-authorization": f"Basic {credentials}",
    }  # nothing else: the API key stays inside the tunnel


async def test_a_calls_sideband_goes_through_the_proxy(
    peers: PeerService, offer_sdp: str, clean_env: pytest.MonkeyPatch
) -> None:
    async with connect_proxy() as proxy, serving(peers) as server:
        clean_env.setenv("ALL_PROXY", f"127.0.0.1:{proxy.port}")
        with trio.fail_after(10):
            async with _client(server) as client:
                session = rtengine.SessionConfig()
                async with rtengine.open_conversation(client, session, offer_sdp=offer_sdp) as conv:
                    await until(conv, SessionUpdated)
    assert len(proxy.heads) == 1
    assert proxy.heads[0][0].startswith("CONNECT 127.0.0.1:")
    assert len(server.record.sidebands()) == 1


async def test_no_proxy_sends_the_websocket_direct(peers: PeerService, clean_env: pytest.MonkeyPatch) -> None:
    async with connect_proxy() as proxy, serving(peers) as server:
        clean_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        clean_env.setenv("NO_PROXY", "localhost,127.0.0.1")
        with trio.fail_after(10):
            async with _client(server) as client, rtengine.open_conversation(client, rtengine.SessionConfig()) as conv:
                await until(conv, SessionUpdated)
    assert proxy.heads == []


async def test_a_refused_tunnel_names_the_status_and_not_the_password(
    peers: PeerService, clean_env: pytest.MonkeyPatch
) -> None:
    async with connect_proxy(status=407) as proxy, serving(peers) as server:
        clean_env.setenv("HTTP_PROXY", f"http://user:{PASSWORD}@127.0.0.1:{proxy.port}")
        with trio.fail_after(10), pytest.raises(rtengine.ConnectFailed) as info:
            async with _client(server) as client, rtengine.open_conversation(client, rtengine.SessionConfig()):
                raise AssertionError("must not start")
    assert info.value.status == 407
    assert "407" in str(info.value)
    assert PASSWORD not in str(info.value)
    assert len(proxy.heads) == 1


def test_proxy_selection_follows_the_scheme_and_no_proxy() -> None:
    proxies = {"https": "http://secure:1", "http": "http://plain:2", "no": ".internal.example, 10.0.0.7"}
    assert proxy_for(True, "api.openai.com", proxies) == proxy_for(True, "x", {"https": "http://secure:1"})
    secure = proxy_for(True, "api.openai.com", proxies)
    plain = proxy_for(False, "api.openai.com", proxies)
    assert (secure.host, secure.port) == ("secure", 1)  # type: ignore[union-attr]
    assert (plain.host, plain.port) == ("plain", 2)  # type: ignore[union-attr]
    assert proxy_for(True, "a.internal.example", proxies) is None
    assert proxy_for(True, "10.0.0.7", proxies) is None
    assert proxy_for(True, "api.openai.com", {}) is None
    assert PASSWORD not in repr(proxy_for(True, "h", {"https": f"http://u:{PASSWORD}@p:3"}))
    with pytest.raises(rtengine.ConfigError, match="http:// proxies only") as info:
        proxy_for(True, "api.openai.com", {"https": f"socks5://u:{PASSWORD}@p:1080"})
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "exempt"),
    [
        ("api.openai.com", None, "*", True),
        ("api.openai.com", None, "openai.com", True),
        ("api.openai.com", None, ".openai.com", True),
        ("api.openai.com", None, "i.com", False),
        ("notopenai.com", None, "openai.com", False),
        ("127.0.0.1", 8000, "localhost, 127.0.0.1:8000", True),
        ("127.0.0.1", 8001, "localhost, 127.0.0.1:8000", False),  # another port: through the proxy
        ("127.0.0.1", None, "127.0.0.1:8000", False),  # the default port is not 8000 (as httpx reads it)
        ("::1", None, "[::1]", True),
        ("::1", 9000, "[::1]:9000", True),
        ("example.org", None, "", False),
    ],
)
def test_no_proxy_entries(host: str, port: int | None, no_proxy: str, exempt: bool) -> None:
    assert _exempt(host, port, no_proxy) is exempt
