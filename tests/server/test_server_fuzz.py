"""Fuzzing the local server: generated HTTP requests and websocket frames, with good clients alongside.

One server per test. Hypothesis runs in a worker thread with plain blocking sockets (each input on a connection
of its own), while trio tasks keep a good direct conversation and a good call busy next to it. The properties:

* every HTTP input that holds a request line gets a status (``HTTP/1.1 NNN``), and every JSON error body is the
  API's ``{"error": {...}}``;
* every websocket input is answered: the frames get their ``error`` event (each valid against the openai SDK's
  ``RealtimeErrorEvent``) and a sentinel event sent after them is answered, or the server closes with a close
  frame carrying a code — never a bare TCP drop;
* the good conversation keeps completing responses throughout, and the good call still answers at the end;
* nothing is logged at ERROR (the suite-wide fixture).
"""

import json
import socket
import struct
from collections.abc import Callable
from typing import Any

import trio
import wsproto
import wsproto.events as ws_events
from helpers import call_id_of, create_call, direct, loads, sideband
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rawnet import frame, valid_error

from rtengine.adapters._peer import PeerService
from rtengine.adapters._ws import RealtimeSocket, open_socket
from rtengine.protocol import response_create
from rtengine.protocol._payloads import encode
from rtengine.server import LocalServer, ServerOptions, open_local_server

#: An SDP offer that trips an assertion in aiortc's parser, with its framing.
BAD_SDP = b"content-length: 15\r\n\r\nv=0\r\nm=audio x"
HTTP_EXAMPLES = 150
WS_EXAMPLES = 80
READ_TIMEOUT = 10.0
#: Silence after an input that means the server waits for bytes the input declared but never sent.
QUIET_TIMEOUT = 3.0
SENTINEL = json.dumps(
    {
        "type": "conversation.item.truncate",
        "event_id": "sentinel",
        "item_id": "x",
        "content_index": 0,
        "audio_end_ms": 0,
    }
)

# --- generated input -----------------------------------------------------------------------------------------

_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=12,
)
_deep = st.integers(1, 3000).map(lambda n: "[" * n + "]" * n)
_token = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=':()<>@,;"/[]?={} '), min_size=1)
_header_value = st.sampled_from(
    [
        "multipart/form-data; boundary=b",
        "application/sdp",
        "websocket",
        "Upgrade",
        "13",
        "chunked",
        "0",
        "-1",
        "99999999999",
        "100-continue",
        "Bearer x",
        "dGhlIHNhbXBsZSBub25jZQ==",
        "",
    ]
) | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
_header_name = (
    st.sampled_from(
        [
            "content-type",
            "content-length",
            "transfer-encoding",
            "upgrade",
            "connection",
            "sec-websocket-key",
            "sec-websocket-version",
            "authorization",
            "expect",
            "host",
        ]
    )
    | _token
)


def _post_multipart(parts: list[tuple[str, str]]) -> bytes:
    body = _multipart(parts)
    head = "POST /v1/realtime/calls HTTP/1.1\r\nhost: x\r\ncontent-type: multipart/form-data; boundary=b\r\n"
    return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body


def _multipart(parts: list[tuple[str, str]]) -> bytes:
    body = b"".join(
        f'--b\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode("utf-8", "replace")
        for name, value in parts
    )
    return body + b"--b--\r\n"


_session_text = _json.map(json.dumps) | _deep | st.sampled_from(['{"speed": NaN}', '{"type": "realtime"}', "{"])
_body = st.one_of(
    st.just(b""),
    st.binary(max_size=300),
    st.lists(st.tuples(st.sampled_from(["sdp", "session", "x"]), st.text(max_size=60) | _session_text), max_size=4).map(
        _multipart
    ),
    st.sampled_from([b"v=0\r\nm=audio x", b"v=0\r\n", b"v=0\r\no=- 0 0 IN IP4 0\r\n"]),
)


