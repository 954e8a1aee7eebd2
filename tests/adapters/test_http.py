"""The HTTP adapter: ``on_sent`` against the local server; bounds, caps, Retry-After, cancellation and hang-up
against raw test servers and ``httpx.MockTransport``."""

import email.utils
import gc
import logging
import ssl
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from engine_helpers import API_KEY, client_for, serving
from loopback import serving_raw

import rtengine
from rtengine.adapters._http import HttpCalls, create_call
from rtengine.adapters._http_direct import pooled_client
from rtengine.adapters._peer import PeerService
from rtengine.protocol import CallBody, multipart_body
from rtengine.server import Faults

HEADERS = {"authorization": f"Bearer {API_KEY}"}


async def test_on_sent_runs_once_the_body_is_out_and_before_the_answer(peers: PeerService, offer_sdp: str) -> None:
    body = multipart_body(offer_sdp, rtengine.SessionConfig().call_session_json())
    sent_at: list[float] = []
    async with serving(peers, faults=Faults(call_delay=0.3)) as server, httpx.AsyncClient() as http:
        with trio.fail_after(10):
            start = trio.current_time()
            answer = await create_call(
                http,
                f"{server.base_url}/realtime/calls",
                body,
                HEADERS,
                on_sent=lambda: sent_at.append(trio.current_time()),
            )
            answered = trio.current_time()
    assert answer.call_id.startswith("rtc_")
    assert len(sent_at) == 1
    # The hook ran while the server was still holding the request (it answers 0.3 s after reading it), not when
    # the answer came (a cold first connection may take a while before the body is out, so no bound on that).
    assert start <= sent_at[0]
    assert answered - sent_at[0] >= 0.3
    # The bytes on the wire are a plain request: an exact Content-Length, no chunked encoding.
    call = server.record.calls[-1]
    assert call.headers["content-length"] == str(len(body.content))
    assert "transfer-encoding" not in call.headers
    assert call.part_names == ["sdp", "session"]
    assert call.sdp == offer_sdp


async def test_on_sent_runs_once_across_retries(peers: PeerService, offer_sdp: str) -> None:
    body = multipart_body(offer_sdp, "{}")
    calls: list[int] = []
    async with serving(peers, faults=Faults(call_status=503)) as server, httpx.AsyncClient() as http:
        with trio.fail_after(10), pytest.raises(rtengine.CallRejected) as raised:
            await create_call(
                http,
                f"{server.base_url}/realtime/calls",
                body,
                HEADERS,
                retries=2,
                backoff_base=0.01,
                on_sent=lambda: calls.append(len(server.record.calls)),
            )
    assert raised.value.status == 503
    assert len(server.record.calls) == 3
    assert len(calls) == 1


async def test_conversation_timeline_counts_from_before_the_post(peers: PeerService, offer_sdp: str) -> None:
    """The conversation is built during the POST, but its clock starts before it: ``answer`` includes the call."""
    async with serving(peers, faults=Faults(call_delay=0.3)) as server, client_for(server) as client:
        with trio.fail_after(10):
            start = trio.current_time()
            async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp) as conv:
                assert conv.started_at - start < 0.1
                assert conv.timeline["answer"] >= 0.3


# ---------------------------------------------------------------------------------------------------------------
# HttpCalls against small raw HTTP/1.1 servers on 127.0.0.1:0 (drips, huge bodies, delays) and MockTransport.

SECRET = "sk-test-do-not-leak-0123456789"
AUTH = {"authorization": f"Bearer {SECRET}"}
SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
BODY = CallBody("application/sdp", SDP.encode())

