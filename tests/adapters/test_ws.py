"""rtengine's websocket client (wsproto over trio streams) against small servers on 127.0.0.1:0.

The servers are written here with raw trio TCP listeners: wsproto on the server side for well-behaved peers, raw
bytes for malformed handshake answers and protocol violations.
"""

import base64
import gc
import hashlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import wsproto.events as wse
from helpers import direct, loads
from loopback import serving_raw
from rawnet import read_head
from ws_peer import WsPeer

from rtengine import ConnectFailed, ConnectionLost
from rtengine.adapters._ws import RealtimeSocket, WebSocketOpener, open_socket
from rtengine.engine._seams import SocketOpener
from rtengine.protocol._lifecycle import SocketEnd
from rtengine.server import LocalServer

Handler = Callable[[trio.SocketStream], Awaitable[None]]
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """Serve ``handler`` on 127.0.0.1:0; yields ``ws://127.0.0.1:port/v1/realtime?model=m``."""
    async with serving_raw(handler, close=True) as port:
        yield f"ws://127.0.0.1:{port}/v1/realtime?model=m"


def accept_token(head: bytes) -> bytes:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            return base64.b64encode(hashlib.sha1(value.strip() + GUID).digest())
    raise AssertionError("no key in the request")


# --- 1. messages ------------------------------------------------------------------------------------------------------


async def test_round_trip_fragments_binary_and_ping() -> None:
    peers: list[WsPeer] = []
    big = "x" * 300_000  # several reads of receive_size

    async def handler(stream: trio.SocketStream) -> None:
        peer = WsPeer(stream, answer_close=False)
        peers.append(peer)
        await peer.accept()
        await peer.send(wse.TextMessage(data="hel", message_finished=False))
        await peer.send(wse.TextMessage(data="lo ", message_finished=False))
        await peer.send(wse.TextMessage(data="wörld"))
        await peer.send(wse.BytesMessage(data=b"\x00\x01\x02"))
        await peer.send(wse.TextMessage(data=big))
        await peer.send(wse.Ping(payload=b"p1"))
        while (event := await peer.next_event()) is not None:
            if isinstance(event, wse.TextMessage):
                await peer.send(wse.TextMessage(data=f"echo {event.data}"))
            elif isinstance(event, wse.CloseConnection):
                await peer.send(event.response())
                return

    with trio.fail_after(10):
        async with serving(handler) as url, WebSocketOpener().open(url, {"authorization": "Bearer k"}) as sock:
            assert await sock.receive() == "hello wörld"
            binary = await sock.receive()
            assert binary == b"\x00\x01\x02"
            assert type(binary) is bytes
            assert await sock.receive() == big
            await sock.send("one")
            assert await sock.receive() == "echo one"  # the ping before it was answered on the way
            assert not sock.closed
    peer = peers[0]
    assert peer.pongs == [b"p1"]
    assert peer.texts == ["one"]
    assert peer.close_codes == [1000]
    end = sock.end
    assert end is not None
    assert (end.clean, end.code, end.reason) == (True, 1000, None)


async def test_receive_nowait_drains_what_one_read_brought_and_leaves_io_to_receive() -> None:
    """Messages already read come out without I/O (fragments assembled); a ping stops the drain and the next
    receive() answers it; an oversized message stops it too and receive() fails the connection with 1009."""
    peers: list[WsPeer] = []
    sent = trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        peer = WsPeer(stream, answer_close=False)
        peers.append(peer)
        await peer.accept()
        await peer.next_event()  # the client's "go"
        frames: list[wse.Event] = [
            wse.TextMessage(data="one"),
            wse.TextMessage(data="tw", message_finished=False),
            wse.TextMessage(data="o"),
            wse.BytesMessage(data=b"three"),
            wse.Ping(payload=b"p"),
            wse.TextMessage(data="four"),
            wse.TextMessage(data="y" * 200),
        ]
        await stream.send_all(b"".join(peer.ws.send(frame) for frame in frames))  # one write: one read
        sent.set()
        await peer.until_close()

    opener = WebSocketOpener(max_message_size=100)
    with trio.fail_after(10):
        async with serving(handler) as url, opener.open(url, {}) as sock:
            assert sock.receive_nowait() is None  # nothing sent yet
            await sock.send("go")
            await sent.wait()
            await trio.sleep(0.05)  # the bytes are in the kernel's buffer: one read takes them all
            assert await sock.receive() == "one"
            assert [sock.receive_nowait(), sock.receive_nowait()] == ["two", b"three"]
            assert sock.receive_nowait() is None  # the ping needs a pong: left to receive()
            assert sock.receive_nowait() is None  # still held, nothing skipped
            assert await sock.receive() == "four"
            assert sock.receive_nowait() is None  # too big: receive() ends the connection
            end = await sock.receive()
            assert isinstance(end, SocketEnd)
            assert end.code == 1009
    assert peers[0].pongs == [b"p"]
    assert peers[0].close_codes == [1009]


