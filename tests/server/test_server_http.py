"""The local server's HTTP side: call creation, hangup, auth, bad input — over real loopback sockets."""

import aiortc.sdp
import httpx
import pytest
import trio
from helpers import call_id_of, create_call

from rtengine import SessionConfig
from rtengine.adapters._peer import PeerService
from rtengine.protocol import interpret_call_response, multipart_body, raw_sdp_body
from rtengine.server import Faults, LocalServer, ServerOptions, open_local_server


async def test_multipart_call_gets_a_real_aiortc_answer(server: LocalServer, offer_sdp: str) -> None:
    with trio.fail_after(10):
        session = SessionConfig(instructions="be brief", voice="marin")
        response = await create_call(server, offer_sdp, session)
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/sdp"
    assert response.headers["location"].startswith("/v1/realtime/calls/rtc_")
    answer = interpret_call_response(response.status_code, response.headers, response.content)
    parsed = aiortc.sdp.SessionDescription.parse(answer.sdp)
    assert [m.kind for m in parsed.media] == ["audio", "application"]
    assert parsed.media[0].dtls is not None
    assert parsed.media[0].dtls.fingerprints
    record = server.record.calls[-1]
    assert record.part_names == ["sdp", "session"]
    assert record.part_types == ["application/sdp", "application/json"]
    assert record.session == session.call_session()
    assert record.sdp == offer_sdp
    assert record.call_id == answer.call_id
    assert answer.call_id in server.open_calls


async def test_raw_sdp_call(server: LocalServer, offer_sdp: str) -> None:
    body = raw_sdp_body(offer_sdp)
    with trio.fail_after(10):
        async with httpx.AsyncClient() as http:
            response = await http.post(
                server.base_url + "/realtime/calls", content=body.content, headers={"content-type": body.content_type}
            )
    assert response.status_code == 201
    assert server.record.calls[-1].session is None


@pytest.mark.parametrize(
    ("content_type", "content", "status", "needle"),
    [
        ("application/sdp", b"hello", 400, "v=0"),
        ("application/sdp", b"v=0\r\ns=-\r\n", 400, "m="),
        ("application/sdp", b"\xff\xfe", 400, "UTF-8"),
        ("text/plain", b"v=0", 400, "Content-Type"),
        ("multipart/form-data; boundary=x", b"--x\r\nnot a part\r\n--x--\r\n", 400, "name"),
    ],
)
async def test_malformed_bodies_get_clear_400s(
    server: LocalServer, content_type: str, content: bytes, status: int, needle: str
) -> None:
    with trio.fail_after(10):
        async with httpx.AsyncClient() as http:
            response = await http.post(
                server.base_url + "/realtime/calls", content=content, headers={"content-type": content_type}
            )
    assert response.status_code == status
    error = response.json()["error"]
    assert needle in error["message"]
    assert server.open_calls == []


async def test_bad_multipart_parts(server: LocalServer, offer_sdp: str) -> None:
    cases = [
        (multipart_body(offer_sdp, "{not json"), "not valid JSON"),
        (multipart_body(offer_sdp, '["a"]'), "JSON object"),
        (multipart_body(offer_sdp, '{"id":"sess_1","type":"realtime"}'), "session.id"),
    ]
    with trio.fail_after(10):
        async with httpx.AsyncClient() as http:
            for body, needle in cases:
                response = await http.post(
                    server.base_url + "/realtime/calls",
                    content=body.content,
                    headers={"content-type": body.content_type},
                )
                assert response.status_code == 400
                assert needle in response.json()["error"]["message"]
            no_sdp = b'--b\r\nContent-Disposition: form-data; name="session"\r\n\r\n{}\r\n--b--\r\n'
            response = await http.post(
                server.base_url + "/realtime/calls",
                content=no_sdp,
                headers={"content-type": "multipart/form-data; boundary=b"},
            )
            assert response.status_code == 400
            assert response.json()["error"]["code"] == "missing_required_parameter"


