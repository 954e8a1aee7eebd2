"""The caller's inputs, buffered from the first moment: :class:`Inputs`.

Two queues. **Control** — texts, tool outputs, response requests and cancels — is one FIFO, so the wire order is the
order of the calls (a ``response.create`` asked for after a text follows that text), with a capacity per kind
(``Capacities.text`` for texts, ``Capacities.tools`` for the rest): a sender waits while its kind is full.
**Audio** is a separate queue that never blocks: a full buffer drops the frame and counts it; the writer takes
every frame waiting at once (one ``input_audio_buffer.append``), and drops those older than ``max_audio_age`` —
the overload policy of :mod:`~rtengine.engine._overload`. A control command about the input audio buffer
(``commit_audio``, ``clear_audio``, a raw ``input_audio_buffer.*`` event) is an *audio barrier*: it remembers how
many frames had been queued when it was, and the writer cannot take it before it has handled (written, expired,
or lost) that many (:meth:`Inputs.audio_handled`), so a commit follows its audio. One writer per socket takes both
kinds (:meth:`Inputs.next_input`: a command that may go first, else every frame waiting).

Each kind is bounded in bytes as well as in count (``Capacities.text_bytes``, ``tool_bytes``, ``audio_bytes``):
the bytes of the texts, of the tool outputs, of the PCM frames held. Full by either bound means the kind's policy —
texts and tool items wait (counted in ``stats.input_waits``), audio is dropped (``audio_frames_dropped`` and
``audio_bytes_dropped``). One item larger than its byte bound is still taken when its kind holds nothing, so it
cannot wait forever; waiting senders of a kind go first come, first served (a later small item that would fit
waits behind an earlier big one, so it is neither overtaken nor starved).

:meth:`Inputs.close` ends both at the moment the conversation's end is claimed: waiting senders wake with
:class:`~rtengine.ConversationNotRunning`; :meth:`Inputs.discard` then counts what was accepted and never sent.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import trio

from ..protocol._brain import Command, SendText, SendToolOutput
from ..protocol._commands import SendEvent, audio_barrier
from ..protocol._errors import ConversationNotRunning
from ..protocol._lifecycle import ConversationStats
from ._overload import MAX_APPEND_BYTES, DropSummary

__all__ = ["Inputs"]

log = logging.getLogger("rtengine")


def _never() -> bool:
    return False


class Inputs:
    """The input buffers of one conversation (see the module docstring)."""

    __slots__ = (
        "_audio",
        "_audio_at",
        "_audio_byte_cap",
        "_audio_bytes",
        "_audio_cap",
        "_audio_done",
        "_audio_queued",
        "_control",
        "_drops",
        "_max_age",
        "_open",
        "_ready",
        "_room",
        "_stats",
        "_text_byte_cap",
        "_text_bytes",
        "_text_cap",
        "_text_line",
        "_texts",
        "_tool_byte_cap",
        "_tool_bytes",
        "_tool_cap",
        "_tool_line",
        "_tools",
    )

    def __init__(
        self,
        *,
        text: int,
        tools: int,
        audio: int,
        stats: ConversationStats,
        text_bytes: int = 1 << 20,
        tool_bytes: int = 4 << 20,
        audio_bytes: int = 1 << 20,
        max_audio_age: float | None = None,
    ) -> None:
        # Lists, not deques: an empty deque holds a 64-slot block (~760 bytes) and a conversation has several;
        # the queues are short and the audio is taken in batches (``del list[:k]``).
        #: Each command with the audio mark a barrier waits for (the frames queued before it), else 0, and the frames
        #: queued before it (the one writer keeps the call order across the kinds).
        self._control: list[tuple[Command, int, int]] = []
        self._audio: list[bytes] = []
        self._audio_at: list[float] = []  # when each frame was queued
        self._audio_queued = self._audio_done = 0  # frames ever queued / handled by the writer
        self._max_age = math.inf if max_audio_age is None else max_audio_age
        self._drops = DropSummary(max_audio_age)
        self._text_cap, self._tool_cap, self._audio_cap = text, tools, audio
        self._text_byte_cap, self._tool_byte_cap, self._audio_byte_cap = text_bytes, tool_bytes, audio_bytes
        self._texts = self._tools = 0
        self._text_bytes = self._tool_bytes = self._audio_bytes = 0
        self._open = True
        self._stats = stats
        self._room: trio.lowlevel.ParkingLot | None = None  # senders waiting for room (made for the first)
        self._text_line: list[object] = []  # the waiting senders of each kind, in arrival order
        self._tool_line: list[object] = []
        # The writer waiting for an input (one lot for both kinds: woken with ``unpark_all``, each waiter checks
        # for its own kind).
        self._ready = trio.lowlevel.ParkingLot()

    @property
    def open(self) -> bool:
        return self._open

    async def put(self, command: Command) -> None:
        """Queue a control command, waiting while its kind is full. Raises ``ConversationNotRunning`` once closed
        (also for a sender that was waiting). Cancellation: either queued or ``Cancelled`` with nothing queued."""
        await trio.lowlevel.checkpoint_if_cancelled()
        text = isinstance(command, SendText)
        size = _size(command)
        line = self._text_line if text else self._tool_line
        if self._open and (line or self._full(text, size)):
            self._stats.input_waits += 1
            ticket = object()
            line.append(ticket)  # first come, first served: a small input never slips past a waiting big one
            try:
                while self._open and (line[0] is not ticket or self._full(text, size)):
                    if self._room is None:
                        self._room = trio.lowlevel.ParkingLot()
                    await self._room.park()
            finally:
                line.remove(ticket)
                self._wake_senders()  # the next in line may fit now (or this one gave up)
        if not self._open:
            raise ConversationNotRunning
        queued = self._audio_queued
        self._control.append((command, queued if audio_barrier(command) else 0, queued))
        if text:
            self._texts += 1
            self._text_bytes += size
        else:
            self._tools += 1
            self._tool_bytes += size
        self._ready.unpark_all()
        await trio.lowlevel.cancel_shielded_checkpoint()

    def put_audio(self, pcm16: bytes) -> bool:
        """Queue an audio frame; False (counted) when the buffer is full. Raises ``ConversationNotRunning``."""
        if not self._open:
            raise ConversationNotRunning
        held = self._audio_bytes
        if len(self._audio) >= self._audio_cap or (held and held + len(pcm16) > self._audio_byte_cap):
            self._stats.audio_frames_dropped += 1
            self._stats.audio_bytes_dropped += len(pcm16)
            self._drops.dropped(full=1)
            return False
        self._audio.append(pcm16)
        self._audio_queued += 1
        self._audio_at.append(trio.current_time())
        self._audio_bytes += len(pcm16)
        self._stats.audio_frames_queued += 1
        if self._ready:
            self._ready.unpark_all()
        return True

    async def next_command(self) -> Command:
        """The oldest control command; an audio barrier once the audio before it was handled.
        Cancellation: takes nothing."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._command_ready():
            await self._ready.park()
        return self._pop_command()

    async def next_input(
        self, since: float = -math.inf, max_bytes: int = MAX_APPEND_BYTES, stopped: Callable[[], bool] = _never
    ) -> Command | list[bytes] | None:
        """The next input for the one writer of a socket, in call order across the kinds: the oldest control
        command once the audio queued before it was handled (written, expired or lost), else the audio frames
        waiting (as :meth:`next_audio`, but only those queued before the oldest command). None, with nothing
        taken, once ``stopped()`` is true: it is asked before each take, and again after :meth:`wake`.
        Cancellation: takes nothing."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            if stopped():
                return None
            audio = self._audio
            if self._command_ready() and (not audio or self._control[0][2] <= self._audio_done):
                return self._pop_command()
            if audio:
                until = self._control[0][2] if self._control else None
                frames = self._take_audio(since, max_bytes, until)
                if frames is not None:
                    return frames
                continue  # expired (handled): the command behind them may go now
            await self._ready.park()

    def _command_ready(self) -> bool:
        return bool(self._control) and self._control[0][1] <= self._audio_done

    def _pop_command(self) -> Command:
        command, _, _ = self._control.pop(0)
        if isinstance(command, SendText):
            self._texts -= 1
            self._text_bytes -= _size(command)
        else:
            self._tools -= 1
            self._tool_bytes -= _size(command)
        self._wake_senders()
        return command

    async def next_audio(self, since: float = -math.inf, max_bytes: int = MAX_APPEND_BYTES) -> list[bytes]:
        """The audio frames waiting, oldest first: at least one, and as many more as fit in
        ``max_bytes`` together. Frames that waited longer than the age bound — counted from when they were queued
        or from ``since`` (when the socket became writable), whichever is later — are dropped and counted first;
        ``stats.input_audio_lag`` becomes the wait of the oldest frame taken. Cancellation: takes nothing."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            while not self._audio:
                await self._ready.park()
            frames = self._take_audio(since, max_bytes)
            if frames is not None:
                return frames

    def _take_audio(self, since: float, max_bytes: int, until: int | None = None) -> list[bytes] | None:
        """Drop the frames too old (counted), then take what :meth:`next_audio` returns — with ``until``, only
        frames queued before the ``until``-th (those before a command); None when all expired."""
        audio, queued_at, stats = self._audio, self._audio_at, self._stats
        now = trio.current_time()
        expired = 0
        while expired < len(audio) and now - max(queued_at[expired], since) > self._max_age:
            expired += 1
        if expired:
            size = sum(map(len, audio[:expired]))
            del audio[:expired], queued_at[:expired]
            self._audio_bytes -= size
            stats.audio_frames_expired += expired
            stats.audio_bytes_expired += size
            self._drops.dropped(expired=expired)
            self.audio_handled(expired)  # a barrier behind them must not wait for frames that will never go
        if not audio or (until is not None and until <= self._audio_done):
            return None  # all expired, or those before the command did: the command goes next
        lag = now - queued_at[0]
        stats.input_audio_lag = lag
        stats.input_audio_lag_max = max(stats.input_audio_lag_max, lag)
        size, count = len(audio[0]), 1
        most = len(audio) if until is None else min(until - self._audio_done, len(audio))
        while count < most and size + len(audio[count]) <= max_bytes:
            size += len(audio[count])
            count += 1
        frames = audio[:count]
        del audio[:count], queued_at[:count]
        self._audio_bytes -= size
        return frames

    def audio_handled(self, frames: int = 1) -> None:
        """The writer is done with ``frames`` frames it took (written, or lost for good — not carried to a next
        socket), or the age bound dropped them: a barrier waiting for them may go."""
        self._audio_done += frames
        if self._ready and self._command_ready():
            self._ready.unpark_all()

    def _wake_senders(self) -> None:
        if self._room is not None:
            self._room.unpark_all()

    def wake(self) -> None:
        """Wake the writer waiting in :meth:`next_input`, to ask its ``stopped()`` again."""
        self._ready.unpark_all()

    def close(self) -> None:
        """No more inputs: waiting and later senders get ``ConversationNotRunning``. Idempotent."""
        self._open = False
        self._wake_senders()

    def discard(self) -> None:
        """Count (per kind) and drop what is still buffered. Called once the conversation's tasks have ended."""
        stats = self._stats
        stats.texts_discarded += self._texts
        stats.tool_items_discarded += self._tools
        stats.audio_frames_discarded += len(self._audio)
        if self._texts or self._tools or self._audio:
            log.info(
                "realtime inputs never sent: texts=%d tool_items=%d audio_frames=%d",
                self._texts,
                self._tools,
                len(self._audio),
            )
        self._control.clear()
        self._audio.clear()
        self._audio_at.clear()
        self._drops.flush()
        self._texts = self._tools = 0
        self._text_bytes = self._tool_bytes = self._audio_bytes = 0

    def _full(self, text: bool, size: int) -> bool:
        """No room for an item of ``size`` bytes of its kind: its count is at the cap, or it holds bytes and the
        item would take them past the byte cap."""
        if text:
            held, count, cap, byte_cap = self._text_bytes, self._texts, self._text_cap, self._text_byte_cap
        else:
            held, count, cap, byte_cap = self._tool_bytes, self._tools, self._tool_cap, self._tool_byte_cap
        return count >= cap or (held > 0 and held + size > byte_cap)


def _size(command: Command) -> int:
    """The bytes an input holds: a text's or a tool output's UTF-8 length (checked encodable when made); a raw
    event its encoded size; other commands hold none."""
    if isinstance(command, SendText):
        return len(command.text.encode())
    if isinstance(command, SendToolOutput):
        return len(command.output.encode()) + len(command.call_id)
    if isinstance(command, SendEvent):
        return command.size
    return 0