@st.composite
def http_inputs(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"]) | _token)
    path = draw(
        st.sampled_from(
            [
                "/v1/realtime/calls",
                "/v1/realtime/calls/rtc_u1_x/hangup",
                "/v1/realtime",
                "/v1/realtime?model=m",
                "/v1/realtime?call_id=rtc_x",
                "/",
                "*",
                "/v1/realtime/calls/%00/hangup",
            ]
        )
        | _token.map(lambda t: "/" + t)
    )
    headers = draw(st.lists(st.tuples(_header_name, _header_value), max_size=4))
    body = draw(_body)
    if draw(st.booleans()):
        headers.append(("content-length", str(len(body))))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    raw = head.encode("latin-1", "replace") + body
    match draw(st.sampled_from(["as_is", "as_is", "as_is", "cut", "garbage"])):
        case "cut":
            raw = raw[: draw(st.integers(1, max(1, len(raw) - 1)))]
        case "garbage":
            at = draw(st.integers(0, len(raw)))
            raw = raw[:at] + draw(st.binary(min_size=1, max_size=20)) + raw[at:]
    return raw


_client_events = st.one_of(
    st.builds(lambda s: {"type": "session.update", "session": s}, _json),
    st.builds(
        lambda s: {"type": "session.update", "session": {"type": "realtime", **s}},
        st.dictionaries(
            st.sampled_from(["output_modalities", "audio", "tools", "instructions", "max_output_tokens", "model"]),
            _json,
        ),
    ),
    st.builds(
        lambda t, rest: {"type": t, **rest},
        st.sampled_from(
            [
                "response.create",
                "response.cancel",
                "conversation.item.create",
                "conversation.item.truncate",
                "input_audio_buffer.append",
                "output_audio_buffer.clear",
                "made.up",
            ]
        ),
        st.dictionaries(st.sampled_from(["item", "audio", "response", "item_id", "event_id"]), _json, max_size=2),
    ),
    _json,
)
_text_payloads = _client_events.map(json.dumps).map(str.encode) | _deep.map(str.encode) | st.binary(max_size=100)


@st.composite
def ws_inputs(draw: st.DrawFn) -> bytes:
    """A few client frames: well-formed ones with generated payloads, odd opcodes and flags, lying headers."""
    frames = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["text", "text", "binary", "ping", "close", "odd", "lying", "bytes"]))
        payload = draw(_text_payloads)
        match kind:
            case "text":
                frames.append(frame(0x1, payload))
            case "binary":
                frames.append(frame(0x2, payload))
            case "ping":
                frames.append(frame(0x9, payload[:125]))
            case "close":
                code = draw(st.sampled_from([b"", struct.pack("!H", 1000), struct.pack("!H", 4000), b"\x03"]))
                frames.append(frame(0x8, code))
            case "odd":
                frames.append(frame(draw(st.integers(0, 15)), payload[:125], fin=draw(st.booleans())))
            case "lying":
                declared = draw(st.sampled_from([2**62, 2**63 - 1, 16 * 1024 * 1024 + 1, 70_000]))
                frames.append(frame(0x1, payload, declared=declared))
            case "bytes":
                frames.append(draw(st.binary(min_size=1, max_size=40)))
    return b"".join(frames)


# --- blocking clients (the fuzzing thread) -------------------------------------------------------------------


def _read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def http_answer(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer (and close) before it read everything
        return _read_until_closed(sock)


def ws_answer(port: int, raw: bytes) -> tuple[list[dict[str, Any]], ws_events.CloseConnection | None]:
    """Send ``raw`` then the sentinel on a fresh direct websocket; the server's events up to the sentinel's
    error (or its close frame), and the close frame if it closed."""
    ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT) as sock:
        sock.sendall(ws.send(ws_events.Request(host="127.0.0.1", target="/v1/realtime?model=m")))
        events: list[dict[str, Any]] = []
        accepted = False
        parts: list[str] = []
        half_closed = False
        try:
            while True:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    if half_closed or not accepted:
                        raise
                    # The input declared a frame longer than what followed it (a lying length, random bytes that
                    # read as a header): the server rightly waits for the rest, the sentinel included. Once the
                    # client is done sending, the server must end the connection.
                    sock.shutdown(socket.SHUT_WR)
                    half_closed = True
                    sock.settimeout(READ_TIMEOUT)
                    continue
                if not data and half_closed:
                    return events, ws_events.CloseConnection(code=1006, reason="closed after the client's EOF")
                assert data, "the server dropped the TCP connection without a close frame"
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, ws_events.AcceptConnection):
                        accepted = True
                        sock.sendall(raw + frame(0x1, SENTINEL.encode()))
                        sock.settimeout(QUIET_TIMEOUT)
                    elif isinstance(event, ws_events.TextMessage):
                        parts.append(event.data)
                        if event.message_finished:
                            events.append(json.loads("".join(parts)))
                            parts = []
                            if events[-1].get("event_id") == "sentinel" or (
                                events[-1]["type"] == "error" and events[-1]["error"]["event_id"] == "sentinel"
                            ):
                                return events, None
                    elif isinstance(event, ws_events.CloseConnection):
                        return events, event
        finally:
            assert accepted


# --- the tests -----------------------------------------------------------------------------------------------


