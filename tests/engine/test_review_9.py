"""Adversarial review of session 9 (rev9), engine side: text the wire cannot carry, handed to rtengine through a
path the command dataclasses do not cover — a session's turn detection, the offer SDP, a client's extra headers and
base URL (findings 1-4, fixed) — is the caller's :class:`~rtengine.ConfigError` on the caller's line, and ends
nothing."""

import pytest
import trio
from engine_helpers import API_KEY, client_for, serving, until
from rejoin_helpers import joins_of

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import (
    Closed,
    ConnectionDropped,
    Error,
    ItemAdded,
    ResponseDone,
    SessionRestored,
    SessionUpdated,
    SidebandLost,
    SidebandRestored,
)
from rtengine.server import Faults

LONE = "\ud800"


def _semantic(eagerness: str) -> rtengine.TurnDetection:
    return rtengine.TurnDetection("semantic_vad", eagerness=eagerness)  # type: ignore[arg-type]


async def test_a_turn_detection_the_wire_cannot_carry_is_refused_and_the_conversation_goes_on(
    peers: PeerService,
) -> None:
    """Finding 1: the ``session.update`` carrying it failed in the socket's write: ``Error`` (ConnectionLost) and
    ``Closed("error")``."""
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


@pytest.mark.parametrize("bad", ["lone", "bytes"])
async def test_an_offer_the_wire_cannot_carry_is_refused_before_any_call(
    peers: PeerService, offer_sdp: str, bad: str
) -> None:
    """Finding 2: a bare ``UnicodeEncodeError`` (bytes: a ``TypeError``) from the call body's encoding."""
    offer: object = offer_sdp + f"a=x-note:{LONE}\r\n" if bad == "lone" else offer_sdp.encode()
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10), pytest.raises(rtengine.ConfigError, match="offer_sdp") as info:
            async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer):  # type: ignore[arg-type]
                pass
    assert "a=x-note" not in str(info.value)
    assert server.record.calls == []


@pytest.mark.parametrize("value", [f"secret{LONE}", "secret€", "secret\r\nX-Injected: 1", "secret\x00"])
async def test_an_extra_header_no_request_can_carry_is_refused_by_the_client(peers: PeerService, value: str) -> None:
    """Finding 3: a bare ``UnicodeEncodeError`` inside httpx or the websocket opening, or (CR/LF, NUL) a
    ``ConnectFailed`` whose message quoted the value — a secret here."""
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


@pytest.mark.parametrize("name", ["base_url", "realtime_base_url"])
async def test_a_base_url_the_wire_cannot_carry_is_refused_by_the_client(peers: PeerService, name: str) -> None:
    """Finding 4: accepted, then a bare ``UnicodeEncodeError`` at the call creation (a websocket: ConnectFailed)."""
    async with serving(peers) as server:
        bad = server.base_url + LONE
        base, realtime = (bad, None) if name == "base_url" else (server.base_url, bad)
        with pytest.raises(rtengine.ConfigError, match=f"{name} holds a lone surrogate"):
            rtengine.RealtimeClient(base, api_key=API_KEY, realtime_base_url=realtime)


@pytest.mark.parametrize("mode", ["reset", "eof", "1011"])
async def test_a_sideband_dropped_on_its_response_create_is_joined_again_and_the_response_comes_once(
    peers: PeerService, offer_sdp: str, mode: str
) -> None:
    """No finding: ``drop_sideband_on="response.create"`` in every mode — the text before the create was handled on
    the first sideband, the create never reached the server there, the engine joins again and sends it once more:
    one response; after a ``1011`` the server read the engine's CLOSE reply (finding 6's fix)."""
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp) as conv:
                seen = await until(conv, SessionUpdated)
                server.set_faults(Faults(drop_sideband=mode, drop_sideband_on="response.create"))  # type: ignore[arg-type]
                await conv.send_text("answer this")
                await conv.request_response()
                seen += await until(conv, SidebandRestored)
                seen += await until(conv, ResponseDone)
                await conv.close()
                seen += [event async for event in conv.events]
    first, second = joins_of(server, conv)
    assert [f["type"] for f in first.frames_in] == ["session.update", "conversation.item.create"]
    assert [f["type"] for f in second.frames_in] == ["session.update", "response.create"]
    assert first.end == {"reset": "abrupt", "eof": "server_eof", "1011": "server_close"}[mode]
    assert first.close_answered is (True if mode == "1011" else None)
    lost = next(e for e in seen if isinstance(e, SidebandLost))
    assert lost.code == (1011 if mode == "1011" else None)
    assert len([e for e in seen if isinstance(e, ResponseDone)]) == 1
    assert not [e for e in seen if isinstance(e, Error)]
    assert seen[-1] == Closed("requested")


async def test_a_lone_surrogate_the_server_sent_is_replayed_as_it_came_after_a_reconnect(peers: PeerService) -> None:
    """Finding 10: the replay's write failed in UTF-8 on every reconnect attempt, and the conversation ended with
    ``Error``; now the item goes back escaped, as the server sent it."""
    item = {
        "id": "item_server_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": f"half a pair {LONE} here"}],
    }
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, rtengine.SessionConfig(), reconnect=True) as conv:
                seen = await until(conv, SessionUpdated)
                for kind in ("conversation.item.added", "conversation.item.done"):
                    await server.send_event({"type": kind, "previous_item_id": None, "item": item})
                await conv.send_text("then the network drops")
                seen += await until(conv, ItemAdded)
                sent = len(server.record.directs()[0].frames_out)
                server.set_faults(Faults(close_after_events=sent + 1, close_mode="abrupt"))
                await conv.send_text("drop now")
                seen += await until(conv, ConnectionDropped)
                server.set_faults(Faults())
                seen += await until(conv, SessionRestored)
                await conv.close()
                seen += [event async for event in conv.events]
    assert not [e for e in seen if isinstance(e, Error)]
    assert seen[-1] == Closed("requested")
    replayed = [
        frame["item"]["content"][0]["text"]
        for frame in server.record.directs()[1].frames_in
        if frame["type"] == "conversation.item.create" and frame["item"]["role"] == "assistant"
    ]
    assert replayed == [f"half a pair {LONE} here"]