async def test_repr_hides_the_query_string() -> None:
    async def handler(stream: trio.SocketStream) -> None:
        peer = WsPeer(stream, answer_close=False)
        await peer.accept()
        await peer.until_close()

    with trio.fail_after(10):
        async with serving(handler) as url, WebSocketOpener().open(url + "&token=s3cret", {}) as sock:
            assert "s3cret" not in repr(sock)
            assert "model" not in repr(sock)
            assert "127.0.0.1" in repr(sock)


# --- 2. ends ----------------------------------------------------------------------------------------------------------


async def test_clean_server_close_and_sends_after_the_end() -> None:
    peers: list[WsPeer] = []

    async def handler(stream: trio.SocketStream) -> None:
        peer = WsPeer(stream, answer_close=False)
        peers.append(peer)
        await peer.accept()
        await peer.send(wse.CloseConnection(code=4000, reason="bye"))
        await peer.next_event()  # the client's reply

    with trio.fail_after(10):
        async with serving(handler) as url, WebSocketOpener().open(url, {}) as sock:
            end = await sock.receive()
            assert isinstance(end, SocketEnd)
            assert (end.clean, end.code, end.reason) == (True, 4000, "bye")
            assert type(end.code) is int
            assert type(sock.close_code) is int
            assert (sock.close_code, sock.close_reason, sock.closed) == (4000, "bye", True)
            assert await sock.receive() is end  # the same end, every time
            with pytest.raises(ConnectionLost) as lost:  # 8. after the end
                await sock.send("too late")
            assert lost.value.code == 4000
        assert peers[0].close_codes == [4000]  # the reply echoes the server's code
        with pytest.raises(ConnectionLost):  # after the block, too
            await sock.send("later still")


async def test_eof_without_a_close_frame_is_not_clean() -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await WsPeer(stream, answer_close=False).accept()

    with trio.fail_after(10):
        async with serving(handler) as url, WebSocketOpener(close_timeout=5).open(url, {}) as sock:
            end = await sock.receive()
            assert isinstance(end, SocketEnd)
            assert (end.clean, end.code, end.reason) == (False, None, None)
            assert "without a close frame" in end.detail
            assert sock.close_code is None
        assert sock.close_took is not None
        assert sock.close_took < 1.0


async def test_a_reset_is_not_clean() -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await WsPeer(stream, answer_close=False).accept()
        await trio.sleep(0.05)
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close

    with trio.fail_after(10):
        async with serving(handler) as url, WebSocketOpener().open(url, {}) as sock:
            end = await sock.receive()
            assert isinstance(end, SocketEnd)
            assert (end.clean, end.code) == (False, None)
            assert end.detail
            with pytest.raises(ConnectionLost):
                await sock.send("after the reset")


