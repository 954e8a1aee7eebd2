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

__all__ = ["Gate", "text_frame", "whole_text"]

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
