"""``POST /v1/realtime/calls/{call_id}/hangup`` answered like the API, over real loopback sockets.

The API's answers, as recorded from api.openai.com by pydantic/pydantic-ai (MIT),
tests/realtime/cassettes/test_openai_ws/test_webrtc_hang_up_ends_the_call.yaml@f0e9ae4803: a live call → ``200``
with ``Content-Length: 0``; the same hang-up again → ``404`` with
``{"error": {"message": "No session found for the provided call_id", "type": "invalid_request_error",
"code": "call_id_not_found", "param": ""}}``.
"""

import httpx
import pytest
import trio
from helpers import call_id_of, create_call, loads, sideband

from rtengine.adapters._peer import PeerService
from rtengine.adapters._ws import open_socket
from rtengine.protocol import SocketEnd
from rtengine.protocol._payloads import encode
from rtengine.server import LocalServer, ServerOptions, open_local_server

NOT_FOUND = {
    "error": {
        "message": "No session found for the provided call_id",
        "type": "invalid_request_error",
        "code": "call_id_not_found",
        "param": "",
    }
}


async def hang_up(server: LocalServer, call_id: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{server.base_url}/realtime/calls/{call_id}/hangup", headers=headers)


def assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == NOT_FOUND


async def test_hangup_of_a_live_call_is_200_empty_and_closes_its_sideband(
    server: LocalServer, peers: PeerService, offer_sdp: str
) -> None:
    with trio.fail_after(10):
        before = peers.open_peers
        call_id = call_id_of(await create_call(server, offer_sdp))
        async with open_socket(sideband(server, call_id), {}) as sock:
            await sock.send(encode({"type": "session.update", "session": {"type": "realtime"}}))
            assert loads(await sock.receive())["type"] == "session.updated"  # a sideband gets no session.created
            response = await hang_up(server, call_id)
            assert response.status_code == 200
            assert response.content == b""
            assert response.headers["content-length"] == "0"
            assert isinstance(await sock.receive(), SocketEnd)  # the server ended the sideband
        await server.record.wait_until(lambda: server.record.sidebands()[0].end is not None)
    assert server.record.sidebands()[0].end == "call_ended"
    assert peers.open_peers == before
    assert server.open_calls == []
    [call] = server.record.calls
    assert call.hung_up
    assert call.end == "hangup"
    assert server.record.hangups == [call_id]
    assert server.record.hung_up_calls() == [call]
    assert server.record.refused_hangups == []


async def test_a_second_hangup_is_404_call_id_not_found(server: LocalServer, offer_sdp: str) -> None:
    with trio.fail_after(10):
        call_id = call_id_of(await create_call(server, offer_sdp))
        assert (await hang_up(server, call_id)).status_code == 200
        assert_not_found(await hang_up(server, call_id))
    assert server.record.hangups == [call_id]
    assert server.record.refused_hangups == [call_id]


async def test_hangup_of_an_unknown_call_is_404(server: LocalServer) -> None:
    with trio.fail_after(10):
        assert_not_found(await hang_up(server, "rtc_u1_ETYJSp3oMdsOb7HW9eMflgesrIs0XaTn"))
    assert server.record.hangups == []
    assert server.record.refused_hangups == ["rtc_u1_ETYJSp3oMdsOb7HW9eMflgesrIs0XaTn"]


@pytest.mark.parametrize("call_id", ["nope", "rtc_", "rtc_../x", "rtc_a%2Fb", "rtc_a b", "rtc_" + "x" * 200])
async def test_hangup_of_an_invalid_call_id_is_404_never_500(server: LocalServer, offer_sdp: str, call_id: str) -> None:
    with trio.fail_after(10):
        live = call_id_of(await create_call(server, offer_sdp))
        assert_not_found(await hang_up(server, call_id))
    assert server.open_calls == [live]  # nothing else was touched
    assert server.record.hangups == []
    assert len(server.record.refused_hangups) == 1


async def test_a_call_outlives_its_sidebands_until_it_is_hung_up(server: LocalServer, offer_sdp: str) -> None:
    """Like the API, the last sideband leaving does not end the call: the hang-up after it is still 200."""
    with trio.fail_after(10):
        call_id = call_id_of(await create_call(server, offer_sdp))
        async with open_socket(sideband(server, call_id), {}) as sock:
            await sock.send(encode({"type": "session.update", "session": {"type": "realtime"}}))
            assert loads(await sock.receive())["type"] == "session.updated"
        await server.record.wait_until(lambda: server.record.sidebands()[0].end is not None)
        assert server.open_calls == [call_id]
        assert (await hang_up(server, call_id)).status_code == 200
        assert_not_found(await hang_up(server, call_id))
    [call] = server.record.calls
    assert call.end == "hangup"
    assert server.record.sidebands()[0].end == "client_close"


async def test_hangup_needs_the_api_key_when_one_is_set(peers: PeerService, offer_sdp: str) -> None:
    with trio.fail_after(10):
        async with open_local_server(ServerOptions(api_key="sk-test"), peers=peers) as server:
            headers = {"authorization": "Bearer sk-test"}
            async with httpx.AsyncClient() as http:
                body = await create_call_with(http, server, offer_sdp, headers)
            call_id = call_id_of(body)
            refused = await hang_up(server, call_id)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "invalid_api_key"
            assert call_id in server.open_calls
            assert (await hang_up(server, call_id, headers)).status_code == 200
            assert server.open_calls == []


async def create_call_with(
    http: httpx.AsyncClient, server: LocalServer, offer_sdp: str, headers: dict[str, str]
) -> httpx.Response:
    response = await http.post(
        server.base_url + "/realtime/calls", content=offer_sdp, headers={**headers, "content-type": "application/sdp"}
    )
    assert response.status_code == 201
    return response


async def test_a_hang_up_closes_each_sideband_with_a_close_frame(server: LocalServer, offer_sdp: str) -> None:
    """The call ends for a reason the server knows (the hang-up it answered ``200``); each sideband learns it from a
    CLOSE frame (``1000``: the API's code is not in the recordings), not from a dropped connection (``1006``, which
    the openai SDK's ``async for event in conn`` raises on)."""
    with trio.fail_after(10):
        call = call_id_of(await create_call(server, offer_sdp))
        async with open_socket(sideband(server, call), {}) as first, open_socket(sideband(server, call), {}) as second:
            await first.send(encode({"type": "session.update", "session": {"type": "realtime"}}))
            for sock in (first, second):  # both sidebands see the conversation's session.updated
                assert loads(await sock.receive())["type"] == "session.updated"
            hung_up = await hang_up(server, call)
            ends = [await first.receive(), await second.receive()]
        await server.record.wait_until(lambda: all(s.end is not None for s in server.record.sidebands()))
    assert hung_up.status_code == 200
    for end in ends:
        assert isinstance(end, SocketEnd)
        assert end.clean, end.detail
        assert end.code == 1000
    assert [(s.end, s.close_code) for s in server.record.sidebands()] == [("call_ended", 1000)] * 2
