"""Adversarial review of the websocket client's own framing (issue #14, review rev14): a hostile or merely unusual
server over a raw loopback socket, and what the client makes of it compared with wsproto alone."""

import base64
import hashlib
import struct

import trio
import wsproto
import wsproto.events as wse
from loopback import serving_raw
from rawnet import read_head

from rtengine.adapters._ws import WebSocketOpener
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
