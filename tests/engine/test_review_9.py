"""Adversarial review of session 9 (rev9), engine side: text the wire cannot carry, handed to rtengine through a
path the command dataclasses do not cover — a session's turn detection, the offer SDP, a client's extra headers and
base URL — is the caller's :class:`~rtengine.ConfigError` on the caller's line, and ends nothing."""

import pytest
import trio
from engine_helpers import API_KEY, client_for, serving, until

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import Closed, Error, ItemAdded, SessionUpdated

LONE = "\ud800"


def _semantic(eagerness: str) -> rtengine.TurnDetection:
    return rtengine.TurnDetection("semantic_vad", eagerness=eagerness)  # type: ignore[arg-type]


@pytest.mark.xfail(
    strict=True,
    reason="rev9 finding 1: an eagerness with a lone surrogate is accepted; the session.update carrying it fails "
    "inside the socket's write and the conversation ends with Error (ConnectionLost) and Closed('error')",
)
async def test_a_turn_detection_the_wire_cannot_carry_is_refused_and_the_conversation_goes_on(
    peers: PeerService,
) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, rtengine.SessionConfig()) as conv:
                await until(conv, SessionUpdated)
                with pytest.raises(rtengine.ConfigError, match="eagerness"):
                    await conv.update_session(turn_detection=_semantic(LONE))
                await conv.send_text("still here")
                seen = await until(conv, ItemAdded)
                assert conv.active
                await conv.close()
                seen += [event async for event in conv.events]
    assert not [e for e in seen if isinstance(e, Error)]
    assert seen[-1] == Closed("requested")


@pytest.mark.xfail(
    strict=True,
    reason="rev9 finding 2: open_conversation(offer_sdp=...) with a lone surrogate raises a bare "
    "UnicodeEncodeError from the call body's encoding (bytes: a TypeError), not a ConfigError",
)
@pytest.mark.parametrize("bad", ["lone", "bytes"])
async def test_an_offer_the_wire_cannot_carry_is_refused_before_any_call(
    peers: PeerService, offer_sdp: str, bad: str
) -> None:
    offer: object = offer_sdp + f"a=x-note:{LONE}\r\n" if bad == "lone" else offer_sdp.encode()
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10), pytest.raises(rtengine.ConfigError, match="offer_sdp") as info:
            async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer):  # type: ignore[arg-type]
                pass
    assert "a=x-note" not in str(info.value)
    assert server.record.calls == []


@pytest.mark.xfail(
    strict=True,
    reason="rev9 finding 3: extra_headers are not checked: a lone surrogate or a non-ASCII value fails inside the "
    "HTTP or websocket library as a bare UnicodeEncodeError, and a CR/LF or NUL as ConnectFailed whose message "
    "quotes the header's value (a secret, for an api-key header)",
)
@pytest.mark.parametrize("value", [f"secret{LONE}", "secret€", "secret\r\nX-Injected: 1", "secret\x00"])
async def test_an_extra_header_no_request_can_carry_is_refused_by_the_client(peers: PeerService, value: str) -> None:
    async with serving(peers) as server:
        with pytest.raises(rtengine.ConfigError, match="'api-key'") as info:
            rtengine.RealtimeClient(server.base_url, api_key=API_KEY, extra_headers={"api-key": value})
        assert "secret" not in str(info.value)
        with pytest.raises(rtengine.ConfigError, match="header name"):
            rtengine.RealtimeClient(server.base_url, api_key=API_KEY, extra_headers={f"x-{LONE}": "v"})


async def test_extra_headers_a_request_can_carry_still_reach_the_server(peers: PeerService) -> None:
    """No finding: visible ASCII (with spaces and tabs inside) goes out as given, on a websocket."""
    value = "team\ta; b=c/d ~!#"
    async with serving(peers) as server, client_for(server, extra_headers={"X-Team": value}) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, rtengine.SessionConfig()) as conv:
                await until(conv, SessionUpdated)
    (connection,) = list(server.record.connections)
    assert connection.headers.get("x-team") == value


@pytest.mark.xfail(
    strict=True,
    reason="rev9 finding 4: a base URL with a lone surrogate is accepted; the call creation fails as a bare "
    "UnicodeEncodeError (a websocket: ConnectFailed)",
)
@pytest.mark.parametrize("name", ["base_url", "realtime_base_url"])
async def test_a_base_url_the_wire_cannot_carry_is_refused_by_the_client(peers: PeerService, name: str) -> None:
    async with serving(peers) as server:
        bad = server.base_url + LONE
        base, realtime = (bad, None) if name == "base_url" else (server.base_url, bad)
        with pytest.raises(rtengine.ConfigError, match=f"{name} holds a lone surrogate"):
            rtengine.RealtimeClient(base, api_key=API_KEY, realtime_base_url=realtime)
