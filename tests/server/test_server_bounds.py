"""The local server under bad HTTP and websocket input: every request answered, every read bounded.

Each test is a finding of a fuzzing run against the server (issue #10): before the fix the input got no answer,
held its connection forever, or stalled every other client.
"""

import json
from collections.abc import AsyncIterator, Callable

import pytest
import trio
import wsproto.events as ws_events
from rawnet import (
    error_json,
    exchange,
    frame,
    headers_of,
    open_raw_socket,
    read_all,
    request,
    status_of,
    valid_error,
)

from rtengine.adapters._peer import PeerService
from rtengine.protocol import multipart_body
from rtengine.server import LocalServer, ServerOptions, open_local_server

CALLS = "/v1/realtime/calls"


async def settled(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` until it holds (the caller's ``fail_after`` bounds it)."""
    for _ in range(100_000):
        if condition():
            return
        await trio.sleep(0.01)


@pytest.fixture
async def quick(peers: PeerService) -> AsyncIterator[LocalServer]:
    """A server with short client deadlines and a small connection cap."""
    options = ServerOptions(delta_interval=0.0, header_timeout=0.5, body_timeout=0.5, max_connections=3)
    async with open_local_server(options, peers=peers) as local:
        yield local


@pytest.mark.parametrize(
    ("path", "allow"), [(CALLS, "POST"), (CALLS + "/rtc_u1_x/hangup", "POST"), ("/v1/realtime", "GET")]
)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
async def test_every_method_is_answered_405_with_allow(server: LocalServer, path: str, allow: str, method: str) -> None:
    if method == allow:
        method = "DELETE"
    with trio.fail_after(10):
        raw = await exchange(server.port, request(method, path))
    assert status_of(raw) == 405
    assert headers_of(raw)["allow"] == allow
    assert error_json(raw)["code"] == "method_not_allowed"


@pytest.mark.parametrize(("path", "status"), [(CALLS, 405), ("/v1/nothing", 404), ("/v1/realtime", 405)])
async def test_head_is_answered_like_get_without_a_body(server: LocalServer, path: str, status: int) -> None:
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with stream:
            # Keep-alive: a HEAD answer must end exactly at its head, or the next answer would be misread.
            await stream.send_all(request("HEAD", path) + request("GET", "/v1/nothing", {"connection": "close"}))
            raw = await read_all(stream)
    assert status_of(raw) == status
    _head, rest = raw.split(b"\r\n\r\n", 1)
    assert int(headers_of(raw)["content-length"]) > 0  # what a GET would carry
    assert rest.startswith(b"HTTP/1.1 404 "), rest[:100]


@pytest.mark.parametrize("depth", [100, 50_000])  # the bound is 64 levels
async def test_deeply_nested_session_part_is_400(server: LocalServer, offer_sdp: str, depth: int) -> None:
    body = multipart_body(offer_sdp, '{"instructions":' + "[" * depth + "]" * depth + "}")
    with trio.fail_after(10):
        raw = await exchange(server.port, request("POST", CALLS, {"content-type": body.content_type}, body.content))
    assert status_of(raw) == 400
    assert "nested deeper" in error_json(raw)["message"]
    assert server.open_calls == []


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_nan_in_the_session_part_is_400(server: LocalServer, offer_sdp: str, constant: str) -> None:
    body = multipart_body(offer_sdp, f'{{"audio":{{"output":{{"speed":{constant}}}}}}}')
    with trio.fail_after(10):
        raw = await exchange(server.port, request("POST", CALLS, {"content-type": body.content_type}, body.content))
    assert status_of(raw) == 400
    assert f"{constant.lstrip('-')} is not valid JSON" in error_json(raw)["message"]


async def test_an_sdp_aiortc_cannot_take_is_400(server: LocalServer) -> None:
    with trio.fail_after(10):
        headers = {"content-type": "application/sdp"}
        raw = await exchange(server.port, request("POST", CALLS, headers, b"v=0\r\nm=audio x"))
    assert status_of(raw) == 400
    assert error_json(raw)["code"] == "invalid_offer"


async def test_a_slow_request_head_gets_408(quick: LocalServer) -> None:
    """One byte every 0.1 s: the head deadline (0.5 s) is for the whole head, not per byte."""
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", quick.port)
        async with stream:
            start = trio.current_time()
            for byte in b"POST /v1/realtime/calls HTTP/1.1\r\n":
                try:
                    await stream.send_all(bytes([byte]))
                except trio.BrokenResourceError:
                    break
                await trio.sleep(0.1)
            raw = await read_all(stream)
            elapsed = trio.current_time() - start
    assert status_of(raw) == 408
    assert error_json(raw)["code"] == "request_timeout"
    assert 0.5 <= elapsed < 3.0


async def test_a_slow_body_gets_408(quick: LocalServer) -> None:
    with trio.fail_after(10):
        raw = await exchange(
            quick.port, request("POST", CALLS, {"content-length": "100", "content-type": "application/sdp"}), eof=False
        )
    assert status_of(raw) == 408


async def test_an_idle_connection_is_closed_without_an_answer(quick: LocalServer) -> None:
    with trio.fail_after(10):
        start = trio.current_time()
        raw = await exchange(quick.port, b"", eof=False)
        assert raw == b""
        assert trio.current_time() - start >= 0.5


async def test_connections_beyond_the_cap_get_503_and_the_cap_frees_up(quick: LocalServer) -> None:
    with trio.fail_after(10):
        idle = [await trio.open_tcp_stream("127.0.0.1", quick.port) for _ in range(3)]
        await settled(lambda: quick.connections == 3)
        raw = await exchange(quick.port, request("GET", "/v1/nothing"))
        assert status_of(raw) == 503
        assert headers_of(raw)["retry-after"] == "1"
        for stream in idle:
            await stream.aclose()
        await settled(lambda: quick.connections == 0)
        assert status_of(await exchange(quick.port, request("GET", "/v1/nothing"))) == 404


async def test_a_multipart_with_thousands_of_parts_is_refused_before_parsing(server: LocalServer) -> None:
    """17k parts in 1 MiB took the parser 1.6 s, stalling every other client; it is refused from a byte count."""
    boundary = "b"
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="x"\r\n\r\nx\r\n'.encode()
    body = part * (1024 * 1024 // len(part) - 1) + f"--{boundary}--\r\n".encode()
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    with trio.fail_after(10):
        start = trio.current_time()
        raw = await exchange(server.port, request("POST", CALLS, headers, body))
        elapsed = trio.current_time() - start
    assert status_of(raw) == 400
    assert "Too many multipart parts" in error_json(raw)["message"]
    assert elapsed < 1.0, elapsed


async def test_a_nested_multipart_part_is_400(server: LocalServer, offer_sdp: str) -> None:
    inner = "--in\r\nContent-Type: text/plain\r\n\r\nx\r\n--in--\r\n"
    body = (
        '--out\r\nContent-Disposition: form-data; name="sdp"\r\n'
        "Content-Type: multipart/mixed; boundary=in\r\n\r\n" + inner + "\r\n--out--\r\n"
    ).encode()
    headers = {"content-type": "multipart/form-data; boundary=out"}
    with trio.fail_after(10):
        raw = await exchange(server.port, request("POST", CALLS, headers, body))
    assert status_of(raw) == 400


async def test_a_bad_websocket_upgrade_is_400(server: LocalServer) -> None:
    headers = {"upgrade": "websocket", "connection": "Upgrade", "sec-websocket-version": "13"}  # no key
    with trio.fail_after(10):
        raw = await exchange(server.port, request("GET", "/v1/realtime?model=m", headers))
    assert status_of(raw) == 400


async def test_a_100k_deep_frame_gets_an_error_event_and_the_socket_stays_open(server: LocalServer) -> None:
    with trio.fail_after(10):
        sock = await open_raw_socket(server.port)
        async with sock.stream:
            assert (await sock.next_json())["type"] == "session.created"
            await sock.send_text("[" * 100_000 + "]" * 100_000)
            error = valid_error(await sock.next_json())
            assert error["code"] == "invalid_event"
            assert "nested deeper" in error["message"]
            await sock.send_text(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
            assert (await sock.next_json())["type"] == "session.updated"


@pytest.mark.parametrize("declared", [2**63 - 1, 2**62, 16 * 1024 * 1024 + 1])
async def test_a_frame_header_declaring_too_much_closes_1009_at_once(server: LocalServer, declared: int) -> None:
    with trio.fail_after(10):
        sock = await open_raw_socket(server.port)
        async with sock.stream:
            assert (await sock.next_json())["type"] == "session.created"
            await sock.stream.send_all(frame(0x1, b"", declared=declared))
            event = await sock.next_event()
            assert isinstance(event, ws_events.CloseConnection), event
            assert event.code == 1009
    assert server.record.connections[-1].close_code == 1009
