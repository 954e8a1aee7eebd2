"""The hot path of an open realtime websocket (:mod:`rtengine.adapters._ws_socket`): the outgoing text frame, the
usual incoming message, and the gate that orders reads (or writes).

An open socket writes one text frame per client event (50 audio appends a second per conversation) and reads one
per server event, so each of these runs per message: :func:`text_frame` builds the frame wsproto would (masked with
a fresh random key, RFC 6455 §5.3) with one XOR over the whole payload; :func:`whole_text` takes a whole text
message without the general dispatch; :class:`Gate` is a lock without ``trio.Lock``'s per-acquire bookkeeping.
"""

from __future__ import annotations

import os
import struct
from typing import Final

import trio
import wsproto.events as wse
from wsproto.connection import Connection

__all__ = ["Gate", "Splitter", "text_frame", "whole_text"]

_HEAD16: Final = struct.Struct("!BBH")
_HEAD64: Final = struct.Struct("!BBQ")


def text_frame(text: str) -> bytes:
    """One final, masked text frame carrying ``text`` (client to server; no extension is negotiated): the bytes
    wsproto's ``send(TextMessage(text))`` writes, but for the masking key, fresh from ``os.urandom`` for each
    frame as wsproto's is. A lone surrogate raises ``UnicodeEncodeError``, as with wsproto."""
    data = text.encode()
    size = len(data)
    key = os.urandom(4)
    if size < 126:
        head = bytes((0x81, 0x80 | size))
    elif size < 65536:
        head = _HEAD16.pack(0x81, 0xFE, size)
    else:
        head = _HEAD64.pack(0x81, 0xFF, size)
    mask = int.from_bytes((key * (size // 4 + 1))[:size], "little")
    return head + key + (int.from_bytes(data, "little") ^ mask).to_bytes(size, "little")


class Splitter:
    """The bytes read from the server, split into frames before wsproto sees them. A whole, final, unmasked text
    frame within ``cap`` whose payload is valid UTF-8 — an audio delta, the usual frame — is decoded here
    (:meth:`take` returns its text); every other frame (control frames, fragments, binary, anything wsproto must
    judge — a masked or malformed frame, invalid UTF-8, a frame over ``cap``) is handed to wsproto whole, as it
    comes (a long frame in pieces), so wsproto always holds whole frames only and the two never disagree about
    where a frame starts. wsproto's own state is untouched by the frames taken here: a whole message in one frame
    changes nothing in it. Sans-IO; the socket feeds it what it reads (:meth:`feed`)."""

    __slots__ = ("_buf", "_through", "cap")

    def __init__(self, cap: int, first: bytes = b"") -> None:
        self.cap = cap
        self._buf = bytearray(first)
        #: Bytes of the frame being handed to wsproto that are still to come.
        self._through = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def take(self, ws: Connection, fast: bool) -> str | bool | None:
        """The text of the next frame when it is taken here (only when ``fast``: the connection is open and no
        fragmented message is being assembled); True when bytes went to wsproto (its events follow); None when
        more bytes are needed."""
        buf = self._buf
        if self._through:
            part = bytes(buf[: self._through])
            del buf[: self._through]
            self._through -= len(part)
            if not part:
                return None
            ws.receive_data(part)
            return True
        size = len(buf)
        if size < 2:
            return None
        first, second = buf[0], buf[1]
        length = second & 0x7F
        start = 2
        if length == 126:
            if size < 4:
                return None
            length, start = (buf[2] << 8) | buf[3], 4
            minimal = length >= 126
        elif length == 127:
            if size < 10:
                return None
            length, start = int.from_bytes(buf[2:10], "big"), 10
            minimal = 65536 <= length < 1 << 63
        else:
            minimal = True
        masked = second & 0x80
        end = start + (4 if masked else 0) + length
        if fast and first == 0x81 and not masked and minimal and length <= self.cap:
            if size < end:
                return None  # the rest of the frame is still to come
            try:
                text = buf[start:end].decode()
            except UnicodeDecodeError:
                pass  # wsproto fails the connection (1007)
            else:
                del buf[:end]
                return text
        self._through = end
        return self.take(ws, fast)


def whole_text(event: wse.Event, cap: int) -> str | None:
    """The text of ``event`` when it is a whole ASCII text message within ``cap`` (an audio delta: the usual case,
    taken with no further checks), else None; the caller has no message part pending."""
    if type(event) is wse.TextMessage and event.message_finished:
        data = event.data
        if data.isascii() and len(data) <= cap:
            return data
    return None


class Gate:
    """A FIFO lock over one socket's reads (or its writes), lighter than ``trio.Lock``, which on every acquire
    registers its owner for the task's parking-lot breaker (inspecting the owner's coroutine) and checks the owner
    again on release. Free: taken with no schedule point (the read or write that follows is the checkpoint: one
    schedule point per message, not two). Held: the waiter parks, and :meth:`release` hands the gate to the first
    waiter (no task can slip in between). Cancellation: a waiter cancelled before it was handed the gate does not
    hold it; a pending cancellation raises in :meth:`acquire`, with the gate not taken."""

    __slots__ = ("_held", "_waiters")

    def __init__(self) -> None:
        self._held = False
        self._waiters = trio.lowlevel.ParkingLot()

    def locked(self) -> bool:
        return self._held

    @trio.lowlevel.enable_ki_protection
    async def acquire(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._held:
            await self._waiters.park()  # handed over by release(): held from here
        else:
            self._held = True

    @trio.lowlevel.enable_ki_protection
    def release(self) -> None:
        if self._waiters:
            self._waiters.unpark()
        else:
            self._held = False
