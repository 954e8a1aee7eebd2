"""Raw HTTP and websocket bytes for tests that send what no well-behaved client would (trio, loopback)."""

import json
import os
import struct
from typing import Any

import trio
import wsproto
import wsproto.events as ws_events
from openai.types.realtime import RealtimeErrorEvent
from pydantic import BaseModel


def request(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """A request as bytes; ``Content-Length`` is added for a body."""
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_head(stream: trio.abc.ReceiveStream, end: bytes = b"\r\n\r\n") -> bytes:
    """What the peer sent up to ``end`` (the blank line after a request's or a response's head; ``b"\r\n"``: its
    first line), perhaps more; less if it closed first."""
    head = b""
    while end not in head:
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        head += chunk
    return head


async def read_all(stream: trio.abc.Stream) -> bytes:
    """Everything the server sends until it closes."""
    chunks = []
    while True:
        try:
            data = await stream.receive_some(65536)
        except trio.BrokenResourceError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


async def exchange(port: int, data: bytes, *, eof: bool = True) -> bytes:
    """Send ``data`` on a new connection (then half-close unless ``eof`` is False); read until the server closes."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        if eof:
            await stream.send_eof()
        return await read_all(stream)


def status_of(raw: bytes) -> int:
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    return int(raw[9:12])


def headers_of(raw: bytes) -> dict[str, str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in head)}


def body_of(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[1]


def error_json(raw: bytes) -> dict[str, Any]:
    """The API's JSON error body of a raw response."""
    value = json.loads(body_of(raw))
    assert set(value) == {"error"}, value
    error = value["error"]
    assert isinstance(error, dict)
    assert isinstance(error["message"], str)
    return error


def frame(opcode: int, payload: bytes, *, declared: int | None = None, fin: bool = True) -> bytes:
    """One masked client frame; ``declared`` overrides the payload length written in its header."""
    length = len(payload) if declared is None else declared
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawSocket:
    """A client websocket whose frames are written by hand and whose server frames wsproto reads."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self._events: list[ws_events.Event] = []

    async def handshake(self, target: str) -> None:
        await self.stream.send_all(self.ws.send(ws_events.Request(host="127.0.0.1", target=target)))
        event = await self.next_event()
        assert isinstance(event, ws_events.AcceptConnection), event

    async def next_event(self) -> ws_events.Event | None:
        """The next event from the server (messages whole), or None once it closed the TCP connection."""
        parts: list[str] = []
        while True:
            while self._events:
                event = self._events.pop(0)
                if isinstance(event, ws_events.TextMessage):
                    parts.append(event.data)
                    if not event.message_finished:
                        continue
                    return ws_events.TextMessage(data="".join(parts))
                return event
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                data = b""
            if not data:
                return None
            self.ws.receive_data(data)
            self._events.extend(self.ws.events())

    async def next_json(self) -> dict[str, Any]:
        event = await self.next_event()
        assert isinstance(event, ws_events.TextMessage), event
        value = json.loads(event.data)
        assert isinstance(value, dict)
        return value

    async def send_text(self, text: str) -> None:
        await self.stream.send_all(frame(0x1, text.encode()))


async def open_raw_socket(port: int, target: str = "/v1/realtime?model=gpt-realtime") -> RawSocket:
    sock = RawSocket(await trio.open_tcp_stream("127.0.0.1", port))
    await sock.handshake(target)
    return sock


def _extras(model: BaseModel, where: str) -> list[str]:
    found = [f"{where}.{key}" for key in (model.model_extra or {})]
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            found += _extras(value, f"{where}.{name}")
    return found


def valid_error(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` is an ``error`` event the openai SDK's ``RealtimeErrorEvent`` takes, with no unknown fields;
    returns its ``error``."""
    model = RealtimeErrorEvent.model_validate(event)
    assert _extras(model, "event") == []
    error = event["error"]
    assert isinstance(error, dict)
    return error