async def keep_talking(sock: RealtimeSocket, done: list[float], stop: trio.Event) -> None:
    """A good conversation: one response after another, each one's duration recorded."""
    while not stop.is_set():
        start = trio.current_time()
        await sock.send(encode(response_create()))
        while loads(await sock.receive())["type"] != "response.done":
            pass
        done.append(trio.current_time() - start)
        await trio.sleep(0.02)


async def fuzz_alongside_good_clients(peers: PeerService, offer_sdp: str, fuzz: Callable[[int], None]) -> list[float]:
    options = ServerOptions(delta_interval=0.0, header_timeout=2.0, body_timeout=2.0, record_limit=None)
    done: list[float] = []
    with trio.fail_after(240):
        async with open_local_server(options, peers=peers) as server:
            call_id = call_id_of(await create_call(server, offer_sdp))
            async with (
                open_socket(sideband(server, call_id), {}) as call,
                open_socket(direct(server), {}) as talk,
                trio.open_nursery() as nursery,
            ):
                stop = trio.Event()
                nursery.start_soon(keep_talking, talk, done, stop)
                await trio.to_thread.run_sync(fuzz, server.port, abandon_on_cancel=True)
                before = len(done)
                with trio.fail_after(10):
                    for _ in range(1000):  # one more good response after the fuzzing
                        if len(done) > before:
                            break
                        await trio.sleep(0.05)
                stop.set()
                await call.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
                while loads(await call.receive())["type"] != "session.updated":
                    pass
            check_record(server)
    return done


def check_record(server: LocalServer) -> None:
    """Every error the server sent to a websocket validates against the SDK."""
    for connection in server.record.connections:
        for event in connection.frames_out:
            if isinstance(event, dict) and event.get("type") == "error":
                valid_error(event)


def fuzz_http(port: int) -> None:
    @settings(max_examples=HTTP_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(raw=http_inputs())
    @example(raw=b"HEAD /v1/realtime/calls HTTP/1.1\r\nhost: x\r\n\r\n")
    @example(raw=_post_multipart([("sdp", "v=0"), ("session", "[" * 50_000 + "]" * 50_000)]))
    @example(raw=_post_multipart([("sdp", "v=0"), ("session", '{"audio": {"output": {"speed": NaN}}}')]))
    @example(raw=_post_multipart([("x", "")] * 17_000))
    @example(raw=b"POST /v1/realtime/calls HTTP/1.1\r\nhost: x\r\ncontent-type: application/sdp\r\n" + BAD_SDP)
    def one(raw: bytes) -> None:
        answer = http_answer(port, raw)
        if raw.strip(b"\r\n"):
            assert answer[:9] == b"HTTP/1.1 ", (raw[:300], answer[:300])
            assert answer[9:12].isdigit()
        head, _, rest = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").lower().split("\r\n")
        length = next((int(line.split(":")[1]) for line in lines if line.startswith("content-length:")), 0)
        body = rest[:length]  # more answers may follow (pipelined requests)
        if "content-type: application/json" in lines and body and not raw.startswith(b"HEAD"):
            value = json.loads(body)
            assert set(value) == {"error"}
            assert isinstance(value["error"]["message"], str)

    one()


def fuzz_websocket(port: int) -> None:
    @settings(max_examples=WS_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(raw=ws_inputs())
    @example(raw=frame(0x1, b"[" * 100_000 + b"]" * 100_000))
    @example(raw=frame(0x1, b"", declared=2**62))
    @example(raw=frame(0x1, b"short", declared=70_000))  # waits for the rest: ends at the client's EOF
    @example(raw=frame(0x1, b'{"type":"session.update","session":{"type":"realtime","output_modalities":{}}}'))
    def one(raw: bytes) -> None:
        events, closed = ws_answer(port, raw)
        for event in events:
            if event["type"] == "error":
                valid_error(event)
        if closed is None:
            assert events[-1]["error"]["event_id"] == "sentinel"
        else:
            assert closed.code is not None

    one()


async def test_fuzzed_http_requests_are_all_answered_and_good_clients_go_on(peers: PeerService, offer_sdp: str) -> None:
    done = await fuzz_alongside_good_clients(peers, offer_sdp, fuzz_http)
    assert len(done) >= 2
    assert max(done) < 5.0, max(done)


async def test_fuzzed_websocket_frames_are_all_answered_and_good_clients_go_on(
    peers: PeerService, offer_sdp: str
) -> None:
    done = await fuzz_alongside_good_clients(peers, offer_sdp, fuzz_websocket)
    assert len(done) >= 2
    assert max(done) < 5.0, max(done)
