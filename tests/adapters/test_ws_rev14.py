"""Adversarial review of the websocket client's own framing (issue #14, review rev14): a hostile or merely unusual
server over a raw loopback socket, and what the client makes of it compared with wsproto alone."""

import base64
import hashlib
import struct

import pytest
import trio
import trio.testing
import wsproto
import wsproto.events as wse
from loopback import serving_raw
from rawnet import read_head
from ws_peer import open_wsproto_pair
from wsproto.connection import Connection

from rtengine.adapters._ws import WebSocketOpener
from rtengine.adapters._ws_socket import RealtimeSocket
from rtengine.protocol._lifecycle import SocketEnd

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_token(head: bytes) -> bytes:
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            return base64.b64encode(hashlib.sha1(value.strip() + GUID).digest())
    raise AssertionError("no key in the request")


def _answer(head: bytes, newline: bytes) -> bytes:
    """A valid 101 answer to ``head`` with ``newline`` line endings (h11, and so wsproto, accept bare LFs)."""
    lines = [
        b"HTTP/1.1 101 Switching Protocols",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Accept: " + accept_token(head),
    ]
    return newline.join(lines) + newline + newline


async def _first_messages(newline: bytes) -> list[str | bytes | SocketEnd]:
    """The server answers with ``newline`` line endings and, in the same write, the header of a binary frame whose
    3-byte payload happens to look like a text frame (``81 01 58``); the payload and a text frame come later."""

    async def handler(stream: trio.SocketStream) -> None:
        await stream.send_all(_answer(await read_head(stream), newline) + b"\x82\x03")
        await trio.sleep(0.2)  # the client has read the first write by now
        await stream.send_all(b"\x81\x01X" + b"\x81\x05after")
        await trio.sleep(5)

    with trio.fail_after(10):
        async with serving_raw(handler, close=True) as port:
            opener = WebSocketOpener(connect_timeout=5)
            async with opener.open(f"ws://127.0.0.1:{port}/", {}) as sock:
                return [await sock.receive(), await sock.receive()]


async def test_a_frame_cut_right_behind_a_crlf_101_is_read_whole() -> None:
    assert await _first_messages(b"\r\n") == [b"\x81\x01X", "after"]


async def test_a_frame_cut_right_behind_a_bare_lf_101_is_read_whole() -> None:
    """rev14 finding 1: the head was cut at CRLFCRLF only; the splitter then started mid-frame."""
    assert await _first_messages(b"\n") == [b"\x81\x01X", "after"]


def test_wsproto_accepts_the_bare_lf_answer() -> None:
    """The premise of the test above: wsproto alone opens on a bare-LF 101 and reads the frames behind it."""
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    request = client.send(wse.Request(host="127.0.0.1", target="/"))
    client.receive_data(_answer(request, b"\n") + b"\x82\x03" + b"\x81\x01X" + struct.pack("!BB", 0x81, 1) + b"a")
    events = list(client.events())
    assert isinstance(events[0], wse.AcceptConnection)
    messages = [(type(e), e.data) for e in events[1:] if isinstance(e, wse.BytesMessage | wse.TextMessage)]
    assert messages == [(wse.BytesMessage, b"\x81\x01X"), (wse.TextMessage, "a")]
    assert len(events) == 3


# --- hostile frame streams, split at every byte: the socket reads what wsproto alone reads ---------------------------

CAP = 200


def _frame(first: int, payload: bytes, *, masked: bool = False, form: int | None = None) -> bytes:
    """A raw frame; ``form``: the length's form (0: 7 bits, 16, 64; None: the minimal one)."""
    size = len(payload)
    form = (0 if size < 126 else 16 if size < 65536 else 64) if form is None else form
    bit = 0x80 if masked else 0
    head = {
        0: bytes((first, bit | size)) if size < 126 else b"",
        16: bytes((first, bit | 126)) + struct.pack("!H", size),
        64: bytes((first, bit | 127)) + struct.pack("!Q", size),
    }[form]
    if masked:
        payload = b"\x01\x02\x03\x04" + bytes(b ^ (1, 2, 3, 4)[i % 4] for i, b in enumerate(payload))
    return head + payload