async def test_oversized_body_is_413_and_routes_are_checked(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with httpx.AsyncClient() as http:
            big = await http.post(
                server.base_url + "/realtime/calls",
                content=b"v=0" + b"x" * (server.options.max_body_bytes + 1),
                headers={"content-type": "application/sdp"},
            )
            assert big.status_code == 413
            assert (await http.get(server.base_url + "/realtime/calls")).status_code == 405
            missing = await http.get(server.base_url + "/nothing")
            assert missing.status_code == 404
            assert "No route" in missing.json()["error"]["message"]


async def test_garbage_http_gets_a_400_and_the_server_survives(server: LocalServer, offer_sdp: str) -> None:
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            await stream.send_all(b"THIS IS NOT HTTP\r\n\r\n")
            reply = await stream.receive_some(4096)
        assert reply.startswith(b"HTTP/1.1 400")
        assert (await create_call(server, offer_sdp)).status_code == 201


async def test_api_key_is_required_when_configured(peers: PeerService, offer_sdp: str) -> None:
    with trio.fail_after(10):
        async with open_local_server(ServerOptions(api_key="sk-local-test"), peers=peers) as server:
            body = multipart_body(offer_sdp, "{}")
            url = server.base_url + "/realtime/calls"
            async with httpx.AsyncClient() as http:
                for auth in (None, "Bearer wrong"):
                    headers = {"content-type": body.content_type}
                    if auth:
                        headers["authorization"] = auth
                    response = await http.post(url, content=body.content, headers=headers)
                    assert response.status_code == 401
                    assert response.json()["error"]["code"] == "invalid_api_key"
                ok = await http.post(
                    url,
                    content=body.content,
                    headers={"content-type": body.content_type, "authorization": "Bearer sk-local-test"},
                )
                assert ok.status_code == 201
            assert "sk-local-test" not in repr(server) + repr(server.options) + repr(server.record.calls)
            assert server.record.calls[-1].safe_headers["authorization"] == "Bearer <redacted>"


async def test_call_delay_and_injected_status(server: LocalServer, offer_sdp: str) -> None:
    server.set_faults(Faults(call_delay=0.3))
    with trio.fail_after(10):
        start = trio.current_time()
        assert (await create_call(server, offer_sdp)).status_code == 201
        assert trio.current_time() - start >= 0.3
        server.set_faults(Faults(call_status=503, retry_after=2))
        response = await create_call(server, offer_sdp)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["code"] == "injected"


async def test_keep_alive_serves_many_calls_on_one_connection(server: LocalServer, offer_sdp: str) -> None:
    body = multipart_body(offer_sdp, "{}")
    with trio.fail_after(20):
        async with httpx.AsyncClient() as http:
            for _ in range(5):
                response = await http.post(
                    server.base_url + "/realtime/calls",
                    content=body.content,
                    headers={"content-type": body.content_type},
                )
                assert response.status_code == 201
    assert len(server.open_calls) == 5


async def test_hangup_ends_the_call_and_closes_its_peer(
    server: LocalServer, peers: PeerService, offer_sdp: str
) -> None:
    with trio.fail_after(10):
        before = peers.open_peers
        call_id = call_id_of(await create_call(server, offer_sdp))
        assert peers.open_peers == before + 1
        async with httpx.AsyncClient() as http:
            response = await http.post(f"{server.base_url}/realtime/calls/{call_id}/hangup")
            assert response.status_code == 200
            assert response.content == b""
            again = await http.post(f"{server.base_url}/realtime/calls/{call_id}/hangup")
            assert again.status_code == 404
    assert peers.open_peers == before
    assert server.open_calls == []
    assert server.record.hangups == [call_id]


async def test_leaving_the_server_closes_every_answering_peer(peers: PeerService, offer_sdp: str) -> None:
    with trio.fail_after(10):
        before = peers.open_peers
        async with open_local_server(peers=peers) as server:
            for _ in range(3):
                assert (await create_call(server, offer_sdp)).status_code == 201
            assert peers.open_peers == before + 3
        assert peers.open_peers == before
