"""The one way out for a conversation's events: :class:`Outlet` (the engine's side) and :class:`EventStream`
(``conv.events``, the caller's side).

Theory of operation. Every event leaves through :meth:`Outlet.forward` (server events: waits for room, which is the
backpressure onto the socket reader; a waiting reader resumes once half the room is free; :meth:`Outlet.offer` is
the same without waiting, so a reader delivers a whole read's events in one wake-up) or :meth:`Outlet.put_now`
(``Started``). The end is claimed once
(:meth:`Outlet.claim`, synchronous): from that instant ordinary events are refused (dropped and counted), and only
the final ``Error``/``Closed`` can follow. They go into **reserved slots** beyond the capacity, so the end is never
held up by a caller who stopped reading and nothing has to be dropped to make room — ``Started`` stays the first
event delivered. :meth:`Outlet.finish` puts ``Closed`` (or nothing, for a replaced conversation) and ends the
stream; :meth:`Outlet.wait_finished` returns only once it has.

A ``KeyboardInterrupt`` cannot split the end: claiming it, putting the final events and finishing run with
Ctrl-C deferred (``trio.lowlevel.enable_ki_protection``, here and on the conversation's end path), so a Ctrl-C
landing there surfaces after ``Closed`` is in the stream.

Closing ``conv.events`` (``aclose()``) means "not listening": buffered and later events are dropped and counted in
``stats.events_dropped``; the conversation goes on and nothing stalls.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import trio

from ..protocol._lifecycle import Closed, ConversationEvent, ConversationStats, Error, Started

__all__ = ["EventStream", "Outlet"]

#: Room beyond the capacity for the final ``Error`` and ``Closed``.
_RESERVED: Final = 2


class Outlet:
    """The engine's end of the events (see the module docstring)."""

    __slots__ = (
        "_buffer",
        "_bytes",
        "_capacity",
        "_done",
        "_finished",
        "_listening",
        "_max_bytes",
        "_open",
        "_readers",
        "_stats",
        "_writers",
        "stream",
    )

    def __init__(self, capacity: int, stats: ConversationStats, *, max_bytes: int = 8 << 20) -> None:
        # Each buffered event with its size (the frame it came from). None while empty: an empty deque holds a
        # 64-slot block (~760 bytes), and an idle conversation has nothing buffered.
        self._buffer: deque[tuple[ConversationEvent, int]] | None = None
        self._bytes = 0
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._stats = stats
        self._open = True  # ordinary events accepted (until the end is claimed)
        self._listening = True  # the caller has not closed conv.events
        self._done = False  # finished: the stream ended
        # Made when first needed: most conversations never wait for their finish or for room (an idle one
        # holds neither).
        self._finished: trio.Event | None = None  # set once finished (waited by close())
        self._readers = trio.lowlevel.ParkingLot()
        self._writers: trio.lowlevel.ParkingLot | None = None  # the socket's reader, waiting for room
        #: ``conv.events``.
        self.stream = EventStream(self)

    @property
    def open(self) -> bool:
        """True until the end is claimed."""
        return self._open

    @trio.lowlevel.enable_ki_protection
    def claim(self) -> bool:
        """Claim the end: True for exactly one caller. Synchronous, so no task runs between the check and the set."""
        if not self._open:
            return False
        self._open = False
        if self._writers is not None:
            self._writers.unpark_all()
        return True

    async def forward(self, event: ConversationEvent, size: int = 0) -> None:
        """Deliver a server event of ``size`` bytes (the frame it came from), waiting while the buffer is full in
        count or in bytes (counted once in ``stats.event_waits``); an event larger than the byte bound passes when
        the buffer is empty. After the end was claimed, or while nobody listens, the event is dropped and counted.
        Cancellation: either delivered or not, never half."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._room_needed(size):
            self._stats.event_waits += 1
            while self._room_needed(size):
                if self._writers is None:
                    self._writers = trio.lowlevel.ParkingLot()
                await self._writers.park()
        self._put(event, size) if self._open else self._drop()
        await trio.lowlevel.cancel_shielded_checkpoint()

    def offer(self, event: ConversationEvent, size: int = 0) -> bool:
        """:meth:`forward` without waiting and without a checkpoint: False (nothing done) when the buffer is full —
        the caller then awaits :meth:`forward`. The reader delivers a whole read's events with one wake-up."""
        if self._room_needed(size):
            return False
        self._put(event, size) if self._open else self._drop()
        return True

    def _room_needed(self, size: int) -> bool:
        if not (self._open and self._listening):
            return False
        full_bytes = self._bytes > 0 and self._bytes + size > self._max_bytes
        return (self._buffer is not None and len(self._buffer) >= self._capacity) or full_bytes

    def put_now(self, event: Started | Error) -> None:
        """Deliver without waiting (``Started``, non-fatal errors of a failing setup); dropped after the end."""
        self._put(event) if self._open else self._drop()

    @trio.lowlevel.enable_ki_protection
    def put_final(self, event: Error | Closed) -> None:
        """The end's ``Error`` or ``Closed``: into the reserved room, whatever the capacity."""
        self._put(event)

    @trio.lowlevel.enable_ki_protection
    def finish(self, closed: Closed | None) -> None:
        """Put ``closed`` (``None`` for a replaced conversation: no event) and end the stream. Idempotent."""
        if self._done:
            return
        self._open = False
        if closed is not None:
            self._put(closed)
        self._done = True
        if self._finished is not None:
            self._finished.set()
        self._readers.unpark_all()
        if self._writers is not None:
            self._writers.unpark_all()

    @property
    def finished(self) -> bool:
        return self._done

    async def wait_finished(self) -> None:
        """Return once the stream ended. Cancellation: returns nothing, changes nothing."""
        if self._done:
            await trio.lowlevel.checkpoint()
            return
        if self._finished is None:
            self._finished = trio.Event()
        await self._finished.wait()

    def _put(self, event: ConversationEvent, size: int = 0) -> None:
        if not self._listening:
            self._drop()
            return
        buffer = self._buffer
        if buffer is None:
            buffer = self._buffer = deque()
        buffer.append((event, size))
        self._bytes += size
        self._stats.events_forwarded += 1
        if self._readers:
            self._readers.unpark()

    def _drop(self) -> None:
        self._stats.events_dropped += 1

    # --- the caller's side -------------------------------------------------------------------------------------

    def _take(self) -> ConversationEvent:
        buffer = self._buffer
        assert buffer is not None
        event, size = buffer.popleft()
        self._bytes -= size
        if not buffer:
            self._buffer = None
        if self._writers and len(buffer) <= self._capacity // 2 and self._bytes <= self._max_bytes // 2:
            # A waiting reader resumes once half the room is free, not at every event taken: the reader and the
            # caller then take turns per batch instead of per event.
            self._writers.unpark()
        return event

    def _stop_listening(self) -> None:
        self._listening = False
        self._stats.events_dropped += len(self._buffer) if self._buffer is not None else 0
        self._buffer = None
        self._bytes = 0
        if self._writers is not None:
            self._writers.unpark_all()
        self._readers.unpark_all()


