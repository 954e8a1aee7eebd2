"""The web app behind a reverse proxy (issue 13): which ``Host`` an ``--allow-host`` name matches, and whose address
the per-client cap counts — the real client's, read from ``Forwarded`` / ``X-Forwarded-For`` only when the
connection comes from a ``--forwarded-allow-ips`` proxy; IPv6 clients by their /64."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from engine_helpers import API_KEY, client_for
from web_helpers import page_session

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.apps._cli_args import parser
from rtengine.apps._web import WebApp, WebLimits, open_web_app
from rtengine.apps._web_clients import TrustedProxies, client_key
from rtengine.apps._web_guard import check_request, host_allowed, served_names
from rtengine.server import ServerOptions, open_local_server


def test_an_allowed_name_matches_the_default_ports_and_the_bound_one_only() -> None:
    names = served_names("127.0.0.1", ["app.example"])
    allowed = frozenset({"app.example", "other.example:8443"})
    accepted = ["app.example", "APP.example:443", "app.example:80", "app.example:8080", "other.example:8443"]
    refused = ["app.example:9999", "other.example", "other.example:443", "evil.example", "localhost", "localhost:443"]
    assert [h for h in accepted if not host_allowed(h, 8080, names, allowed)] == []
    assert [h for h in refused if host_allowed(h, 8080, names, allowed)] == []


def test_a_proxied_origin_may_leave_out_its_default_port() -> None:
    names, allowed = served_names("127.0.0.1"), frozenset({"app.example"})
    ok = {"method": "GET", "websocket": True, "port": 8080, "names": names, "allowed": allowed}
    assert check_request(host="app.example:443", origin="https://app.example", **ok) is None  # type: ignore[arg-type]
    assert check_request(host="app.example", origin="https://app.example", **ok) is None  # type: ignore[arg-type]
    refused = check_request(host="app.example:443", origin="http://app.example", **ok)  # type: ignore[arg-type]
    assert refused is not None
    assert refused[0] == 403


def test_forwarded_headers_count_only_from_a_trusted_proxy() -> None:
    proxy = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    forged = {"x-forwarded-for": "203.0.113.9"}
    assert client_key("198.51.100.7", forged, proxy) == "198.51.100.7"  # not a proxy: its headers are ignored
    assert client_key("127.0.0.1", forged, proxy) == "203.0.113.9"
    # The client wrote the leftmost entry itself; the proxies appended the rest: the first untrusted from the right.
    chain = {"x-forwarded-for": "1.2.3.4, 203.0.113.9, 10.1.2.3"}
    assert client_key("127.0.0.1", chain, proxy) == "203.0.113.9"
    forwarded = {"forwarded": 'for=1.2.3.4, for="[2001:db8:1:2::77]:4711";proto=https', "x-forwarded-for": "9.9.9.9"}
    assert client_key("127.0.0.1", forwarded, proxy) == "2001:db8:1:2::/64"  # RFC 7239 first, IPv6 by its /64
    assert client_key("127.0.0.1", {}, proxy) == "127.0.0.1"
    assert client_key("::ffff:192.0.2.1", {}, TrustedProxies()) == "192.0.2.1"
    assert client_key("2001:db8:1:2::1", {}, TrustedProxies()) == client_key("2001:db8:1:2:ffff::9", {}, proxy)
    assert client_key("2001:db8:1:3::1", {}, proxy) != client_key("2001:db8:1:2::1", {}, proxy)


def test_forwarded_allow_ips_is_checked_at_parsing() -> None:
    args = parser().parse_args(["web", "--forwarded-allow-ips", "127.0.0.1, 10.0.0.0/8"])
    assert args.forwarded_allow_ips == ("127.0.0.1", "10.0.0.0/8")
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["web", "--forwarded-allow-ips", "proxy.example"])
    assert exited.value.code == 2


@asynccontextmanager
async def _web(peers: PeerService, proxies: tuple[str, ...]) -> AsyncIterator[WebApp]:
    options = ServerOptions(api_key=API_KEY, delta_interval=0.0)
    limits = WebLimits(max_calls=10, max_calls_per_client=1)
    async with (
        open_local_server(options, peers=peers) as server,
        client_for(server) as client,
        open_web_app(client, rtengine.SessionConfig(), limits=limits, forwarded_allow_ips=proxies) as app,
    ):
        yield app


async def _status(web: WebApp, forwarded_for: str) -> int | None:
    try:
        async with page_session(web, headers={"x-forwarded-for": forwarded_for}):
            return None
    except rtengine.ConnectFailed as exc:
        return exc.status


async def test_the_per_client_cap_keys_on_the_forwarded_client_behind_a_trusted_proxy(peers: PeerService) -> None:
    with trio.fail_after(30):
        async with _web(peers, ("127.0.0.1",)) as web, page_session(web, headers={"x-forwarded-for": "203.0.113.1"}):
            other, same = await _status(web, "203.0.113.2"), await _status(web, "203.0.113.1")
        async with _web(peers, ()) as web, page_session(web, headers={"x-forwarded-for": "203.0.113.1"}):
            untrusted = await _status(web, "203.0.113.2")  # every client is 127.0.0.1 when no proxy is trusted
    assert (other, same, untrusted) == (None, 429, 429)