Handler = Callable[[trio.SocketStream], Awaitable[None]]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Reader:
    """Reads HTTP/1.1 requests (Content-Length bodies only) off one connection, keep-alive included."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def _more(self) -> None:
        chunk = await self.stream.receive_some()
        if not chunk:
            raise trio.BrokenResourceError("client closed")
        self.buffer += chunk

    async def request(self) -> Request:
        while b"\r\n\r\n" not in self.buffer:
            await self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        start, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            await self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        method, path, _ = start.split(" ")
        return Request(method, path, headers, body)


def response(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def created(call_id: str) -> bytes:
    return response(201, {"location": f"/v1/realtime/calls/{call_id}", "content-type": "application/sdp"}, SDP.encode())


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """Serve ``handler`` on 127.0.0.1:0; yields the calls URL."""
    async with serving_raw(handler) as port:
        yield f"http://127.0.0.1:{port}/v1/realtime/calls"


@contextmanager
def no_resource_warnings() -> Iterator[None]:
    """Fails if an async generator (or anything else) is left for the GC: trio warns when it finalizes one."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def mock_calls(handler: Callable[[httpx.Request], Coroutine[None, None, httpx.Response]], **kwargs: Any) -> HttpCalls:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpCalls(lambda: client, "http://test/v1/realtime/calls", **kwargs)


@pytest.fixture(params=["client", "direct"])
def route(request: pytest.FixtureRequest) -> str:
    """How the requests reach the pool: through ``client.send`` (a caller's client), or the short way to the
    transport of the client rtengine builds (:mod:`rtengine.adapters._http_direct`)."""
    return str(request.param)


@asynccontextmanager
async def pooled_calls(route: str, url: str, http_timeout: float = 5.0, **kwargs: Any) -> AsyncIterator[HttpCalls]:
    """``HttpCalls`` on ``url`` over a real connection pool, by ``route``; the client closed on exit."""
    if route == "client":
        async with httpx.AsyncClient(timeout=http_timeout) as http:
            yield HttpCalls(lambda: http, url, **kwargs)
        return
    http, pool = pooled_client(
        verify=ssl.create_default_context(),
        timeout=httpx.Timeout(http_timeout),
        limits=httpx.Limits(),
        headers={},
        trust_env=False,
    )
    assert pool is not None
    async with http:
        yield HttpCalls(lambda: http, url, transport=lambda: pool, **kwargs)


async def test_cancel_while_the_body_is_written_aborts_at_once_and_leaves_no_generator(route: str) -> None:
    """Defect 14: the body was an async iterator that httpx wrapped in an async generator; plain ``content=bytes``
    is one too (httpx's ByteStream). A cancellation mid-write left it to trio's GC hook, with a ResourceWarning."""
    accepted = trio.Event()

    async def never_reads(stream: trio.SocketStream) -> None:
        accepted.set()
        await trio.sleep_forever()

    sent: list[bool] = []
    with no_resource_warnings():
        async with raw_server(never_reads) as url, pooled_calls(route, url) as calls:
            with trio.fail_after(10):
                with trio.move_on_after(0.3) as moved:
                    await calls.create(
                        CallBody("application/sdp", b"x" * (32 << 20)), AUTH, on_sent=lambda: sent.append(True)
                    )
                assert moved.cancelled_caught
                assert accepted.is_set()
                assert trio.current_time() - moved.deadline < 0.2  # aborted at once: nothing was sent
        assert sent == []
        await trio.sleep(0.05)  # a system task finalizing a generator would run (and warn) now


async def test_a_dripping_answer_hits_the_overall_deadline(route: str) -> None:
    """Defect 18: a 201 whose body drips one byte a second never ended."""

    async def drip(stream: trio.SocketStream) -> None:
        await Reader(stream).request()
        await stream.send_all(
            b"HTTP/1.1 201 Created\r\nlocation: /v1/realtime/calls/rtc_drip\r\ncontent-length: 1000\r\n\r\n"
        )
        while True:
            await stream.send_all(b"v")
            await trio.sleep(0.5)

    async with (
        raw_server(drip) as url,
        pooled_calls(route, url, http_timeout=1, timeout=1.5, backoff_base=0.01) as calls,
    ):
        with trio.fail_after(10), no_resource_warnings():
            start = trio.current_time()
            with pytest.raises(rtengine.ConnectFailed, match=r"timed out after 1.5 s"):
                await calls.create(BODY, AUTH)
            assert trio.current_time() - start < 1.5 + 2.5  # the deadline, plus the grace for the read in flight


