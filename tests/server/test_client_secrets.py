"""``POST /v1/realtime/client_secrets`` against the local server: an ephemeral key (``ek_…``) minted with its session,
as recorded from the real API (pydantic-ai tests/realtime/cassettes/test_webrtc, MIT), valid against the ``openai``
SDK's ``ClientSecretCreateResponse``, and accepted as a bearer for calls and websockets until it expires."""

import time
from typing import Any

import httpx
import pytest
import trio
from helpers import direct, loads
from openai.types.realtime.client_secret_create_response import ClientSecretCreateResponse
from sdk_events import _extras

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.adapters._ws import open_socket
from rtengine.server import LocalServer, ServerOptions, open_local_server

#: The recorded request: an ephemeral key for a browser, answered 200 with ``value``, ``expires_at`` and the session.
CLIENT_SECRET_REQUEST: dict[str, Any] = {
    "expires_after": {"anchor": "created_at", "seconds": 60},
    "session": {
        "type": "realtime",
        "model": "gpt-realtime",
        "instructions": "Be brief.",
        "output_modalities": ["audio"],
        "audio": {"output": {"format": {"rate": 24000, "type": "audio/pcm"}, "voice": "marin"}},
    },
}
API_KEY = {"authorization": "Bearer sk-test"}


async def mint(server: LocalServer, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{server.base_url}/realtime/client_secrets", json=body, headers=headers or {})


async def test_an_ephemeral_client_secret_can_be_minted(server: LocalServer) -> None:
    with trio.fail_after(10):
        response = await mint(server, CLIENT_SECRET_REQUEST)
    assert response.status_code == 200, response.text
    body = response.json()
    parsed = ClientSecretCreateResponse.model_validate(body)
    assert _extras(parsed, "") == []
    assert body["value"].startswith("ek_")
    assert 50 <= body["expires_at"] - time.time() <= 60  # "seconds": 60 from now
    assert body["session"]["instructions"] == "Be brief."
    assert body["session"]["audio"]["output"]["voice"] == "marin"
    assert body["session"]["model"] == "gpt-realtime"
    assert body["session"]["expires_at"] == 0  # as recorded
    assert (await mint(server, CLIENT_SECRET_REQUEST)).json()["value"] != body["value"]


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        ({"expires_after": {"anchor": "created_at", "seconds": 5}}, "expires_after.seconds"),
        ({"expires_after": {"anchor": "now", "seconds": 60}}, "expires_after.anchor"),
        ({"session": {"type": "realtime", "bogus": 1}}, "session.bogus"),
        ({"secret": "x"}, "secret"),
    ],
)
async def test_an_invalid_client_secret_request_is_a_400_naming_the_param(
    server: LocalServer, request_body: dict[str, Any], param: str
) -> None:
    with trio.fail_after(10):
        response = await mint(server, request_body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_the_ephemeral_key_is_a_bearer_for_websockets_and_calls(peers: PeerService, offer_sdp: str) -> None:
    with trio.fail_after(15):
        async with open_local_server(ServerOptions(api_key="sk-test"), peers=peers) as server:
            assert (await mint(server, CLIENT_SECRET_REQUEST)).status_code == 401  # minting needs the API key
            key = (await mint(server, CLIENT_SECRET_REQUEST, API_KEY)).json()["value"]
            bearer = {"authorization": f"Bearer {key}"}
            assert (await mint(server, CLIENT_SECRET_REQUEST, bearer)).status_code == 401  # it cannot mint another
            async with open_socket(direct(server), bearer) as sock:
                assert loads(await sock.receive())["type"] == "session.created"
            with pytest.raises(rtengine.RealtimeError):
                async with open_socket(direct(server), {"authorization": "Bearer ek_not_minted"}):
                    pass
            async with httpx.AsyncClient() as http:
                call = await http.post(
                    f"{server.base_url}/realtime/calls",
                    content=offer_sdp,
                    headers={**bearer, "content-type": "application/sdp"},
                )
    assert call.status_code == 201, call.text


async def test_a_websocket_opened_with_an_ephemeral_key_starts_from_its_session(peers: PeerService) -> None:
    """The API mints a client secret "with an associated session configuration": the session opened with the key
    starts from it (its instructions and voice), and gets a session id and cap of its own."""
    with trio.fail_after(15):
        async with open_local_server(ServerOptions(api_key="sk-test"), peers=peers) as server:
            minted = (await mint(server, CLIENT_SECRET_REQUEST, API_KEY)).json()
            bearer = {"authorization": f"Bearer {minted['value']}"}
            async with open_socket(direct(server), bearer) as sock:
                created = loads(await sock.receive())
    session = created["session"]
    assert created["type"] == "session.created"
    assert (session["instructions"], session["audio"]["output"]["voice"]) == (
        minted["session"]["instructions"],
        minted["session"]["audio"]["output"]["voice"],
    )
    assert session["id"].startswith("sess_")
    assert session["expires_at"] > 0