_CLOSE_1000 = struct.pack("!H", 1000)
HOSTILE: dict[str, bytes] = {
    "fragments with a ping between": _frame(0x01, b"he") + _frame(0x89, b"pp") + _frame(0x80, b"llo"),
    "an empty first fragment": _frame(0x01, b"") + _frame(0x80, b"abc"),
    "a code point cut across fragments": _frame(0x01, "é".encode()[:1]) + _frame(0x80, "é".encode()[1:]),
    "invalid UTF-8 across fragments": _frame(0x01, b"\xc3") + _frame(0x80, b"a"),
    "a text frame inside a fragmented message": _frame(0x01, b"ab") + _frame(0x81, b"x") + _frame(0x80, b"c"),
    "a text frame after an empty fragment": _frame(0x01, b"") + _frame(0x81, b"x"),
    "a text frame inside a binary message": _frame(0x02, b"a") + _frame(0x81, b"x"),
    "a lone continuation": _frame(0x80, b"x"),
    "RSV1": _frame(0xC1, b"x"),
    "RSV2": _frame(0xA1, b"x"),
    "opcode 3": _frame(0x83, b"x"),
    "opcode 11": _frame(0x8B, b""),
    "a ping of 126 bytes": _frame(0x89, b"p" * 126),
    "a fragmented ping": _frame(0x09, b"p"),
    "a masked text frame": _frame(0x81, b"hi", masked=True),
    "a masked fragment": _frame(0x01, b"hi", masked=True) + _frame(0x80, b"x"),
    "text at the cap": _frame(0x81, b"x" * CAP),
    "text one byte over the cap": _frame(0x81, b"x" * (CAP + 1)),
    "text over the cap, 64-bit length": _frame(0x81, b"x" * 300, form=64),
    "a 16-bit length for 1 byte": _frame(0x81, b"x", form=16),
    "a 64-bit length for 200 bytes": _frame(0x81, b"x" * 200, form=64),
    "a 64-bit length with the top bit": bytes((0x81, 127)) + struct.pack("!Q", 1 << 63) + b"x",
    "binary": _frame(0x82, b"\x00\xff"),
    "a close inside a fragmented message": _frame(0x01, b"ab") + _frame(0x88, _CLOSE_1000),
    "a 1-byte close": _frame(0x88, b"\x03"),
    "a close with 1005": _frame(0x88, struct.pack("!H", 1005)),
    "a close reason not UTF-8": _frame(0x88, _CLOSE_1000 + b"\xff"),
    "invalid UTF-8 (a surrogate)": _frame(0x81, b"\xed\xa0\x80"),
    "a pong then text": _frame(0x8A, b"x") + _frame(0x81, b"y"),
}


def _by_wsproto(data: bytes) -> tuple[list[str | bytes], int | None, list[bytes]]:
    """What wsproto alone makes of ``data`` (messages assembled within CAP, the close code, the pings)."""
    client, _ = open_wsproto_pair()
    client.receive_data(data)
    messages: list[str | bytes] = []
    parts: list[str | bytes] = []
    pings: list[bytes] = []
    size = 0
    for event in client.events():
        if isinstance(event, wse.Ping):
            pings.append(bytes(event.payload))
        elif isinstance(event, wse.TextMessage | wse.BytesMessage):
            part = event.data if isinstance(event.data, str) else bytes(event.data)
            size += len(part.encode() if isinstance(part, str) else part)
            if size > CAP:
                return messages, 1009, pings
            parts.append(part)
            if event.message_finished:
                joined = "".join(p for p in parts if isinstance(p, str))
                messages.append(joined if isinstance(part, str) else b"".join(p for p in parts if isinstance(p, bytes)))
                parts, size = [], 0
        elif isinstance(event, wse.CloseConnection):
            return messages, int(event.code), pings
    return messages, None, pings


class _Chunks(trio.abc.Stream):
    """Hands over ``chunks`` one per read, then EOF; keeps what the client writes."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.written = bytearray()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        return self.chunks.pop(0) if self.chunks else b""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        self.written += data

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_stream_split_anywhere_reads_as_wsproto_reads_it(case: str) -> None:
    data = HOSTILE[case]
    expected, code, pings = _by_wsproto(data)
    for cut in range(len(data) + 1):
        client = open_wsproto_pair()[0].connection
        assert client is not None
        stream = _Chunks([data[cut:]])
        got: list[str | bytes] = []

        async def main(
            stream: _Chunks = stream,
            client: Connection = client,
            cut: int = cut,
            got: list[str | bytes] = got,
        ) -> SocketEnd:
            with trio.fail_after(10):
                sock = RealtimeSocket(stream, client, "ws://127.0.0.1/", close_timeout=1, max_message_size=CAP,
                                      receive_size=65536, leftover=data[:cut])  # fmt: skip
                while not isinstance(message := await sock.receive(), SocketEnd):
                    got.append(message)
                return message

        end = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
        assert (got, end.code) == (expected, code), f"split at {cut}"
        server = open_wsproto_pair()[1]
        server.receive_data(bytes(stream.written))
        pongs = [bytes(e.payload) for e in server.events() if isinstance(e, wse.Pong)]
        assert pongs == pings, f"split at {cut}"