async def test_a_protocol_violation_is_failed_with_1002() -> None:
    peers: list[WsPeer] = []

    async def handler(stream: trio.SocketStream) -> None:
        peer = WsPeer(stream, answer_close=False)
        peers.append(peer)
        await peer.accept()
        await stream.send_all(b"\x83\x00")  # opcode 3 is reserved
        await peer.next_event()

    with trio.fail_after(10):
        async with serving(handler) as url, WebSocketOpener().open(url, {}) as sock:
            end = await sock.receive()
            assert isinstance(end, SocketEnd)
            assert (end.clean, end.code) == (False, 1002)
            assert "protocol violation" in end.detail
    assert peers[0].close_codes == [1002]


# --- 3. malformed and rejected handshakes -----------------------------------------------------------------------------

Answer = Callable[[bytes], bytes | None]


def _upgrade(
    accept: bytes | None, upgrade: bytes = b"websocket", connection: bytes = b"Upgrade"
) -> Callable[[bytes], bytes]:
    def answer(head: bytes) -> bytes:
        lines = [b"HTTP/1.1 101 Switching Protocols", b"Upgrade: " + upgrade, b"Connection: " + connection]
        if accept is not None:
            lines.append(b"Sec-WebSocket-Accept: " + (accept or accept_token(head)))
        return b"\r\n".join(lines) + b"\r\n\r\n"

    return answer