async def test_a_huge_answer_is_refused_without_reading_it(route: str) -> None:
    """Defect 18: a 96 MiB answer body was read whole into memory."""
    written = 0

    async def huge(stream: trio.SocketStream) -> None:
        nonlocal written
        await Reader(stream).request()
        head = f"HTTP/1.1 201 Created\r\nlocation: /v1/realtime/calls/rtc_huge\r\ncontent-length: {96 << 20}\r\n\r\n"
        await stream.send_all(head.encode())
        chunk = b"v" * (64 << 10)
        while written < 96 << 20:
            await stream.send_all(chunk)
            written += len(chunk)

    async with raw_server(huge) as url, pooled_calls(route, url) as calls:
        with trio.fail_after(10), no_resource_warnings():
            with pytest.raises(rtengine.InvalidAnswer, match=r"too large \(more than 1048576 bytes\)"):
                await calls.create(BODY, AUTH)
            await trio.sleep(0.05)
    assert written < 16 << 20


async def test_a_huge_error_body_is_cut_and_the_rejection_says_so(route: str) -> None:
    """Defect 18: a 64 MiB error body was read whole into memory."""
    written = 0

    async def huge(stream: trio.SocketStream) -> None:
        nonlocal written
        await Reader(stream).request()
        await stream.send_all(f"HTTP/1.1 400 Bad\r\ncontent-length: {64 << 20}\r\n\r\n".encode())
        chunk = b"e" * (64 << 10)
        while written < 64 << 20:
            await stream.send_all(chunk)
            written += len(chunk)

    async with raw_server(huge) as url, pooled_calls(route, url, max_error_bytes=1000) as calls:
        with trio.fail_after(10), no_resource_warnings():
            with pytest.raises(rtengine.CallRejected) as info:
                await calls.create(BODY, AUTH)
            await trio.sleep(0.05)
    assert info.value.status == 400
    assert info.value.body == "e" * 1000 + " [truncated]"
    assert written < 16 << 20


async def test_a_retry_after_beyond_the_ceiling_fails_at_once(route: str) -> None:
    """Defect 18: ``Retry-After: 30`` on a 503 was ignored (4 retries in 0.09 s)."""
    requests: list[Request] = []

    async def busy(stream: trio.SocketStream) -> None:
        reader = Reader(stream)
        while True:
            requests.append(await reader.request())
            await stream.send_all(response(503, {"retry-after": "30"}, b"busy"))

    async with raw_server(busy) as url, pooled_calls(route, url, backoff_base=0.01) as calls:
        with trio.fail_after(10), pytest.raises(rtengine.CallRejected, match="retry after 30 s") as info:
            await calls.create(BODY, AUTH)
    assert len(requests) == 1
    assert info.value.status == 503
    assert info.value.retry_after == 30.0


async def test_retry_after_is_honoured_in_seconds_and_as_a_date(autojump_clock: trio.testing.MockClock) -> None:
    times: list[float] = []
    replies = iter(
        [
            httpx.Response(503, headers={"retry-after": "3"}),
            httpx.Response(429, headers={"retry-after": email.utils.formatdate(time.time() + 5, usegmt=True)}),
            httpx.Response(201, headers={"location": "/v1/realtime/calls/rtc_late"}, content=SDP.encode()),
        ]
    )

    async def handler(request: httpx.Request) -> httpx.Response:
        times.append(trio.current_time())
        return next(replies)

    calls = mock_calls(handler, timeout=30, backoff_base=0.01)
    answer = await calls.create(BODY, AUTH)
    assert answer.call_id == "rtc_late"
    assert times[1] - times[0] == pytest.approx(3, abs=0.01)
    assert 3.9 <= times[2] - times[1] <= 5.01  # an HTTP-date has a one-second resolution


async def test_a_429_without_retry_after_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    count = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        return httpx.Response(429, content=b"slow down")

    with pytest.raises(rtengine.CallRejected, match="rate limited"):
        await mock_calls(handler).create(BODY, AUTH)
    assert count == 1


async def _hangs(request: httpx.Request) -> httpx.Response:
    await trio.sleep_forever()
    raise AssertionError


