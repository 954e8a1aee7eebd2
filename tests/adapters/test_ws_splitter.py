"""The socket's frame splitter (whole text frames decoded by rtengine, every other frame handed whole to wsproto)
reads any byte stream exactly as wsproto alone reads it: the same messages in the same order and the same end,
whatever the read boundaries — text and binary, fragmented messages, pings, a close, an EOF, frames over the cap,
and frames wsproto must refuse (invalid UTF-8, a masked server frame, a non-minimal length)."""

import itertools
import struct

import trio
import trio.testing
import wsproto
import wsproto.events as wse
from hypothesis import given, settings
from hypothesis import strategies as st
from ws_peer import open_wsproto_pair
from wsproto.connection import Connection

from rtengine.adapters._ws_socket import RealtimeSocket
from rtengine.protocol._lifecycle import SocketEnd

CAP = 200


def _pair() -> tuple[Connection, wsproto.WSConnection]:
    """An open client connection (as the opening hands it to the socket) and its server."""
    client, server = open_wsproto_pair()
    assert client.connection is not None
    return client.connection, server


def _raw(first: int, payload: bytes, *, masked: bool = False, long_form: bool = False) -> bytes:
    size = len(payload)
    head = bytes((first, (0x80 if masked else 0) | (126 if long_form else size)))
    if long_form:
        head += struct.pack("!H", size)
    return head + (b"\x01\x02\x03\x04" + bytes(b ^ (1, 2, 3, 4)[i % 4] for i, b in enumerate(payload)) if masked
                   else payload)  # fmt: skip


_TEXT = st.text(max_size=60) | st.integers(CAP - 2, CAP + 2).map(lambda n: "x" * n)
_FRAME = st.one_of(
    _TEXT.map(lambda t: ("text", t)),
    st.binary(max_size=40).map(lambda b: ("binary", b)),
    st.lists(st.text(max_size=20), min_size=2, max_size=3).map(lambda parts: ("fragments", parts)),
    st.binary(max_size=10).map(lambda b: ("ping", b)),
    st.sampled_from([("bad utf-8", b"\xff\xfe"), ("masked", b"hi"), ("long form", b"short")]),
)


def _bytes(server: wsproto.WSConnection, frames: list[tuple[str, object]], close: bool) -> bytes:
    out = b""
    for kind, value in frames:
        if kind == "text":
            assert isinstance(value, str)
            out += server.send(wse.TextMessage(data=value))
        elif kind == "binary":
            assert isinstance(value, bytes)
            out += server.send(wse.BytesMessage(data=value))
        elif kind == "fragments":
            assert isinstance(value, list)
            for index, part in enumerate(value):
                out += server.send(wse.TextMessage(data=part, message_finished=index == len(value) - 1))
        elif kind == "ping":
            assert isinstance(value, bytes)
            out += server.send(wse.Ping(payload=value))
        elif kind == "bad utf-8":
            assert isinstance(value, bytes)
            out += _raw(0x81, value)
        elif kind == "masked":
            assert isinstance(value, bytes)
            out += _raw(0x81, value, masked=True)
        else:
            assert isinstance(value, bytes)
            out += _raw(0x81, value, long_form=True)
    if close:
        out += server.send(wse.CloseConnection(code=1000, reason="bye"))
    return out


def _reference(data: bytes) -> tuple[list[str | bytes], int | None]:
    """What wsproto alone makes of ``data``: the messages (up to the cap, as the socket assembles them) and the
    close code (None: EOF)."""
    client, _ = _pair()
    client.receive_data(data)
    messages: list[str | bytes] = []
    parts: list[str | bytes] = []
    size = 0
    for event in client.events():
        if isinstance(event, wse.TextMessage | wse.BytesMessage):
            part = event.data if isinstance(event.data, str) else bytes(event.data)
            size += len(part.encode() if isinstance(part, str) else part)
            if size > CAP:
                return messages, 1009
            parts.append(part)
            if event.message_finished:
                messages.append("".join(p for p in parts if isinstance(p, str)) if isinstance(part, str)
                                else b"".join(p for p in parts if isinstance(p, bytes)))  # fmt: skip
                parts, size = [], 0
        elif isinstance(event, wse.CloseConnection):
            return messages, int(event.code)
    return messages, None


class Chunks(trio.abc.Stream):
    """Hands over ``chunks`` one per read, then EOF; swallows writes (pongs, the close reply)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        return self.chunks.pop(0) if self.chunks else b""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(_FRAME, max_size=8),
    close=st.booleans(),
    cuts=st.lists(st.integers(0, 2000), max_size=6),
    drain=st.booleans(),
)
def test_the_splitter_reads_what_wsproto_reads(
    frames: list[tuple[str, object]], close: bool, cuts: list[int], drain: bool
) -> None:
    client, server = _pair()
    data = _bytes(server, frames, close)
    expected, code = _reference(data)
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    pieces = [data[a:b] for a, b in itertools.pairwise(points)]
    leftover, chunks = (pieces[0], pieces[1:]) if pieces else (b"", [])
    got: list[str | bytes] = []

    async def main() -> SocketEnd:
        with trio.fail_after(10):
            sock = RealtimeSocket(Chunks(chunks), client, "ws://127.0.0.1/", close_timeout=1, max_message_size=CAP,
                                  receive_size=65536, leftover=leftover)  # fmt: skip
            while True:
                message = await sock.receive()
                if isinstance(message, SocketEnd):
                    return message
                got.append(message)
                while drain and (more := sock.receive_nowait()) is not None:
                    got.append(more)

    end = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert got == expected
    assert end.code == code
