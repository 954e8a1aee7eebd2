"""Websocket proxy routes and credentials (found by the adversarial review of #13, finding 7): a proxy credential
never appears in an error or repr, whatever characters it holds, and the websocket takes the same route as call
creation (httpx ``trust_env``, ``NO_PROXY`` ports) for the same environment."""

from __future__ import annotations

import base64
from functools import partial

import httpx
import pytest
import trio
from engine_helpers import client_for, serving, until

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.adapters._ws_proxy import proxy_for
from rtengine.events import SessionUpdated

SECRET_HEAD, SECRET_TAIL = "Pr0xyHead", "Pr0xyTail"


@pytest.mark.parametrize("mark", ["/", "#", "?", "@", ":"])
def test_a_proxy_password_with_a_reserved_character_is_used_and_never_shown(mark: str) -> None:
    password = f"{SECRET_HEAD}{mark}{SECRET_TAIL}"
    proxy = proxy_for(True, "api.openai.com", {"https": f"http://user:{password}@proxy.example:3128"})
    assert proxy is not None
    assert (proxy.host, proxy.port) == ("proxy.example", 3128)
    assert proxy.authorization == "Basic " + base64.b64encode(f"user:{password}".encode()).decode()
    with pytest.raises(rtengine.ConfigError) as info:  # a malformed port: the error quotes the URL
        proxy_for(True, "api.openai.com", {"https": f"http://user:{password}@proxy.example:99999"})
    for text in (repr(proxy), proxy.shown, str(info.value), repr(info.value)):
        assert SECRET_HEAD not in text, text
        assert SECRET_TAIL not in text, text


def test_no_proxy_with_another_port_sends_the_websocket_where_httpx_sends_call_creation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "api.openai.com:8443")  # exempts port 8443 only
    client = httpx.Client()
    try:
        httpx_proxied = (
            client._transport_for_url(httpx.URL("https://api.openai.com/v1/realtime")) is not client._transport
        )
    finally:
        client.close()
    from rtengine.adapters._ws_proxy import environment_proxies

    websocket_proxied = proxy_for(True, "api.openai.com", environment_proxies()) is not None
    assert httpx_proxied
    assert websocket_proxied == httpx_proxied


async def _refuse(stream: trio.SocketStream) -> None:
    await stream.aclose()  # a proxy that hangs up on everyone


async def test_a_client_that_does_not_trust_the_environment_opens_websockets_direct(
    peers: PeerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    failed: BaseException | None = None
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, _refuse, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
        async with serving(peers) as server, httpx.AsyncClient(trust_env=False) as http:
            with trio.fail_after(10):
                async with client_for(server, http_client=http) as client:
                    try:
                        async with rtengine.open_conversation(client, rtengine.SessionConfig()) as conv:
                            await until(conv, SessionUpdated)
                            await conv.close()
                    except rtengine.ConnectFailed as exc:
                        failed = exc
        nursery.cancel_scope.cancel()
    assert failed is None, f"the websocket went to the environment's proxy: {failed}"


def test_a_username_only_proxy_token_is_not_shown() -> None:
    token = "Tok3nOnlyUser9f8e"
    proxy = proxy_for(True, "api.openai.com", {"https": f"http://{token}@proxy.example:3128"})
    assert proxy is not None
    assert proxy.authorization is not None  # it is a credential: sent as Proxy-Authorization
    assert token not in repr(proxy)
    assert token not in proxy.shown  # what every ConnectFailed about the proxy quotes