async def test_the_deadline_bounds_every_attempt_and_sleep(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    with pytest.raises(rtengine.ConnectFailed, match=r"timed out after 10 s"):
        await mock_calls(_hangs).create(BODY, AUTH)
    assert trio.current_time() - start == pytest.approx(10, abs=0.01)

    count = 0

    async def always_503(request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        return httpx.Response(503)

    # Sleeps of 1, 2, 4, 8 s: the fourth retry would start past the 10 s deadline, so the 503 is raised at 7 s.
    start = trio.current_time()
    with pytest.raises(rtengine.CallRejected):
        await mock_calls(always_503, backoff_base=1.0, rand=lambda: 0.5).create(BODY, AUTH)
    assert count == 4
    assert trio.current_time() - start == pytest.approx(7, abs=0.01)


async def test_on_sent_falls_back_to_the_answer_without_trace_events() -> None:
    seen: list[bytes] = []
    sent: list[int] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(201, headers={"location": "/v1/realtime/calls/rtc_mock"}, content=SDP.encode())

    with trio.fail_after(10):
        answer = await mock_calls(handler).create(BODY, AUTH, on_sent=lambda: sent.append(len(seen)))
    assert answer.call_id == "rtc_mock"
    assert seen == [BODY.content]
    assert sent == [1]


async def test_cancel_after_the_body_was_sent_reads_the_answer_and_hangs_the_call_up(route: str) -> None:
    """Defect 13: the call made by a cancelled create() was left behind."""
    hangups: list[Request] = []

    async def slow(stream: trio.SocketStream) -> None:
        reader = Reader(stream)
        while True:
            request = await reader.request()
            if request.path.endswith("/hangup"):
                hangups.append(request)
                await stream.send_all(response(200))
            else:
                await trio.sleep(0.5)
                await stream.send_all(created("rtc_cancelled"))

    async with raw_server(slow) as url, pooled_calls(route, url) as calls:
        sent = trio.Event()
        cancelled_at = 0.0
        with trio.fail_after(10):
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:

                    async def cancel_soon() -> None:
                        nonlocal cancelled_at
                        await sent.wait()
                        await trio.sleep(0.1)
                        cancelled_at = trio.current_time()
                        scope.cancel()

                    nursery.start_soon(cancel_soon)
                    await calls.create(BODY, AUTH, on_sent=sent.set)
                    raise AssertionError("create() must not return after a cancellation")
            assert scope.cancelled_caught
            assert trio.current_time() - cancelled_at < calls.answer_grace + 0.5
    assert [r.path for r in hangups] == ["/v1/realtime/calls/rtc_cancelled/hangup"]
    assert hangups[0].body == b""
    assert hangups[0].headers["authorization"] == f"Bearer {SECRET}"


async def test_a_failed_hangup_after_a_cancellation_is_logged_not_raised(
    route: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def slow(stream: trio.SocketStream) -> None:
        reader = Reader(stream)
        while True:
            request = await reader.request()
            if request.path.endswith("/hangup"):
                await stream.send_all(response(403, {}, b"nope"))
            else:
                await trio.sleep(0.3)
                await stream.send_all(created("rtc_kept"))

    async with raw_server(slow) as url, pooled_calls(route, url) as calls:
        with trio.fail_after(10):
            with trio.move_on_after(0.1) as moved:
                await calls.create(BODY, AUTH)
            assert moved.cancelled_caught
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("could not hang up realtime call rtc_kept" in m and "403" in m for m in warned), warned
    assert all(SECRET not in m for m in warned)


# -- hangup ------------------------------------------------------------------------------------------------------


async def test_hangup_posts_an_empty_body_to_the_call_url() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204 if len(seen) == 1 else 200)

    calls = mock_calls(handler)
    with trio.fail_after(10):
        await calls.hangup("rtc_abc", AUTH)
        await calls.hangup("rtc_def", AUTH)
    assert [str(r.url) for r in seen] == [
        "http://test/v1/realtime/calls/rtc_abc/hangup",
        "http://test/v1/realtime/calls/rtc_def/hangup",
    ]
    assert seen[0].method == "POST"
    assert seen[0].content == b""
    assert seen[0].headers["content-length"] == "0"
    assert seen[0].headers["authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize("call_id", ["../x", "rtc_a/../b", "rtc_a?x=1", "rtc_", "call_1", "rtc_" + "a" * 200])
async def test_hangup_validates_the_call_id_before_any_request(call_id: str) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be made")

    with pytest.raises(rtengine.InvalidCallId):
        await mock_calls(handler).hangup(call_id, AUTH)


async def test_hangup_of_an_unknown_call() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        error = {"error": {"message": "not found", "type": "invalid_request_error", "code": "call_id_not_found"}}
        return httpx.Response(404, json=error)

    with trio.fail_after(10), pytest.raises(rtengine.CallNotFound, match="call_id_not_found") as info:
        await mock_calls(handler).hangup("rtc_gone", AUTH)
    assert info.value.status == 404
    assert isinstance(info.value, rtengine.CallRejected)


async def test_hangup_retries_5xx_and_transport_errors_but_not_4xx(autojump_clock: trio.testing.MockClock) -> None:
    replies: list[httpx.Response | Exception] = [
        httpx.Response(502),
        httpx.ConnectError("refused"),
        httpx.Response(204),
        httpx.Response(400, content=b"bad"),
    ]
    count = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal count
        count += 1
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    calls = mock_calls(handler)
    await calls.hangup("rtc_a", AUTH)
    assert count == 3
    with pytest.raises(rtengine.CallRejected) as info:
        await calls.hangup("rtc_a", AUTH)
    assert type(info.value) is rtengine.CallRejected
    assert info.value.status == 400
    assert count == 4


async def test_hangup_is_bounded_as_a_whole(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    with pytest.raises(rtengine.ConnectFailed, match=r"hang-up timed out after 5 s"):
        await mock_calls(_hangs).hangup("rtc_a", AUTH)
    assert trio.current_time() - start == pytest.approx(5, abs=0.01)


async def test_transport_errors_are_translated_without_secrets() -> None:
    async def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused {request.headers['authorization']}"[:8], request=request)

    calls = mock_calls(refuse, retries=0)
    with trio.fail_after(10), pytest.raises(rtengine.ConnectFailed, match="realtime call creation failed") as info:
        await calls.create(BODY, AUTH)
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    with trio.fail_after(10), pytest.raises(rtengine.ConnectFailed, match="hang-up failed") as hung:
        await calls.hangup("rtc_a", AUTH)
    assert isinstance(hung.value.__cause__, httpx.ConnectError)
    for error in (info.value, hung.value):
        assert SECRET not in str(error)
        assert "Bearer" not in str(error)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(response(400, {"content-type": "application/json"}, b'{"error": {"message": "bad"}}'), id="4xx"),
        pytest.param(response(503), id="503-no-retries-left"),
        pytest.param(response(201, {"content-type": "application/sdp"}, b"v=0\r\n"), id="201-without-location"),
    ],
)
async def test_a_cancellation_after_the_body_was_sent_wins_over_the_answers_error(route: str, answer: bytes) -> None:
    """Review finding: cancelled while the (shielded) answer was awaited, the caller got the answer's error — a
    CallRejected or InvalidLocation escaping a cancelled scope — instead of Cancelled."""

    async def handler(stream: trio.SocketStream) -> None:
        reader = Reader(stream)
        await reader.request()
        await trio.sleep(0.3)
        await stream.send_all(answer)
        await trio.sleep_forever()

    async with raw_server(handler) as url, pooled_calls(route, url, retries=0) as calls:
        sent = trio.Event()
        with trio.fail_after(10):
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:

                    async def cancel_soon() -> None:
                        await sent.wait()
                        await trio.sleep(0.1)
                        scope.cancel()

                    nursery.start_soon(cancel_soon)
                    await calls.create(BODY, AUTH, on_sent=sent.set)
            assert scope.cancelled_caught


async def test_a_request_read_but_never_answered_is_not_posted_again(route: str) -> None:
    """Review finding: with answer_grace shorter than the timeout, a POST the server had read but not answered was
    retried — each retry could create another call, none hung up."""
    posts: list[int] = []

    async def handler(stream: trio.SocketStream) -> None:
        reader = Reader(stream)
        await reader.request()
        posts.append(1)
        await trio.sleep_forever()

    async with (
        raw_server(handler) as url,
        pooled_calls(route, url, timeout=3, answer_grace=0.3, backoff_base=0.01) as calls,
    ):
        with trio.fail_after(10), pytest.raises(rtengine.ConnectionLost, match=r"no answer within 0\.3 s"):
            await calls.create(BODY, AUTH)
    assert posts == [1]