class EventStream(trio.abc.ReceiveChannel[ConversationEvent]):
    """``conv.events``: ``Started`` first, server events in server order, ``Closed`` last; then it ends
    (``trio.EndOfChannel``, so ``async for`` stops). One reader at a time is the intended use.

    Cancellation: a cancelled :meth:`receive` takes nothing. :meth:`aclose` stops listening (see
    :class:`Outlet`); a receive after it raises ``trio.ClosedResourceError``.
    """

    __slots__ = ("_closed", "_outlet")

    def __init__(self, outlet: Outlet) -> None:
        self._outlet = outlet
        self._closed = False

    def receive_nowait(self) -> ConversationEvent:
        """The next event, or ``trio.WouldBlock``; ``trio.EndOfChannel`` after ``Closed``."""
        if self._closed:
            raise trio.ClosedResourceError("conv.events was closed")
        outlet = self._outlet
        if outlet._buffer:
            return outlet._take()
        if outlet.finished:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> ConversationEvent:
        """The next event (``trio.EndOfChannel`` after ``Closed``). A checkpoint: an event already buffered is
        taken after a schedule point; otherwise the wait is the schedule point, and the event the reader was woken
        for is taken at once (as a trio memory channel hands its value to a waiting receiver), not after one more
        trip through the scheduler. Cancellation: raises ``Cancelled`` with nothing taken."""
        await trio.lowlevel.checkpoint_if_cancelled()
        outlet = self._outlet
        if outlet._buffer and not self._closed:
            event = outlet._take()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return event
        while True:  # as receive_nowait(), without raising WouldBlock to itself on every wait
            if self._closed:
                raise trio.ClosedResourceError("conv.events was closed")
            if outlet._buffer:
                return outlet._take()
            if outlet._done:
                raise trio.EndOfChannel
            await outlet._readers.park()

    def pending(self) -> int:
        """Events buffered and not yet received."""
        buffer = self._outlet._buffer
        return 0 if buffer is None else len(buffer)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._outlet._stop_listening()
        await trio.lowlevel.checkpoint()