MALFORMED: dict[str, tuple[Answer, int | None]] = {
    "wrong accept key": (_upgrade(b"dGhpcyBpcyB3cm9uZw=="), None),
    "missing accept key": (_upgrade(None), None),
    "bad Upgrade header": (_upgrade(b"", upgrade=b"h2c"), None),
    "bad Connection header": (_upgrade(b"", connection=b"keep-alive"), None),
    "200 instead of 101": (lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200),
    "truncated status line": (lambda head: b"HTTP/1.1 10", None),
    "garbage": (lambda head: b"\x00\xff\xfe garbage \x01\r\n\r\n", None),
    "not http at all": (lambda head: b"SSH-2.0-OpenSSH_9.6\r\n\r\n", None),
    "EOF before the answer": (lambda head: None, None),
    "headers cut by EOF": (lambda head: b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n", None),
    "404 with a body": (
        lambda head: b"HTTP/1.1 404 Not Found\r\nContent-Length: 13\r\n\r\nno such thing",
        404,
    ),
    "503 body until EOF": (lambda head: b"HTTP/1.1 503 Busy\r\nConnection: close\r\n\r\ntry later", 503),
    "401 without a body": (lambda head: b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", 401),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_every_bad_handshake_answer_is_connect_failed(case: str) -> None:
    answer, status = MALFORMED[case]

    async def handler(stream: trio.SocketStream) -> None:
        data = answer(await read_head(stream))
        if data is not None:
            await stream.send_all(data)

    with trio.fail_after(10):
        async with serving(handler) as url:
            with pytest.raises(ConnectFailed) as info:
                async with WebSocketOpener(connect_timeout=5).open(url, {}):
                    pytest.fail("the opening should have failed")
    assert type(info.value) is ConnectFailed
    assert info.value.status == status
    assert str(info.value).startswith(f"failed to connect realtime websocket {url}: ")
    if status == 404:
        expected = f"failed to connect realtime websocket {url}: handshake rejected with HTTP 404: no such thing"
        assert str(info.value) == expected
        assert info.value.body == "no such thing"
    if status == 503:
        assert info.value.body == "try later"


async def test_a_huge_rejection_body_is_capped() -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        body = b"e" * 1_000_000
        await stream.send_all(b"HTTP/1.1 400 Bad\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    with trio.fail_after(10):
        async with serving(handler) as url:
            with pytest.raises(ConnectFailed) as info:
                async with WebSocketOpener().open(url, {}):
                    pass
    assert info.value.status == 400
    assert info.value.body == "e" * 2000


async def test_a_refused_connection_is_connect_failed() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    with trio.fail_after(10), pytest.raises(ConnectFailed) as info:
        async with WebSocketOpener().open(f"ws://127.0.0.1:{port}/", {}):
            pass
    assert info.value.status is None
    assert "refused" in str(info.value).lower()


# --- 4. connect_timeout bounds the whole opening ----------------------------------------------------------------------


async def test_a_late_upgrade_answer_times_out() -> None:
    async def handler(stream: trio.SocketStream) -> None:
        head = await read_head(stream)
        await trio.sleep(2)
        await stream.send_all(_upgrade(b"")(head))

    with trio.fail_after(10):
        async with serving(handler) as url:
            start = trio.current_time()
            with pytest.raises(ConnectFailed, match="timed out"):
                async with WebSocketOpener(connect_timeout=0.3).open(url, {}):
                    pass
            assert 0.29 <= trio.current_time() - start < 1.5


async def test_a_dripped_upgrade_answer_is_bounded_as_a_whole() -> None:
    async def handler(stream: trio.SocketStream) -> None:
        answer = _upgrade(b"")(await read_head(stream))
        for byte in answer:
            await stream.send_all(bytes([byte]))
            await trio.sleep(0.1)

    with trio.fail_after(10):
        async with serving(handler) as url:
            start = trio.current_time()
            with pytest.raises(ConnectFailed, match="timed out"):
                async with WebSocketOpener(connect_timeout=0.5).open(url, {}):
                    pass
            assert trio.current_time() - start < 1.5


# --- 5. the close handshake -------------------------------------------------------------------------------------------


def _closing_server(peers: list[WsPeer], *, answer: bool = True) -> Handler:
    async def handler(stream: trio.SocketStream) -> None:
        peer = WsPeer(stream, answer_close=False)
        peers.append(peer)
        try:
            await peer.accept()
            await peer.until_close(answer=answer)
        finally:
            peer.done.set()
        if not answer:
            await trio.sleep_forever()

    return handler


async def test_close_is_prompt_when_an_outer_cancel_interrupts_a_receive() -> None:
    peers: list[WsPeer] = []
    opened: list[RealtimeSocket] = []
    with trio.fail_after(10):
        async with serving(_closing_server(peers)) as url:
            with trio.move_on_after(0.2) as scope:
                async with WebSocketOpener(close_timeout=2).open(url, {}) as sock:
                    opened.append(sock)
                    await sock.receive()  # pending when the scope is cancelled
            assert scope.cancelled_caught
            with trio.move_on_after(2):
                await peers[0].done.wait()
    sock = opened[0]
    assert peers[0].close_codes == [1000]
    assert sock.close_took is not None
    assert sock.close_took < 0.5
    assert sock.end is not None
    assert (sock.end.clean, sock.end.code) == (True, 1000)


async def test_close_against_a_server_that_never_answers_takes_close_timeout() -> None:
    peers: list[WsPeer] = []
    with trio.fail_after(10):
        async with serving(_closing_server(peers, answer=False)) as url:
            start = trio.current_time()
            async with WebSocketOpener(close_timeout=0.3).open(url, {}) as sock:
                start = trio.current_time()
            elapsed = trio.current_time() - start
    assert 0.29 <= elapsed < 0.8
    assert sock.close_took is not None
    assert 0.29 <= sock.close_took < 0.8
    assert peers[0].close_codes == [1000]


async def test_close_against_the_local_server_in_a_cancelled_scope(server: LocalServer) -> None:
    with trio.fail_after(10):
        with trio.CancelScope() as scope:
            async with open_socket(direct(server), {}, close_timeout=2) as sock:
                assert loads(await sock.receive())["type"] == "session.created"
                scope.cancel()
                await sock.receive()
        record = server.record.connections[-1]
        await server.record.wait_until(lambda: record.end is not None)
    assert (record.end, record.close_code, record.close_answered) == ("client_close", 1000, True)
    assert sock.close_took is not None
    assert sock.close_took < 0.5


# --- 6. torn writes ---------------------------------------------------------------------------------------------------


async def test_leaving_right_after_a_send_always_sends_close_1000() -> None:
    """A cancellation that reaches a send before any byte is written must not tear the socket.

    The rounds cancel the enclosing scope before the send, from a sibling task racing the send (after 0..3
    checkpoints: with 0 the cancel lands while the sender holds the lock at its shielded checkpoint, just before
    the write — a heuristic that marks every exception out of the write's ``try`` as torn skips the close
    handshake there), and right after the send. The server must receive CLOSE 1000 every time."""
    peers: list[WsPeer] = []
    rounds = 60
    modes = ["before", "race0", "race1", "race2", "race3", "after"]
    with trio.fail_after(30):
        async with serving(_closing_server(peers)) as url:
            opener = WebSocketOpener(close_timeout=2)
            for index in range(rounds):
                mode = modes[index % len(modes)]
                with trio.CancelScope() as scope:
                    async with opener.open(url, {}) as sock, trio.open_nursery() as nursery:
                        if mode == "before":
                            scope.cancel()
                        elif mode.startswith("race"):

                            async def cancel_after(checkpoints: int, scope: trio.CancelScope = scope) -> None:
                                for _ in range(checkpoints):
                                    await trio.lowlevel.checkpoint()
                                scope.cancel()

                            nursery.start_soon(cancel_after, int(mode[-1]))
                        await sock.send(f"round {index}")
                        scope.cancel()
                        await trio.sleep_forever()
                assert sock.close_took is not None
                assert sock.close_took < 1.0
            with trio.move_on_after(3):
                for peer in peers:
                    await peer.done.wait()
    torn = [i for i, p in enumerate(peers) if p.close_codes != [1000]]
    assert torn == [], f"no CLOSE 1000 in rounds {torn} (modes {[modes[i % len(modes)] for i in torn]})"
    assert len(peers) == rounds
    after = [i for i in range(rounds) if modes[i % len(modes)] == "after"]
    assert [peers[i].texts for i in after] == [[f"round {i}"] for i in after]
    assert all(peers[i].texts == [] for i in range(rounds) if modes[i % len(modes)] == "before")


# --- 7. max_message_size ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["text", "binary", "fragments"])
async def test_a_message_over_max_message_size_ends_with_1009(shape: str) -> None:
    peers: list[WsPeer] = []

    async def handler(stream: trio.SocketStream) -> None:
        peer = WsPeer(stream, answer_close=False)
        peers.append(peer)
        await peer.accept()
        await peer.send(wse.TextMessage(data="small"))
        if shape == "text":
            await peer.send(wse.TextMessage(data="t" * 100_000))
        elif shape == "binary":
            await peer.send(wse.BytesMessage(data=b"b" * 100_000))
        else:
            for _ in range(20):
                await peer.send(wse.TextMessage(data="f" * 1000, message_finished=False))
            await peer.send(wse.TextMessage(data="end"))
        await peer.until_close()

    with trio.fail_after(10):
        async with serving(handler) as url, WebSocketOpener(max_message_size=10_000).open(url, {}) as sock:
            assert await sock.receive() == "small"
            end = await sock.receive()
            assert isinstance(end, SocketEnd)
            assert (end.clean, end.code, end.reason) == (False, 1009, "message too big")
            assert "max_message_size" in end.detail
            with pytest.raises(ConnectionLost):
                await sock.send("after 1009")
        assert sock.close_took is not None
        assert sock.close_took < 1.0
    assert peers[0].close_codes == [1009]


# --- 9. cancellation of the opening -----------------------------------------------------------------------------------


async def test_a_cancelled_opening_leaves_nothing_behind() -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await trio.sleep_forever()

    with trio.fail_after(10):
        async with serving(handler) as url:
            for delay in (0.0, 0.01, 0.1):
                with trio.move_on_after(delay) as scope:
                    async with WebSocketOpener(connect_timeout=5).open(url, {}):
                        pytest.fail("the opening should have been cancelled")
                assert scope.cancelled_caught
    gc.collect()  # an unclosed socket would warn here (ResourceWarning is an error in this suite)


def test_the_opener_and_its_sockets_fit_the_engine_seams() -> None:
    opener: SocketOpener = WebSocketOpener()  # checked by mypy: the structural contract of the engine
    assert callable(opener.open)
    assert "connect_timeout=10" in repr(WebSocketOpener())
