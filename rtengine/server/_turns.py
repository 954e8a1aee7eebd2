"""The user's turns: the input audio buffer, server VAD, commits, the fake transcription and the automatic response.

One :class:`Turns` per conversation, fed by ``input_audio_buffer.append`` (:meth:`Turns.append`), ``.commit`` and
``.clear``. With turn detection on (``server_vad`` or ``semantic_vad``), the energy VAD of
:mod:`~rtengine.server._vad` plays the API's turn, in its order (real recordings)::

    input_audio_buffer.speech_started   (cancels the active response, reason turn_detected, if interrupt_response)
    input_audio_buffer.speech_stopped
    input_audio_buffer.committed
    conversation.item.added / .done     (a user message with one input_audio part, transcript null)
    conversation.item.input_audio_transcription.delta … .completed   (when transcription is configured)
    response.created …                  (when create_response)

The API transcribes concurrently with the response; the fake sends the transcript first, which the API's
documentation allows ("this event may come before or after the Response events"). ``idle_timeout_ms`` counts
wall time, as the API's does (:mod:`~rtengine.server._idle`): ``response.done`` plus the playback of the output
audio it streamed, plus the timeout, with no speech meanwhile, sends ``input_audio_buffer.timeout_triggered``
(``audio_start_ms`` where playback ended in the input audio, ``audio_end_ms`` the input audio written by then),
commits the buffered (silent) audio and creates a response — whether or not the client kept sending audio.
Speech, a commit or a new response cancels the countdown. While nobody speaks, the buffer keeps only the last
``prefix_padding_ms`` of audio. All positions (``audio_start_ms``/``audio_end_ms``) count every byte appended in
the session, in the input format.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import trio

from ._idle import IdleTimer
from ._item_store import ConversationItems
from ._model import ModelState
from ._shapes import error_event, new_id
from ._transcribe import transcribe
from ._vad import FRAME_MS, InputFormat, VadSettings, Voice, input_format

if TYPE_CHECKING:
    from ._views import Link

__all__ = ["Turns"]

Send = Callable[[dict[str, Any]], Awaitable[None]]
Reply = Callable[["Link | None", dict[str, Any]], Awaitable[None]]

#: The least audio ``input_audio_buffer.commit`` accepts (the API's ``input_audio_buffer_commit_empty``).
MIN_COMMIT_MS: Final = 100
#: The most audio the input buffer holds; beyond it the oldest goes (a call with turn detection off hears audio
#: forever and may never commit: it must not grow without bound). 15 MiB, the API's limit on one append.
MAX_BUFFER_BYTES: Final = 15 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Started:
    audio_start_ms: int
    item_id: str
    interrupt: bool


@dataclass(frozen=True, slots=True)
class _Stopped:
    audio_end_ms: int
    item_id: str
    audio: bytes
    respond: bool


@dataclass(frozen=True, slots=True)
class _TimedOut:
    audio_start_ms: int
    audio_end_ms: int
    item_id: str
    audio: bytes


_Happening = _Started | _Stopped | _TimedOut


def _detection(session: dict[str, Any]) -> dict[str, Any] | None:
    detection = ((session.get("audio") or {}).get("input") or {}).get("turn_detection")
    return detection if isinstance(detection, dict) else None


class Turns:
    """The input audio buffer of one conversation and the user turns taken from it."""

    def __init__(
        self,
        state: ModelState,
        items: ConversationItems,
        send: Send,
        reply: Reply,
        start_response: Callable[[], bool],
        nursery: Callable[[], trio.Nursery | None] = lambda: None,
    ) -> None:
        self._state = state
        self._items = items
        self._send = send
        self._reply = reply
        self._start_response = start_response
        self._format: InputFormat | None = None
        self._base_ms = 0.0  # audio appended before the current input format
        self._bytes_in = 0  # audio appended in the current input format
        self._pending = bytearray()  # appended, not yet cut into VAD frames
        self._buffer = bytearray()  # appended, not yet committed or cleared (ends at now_ms)
        self._voice = Voice()
        self._item_id: str | None = None  # the user item a speech in progress will become
        self._idle_from: float | None = None  # where playback of the last response ended, in input audio ms
        self._nursery = nursery  # where the idle timer runs (the conversation's), None once it has ended
        self._idle = IdleTimer(self._idle_fired)

    @property
    def now_ms(self) -> float:
        """Milliseconds of audio appended in this session."""
        return self._base_ms + (self._format.ms(self._bytes_in) if self._format else 0.0)

    @property
    def speaking(self) -> bool:
        return self._voice.speaking

    def observe(self, event: dict[str, Any]) -> None:
        """Follow the conversation's outgoing events: a response arms the idle timeout once it is done (and its
        audio played), a new response disarms it."""
        match event.get("type"):
            case "response.created":
                self._disarm()
            case "response.done":
                output = (event.get("response") or {}).get("output") or []
                ids = [item.get("id") for item in output if isinstance(item, dict)]
                playback_ms = sum(self._state.audio_items.get(str(i), 0) for i in ids)
                self._arm(playback_ms)

    # --- the idle timeout (wall time) ------------------------------------------------------------------------

    def _arm(self, playback_ms: int) -> None:
        """At ``response.done``: time out ``playback_ms`` + ``idle_timeout_ms`` from now, if one is set."""
        self._disarm()
        detection = _detection(self._state.session)
        idle = VadSettings.of(detection).idle_timeout_ms if detection is not None else None
        nursery = self._nursery()
        if idle is None or nursery is None:
            return
        self._idle_from = self.now_ms + playback_ms
        self._idle.arm(nursery, (playback_ms + idle) / 1000)

    def _disarm(self) -> None:
        self._idle_from = None
        self._idle.disarm()

    async def _idle_fired(self) -> None:
        """The timeout elapsed with nobody speaking: ``timeout_triggered``, the (silent) buffer committed, a
        response. Nothing if turn detection was turned off meanwhile."""
        start, self._idle_from = self._idle_from, None
        if start is None or self._voice.speaking or _detection(self._state.session) is None:
            return
        fmt = self._format or input_format(self._state.session)
        end = self.now_ms
        audio = bytes(self._buffer)
        self._buffer.clear()
        self._pending.clear()
        await self._play(_TimedOut(round(min(start, end)), round(end), new_id("item"), audio), fmt)

    # --- client events ---------------------------------------------------------------------------------------

    async def append(self, audio: bytes, fmt: InputFormat | None = None) -> None:
        """``input_audio_buffer.append``: buffer the audio, and play server VAD over it when it is on. ``fmt``
        overrides the session's input format: a call's RTP audio arrives decoded, as PCM16 24 kHz, whatever the
        session names."""
        session = self._state.session
        fmt = fmt or input_format(session)
        if fmt != self._format:
            self._base_ms = self.now_ms
            self._format, self._bytes_in = fmt, 0
            self._forget()
        self._buffer += audio
        if len(self._buffer) > MAX_BUFFER_BYTES:
            del self._buffer[: len(self._buffer) - MAX_BUFFER_BYTES]
        self._bytes_in += len(audio)
        detection = _detection(session)
        if detection is None:  # the client commits; a speech in progress is forgotten
            self._pending.clear()
            self._voice.reset()
            self._item_id = None
            return
        settings = VadSettings.of(detection)
        respond = settings.create_response and session.get("type") != "transcription"
        happenings: list[_Happening] = []
        self._pending += audio
        while len(self._pending) >= fmt.frame_bytes:
            frame = bytes(self._pending[: fmt.frame_bytes])
            del self._pending[: fmt.frame_bytes]
            happening = self._frame(frame, self.now_ms - fmt.ms(len(self._pending)), fmt, settings, respond)
            if happening is not None:
                happenings.append(happening)
        for happening in happenings:
            await self._play(happening, fmt)

    async def commit(self, event_id: str | None, origin: Link | None) -> None:
        """``input_audio_buffer.commit``: the buffer becomes a user item (no response), or the API's error when
        it holds less than 100 ms."""
        fmt = self._format or input_format(self._state.session)
        buffered = fmt.ms(len(self._buffer))
        if buffered < MIN_COMMIT_MS:
            message = (
                "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
                f"but buffer only has {buffered:.2f}ms of audio."
            )
            await self._reply(origin, error_event(message, code="input_audio_buffer_commit_empty", event_id=event_id))
            return
        item_id, audio = self._item_id or new_id("item"), bytes(self._buffer)
        self._forget()
        await self._commit(item_id, audio, fmt, respond=False)

    async def clear(self) -> None:
        """``input_audio_buffer.clear``: drop the buffer (and a speech in progress); ``cleared`` to every view."""
        self._forget()
        await self._send({"type": "input_audio_buffer.cleared"})

    # --- the VAD ---------------------------------------------------------------------------------------------

    def _forget(self) -> None:
        self._buffer.clear()
        self._pending.clear()
        self._voice.reset()
        self._item_id = None

    def _cut(self, at_ms: float, fmt: InputFormat) -> int:
        """The buffer index of the position ``at_ms`` (the buffer ends at :attr:`now_ms`)."""
        return max(0, len(self._buffer) - round((self.now_ms - at_ms) * fmt.bytes_per_ms))

    def _frame(
        self, frame: bytes, end_ms: float, fmt: InputFormat, settings: VadSettings, respond: bool
    ) -> _Happening | None:
        """Run the VAD over one frame ending at ``end_ms``; what it makes happen, if anything."""
        step = self._voice.step(fmt.pcm16(frame), settings)
        if step == "start":
            buffer_start = self.now_ms - fmt.ms(len(self._buffer))
            start = max(buffer_start, end_ms - FRAME_MS - settings.prefix_padding_ms)
            del self._buffer[: self._cut(start, fmt)]
            self._item_id = new_id("item")
            self._disarm()
            return _Started(round(start), self._item_id, settings.interrupt_response)
        if step == "stop":
            cut = self._cut(end_ms, fmt)
            audio = bytes(self._buffer[:cut])
            del self._buffer[:cut]
            item_id, self._item_id = self._item_id or new_id("item"), None
            return _Stopped(round(end_ms), item_id, audio, respond)
        if self._voice.speaking:
            return None
        del self._buffer[: self._cut(end_ms - settings.prefix_padding_ms, fmt)]
        return None

    async def _play(self, happening: _Happening, fmt: InputFormat) -> None:
        send = self._send
        match happening:
            case _Started(audio_start_ms=start, item_id=item_id, interrupt=interrupt):
                await send({"type": "input_audio_buffer.speech_started", "audio_start_ms": start, "item_id": item_id})
                response = self._state.response
                if interrupt and response is not None:
                    response.cancel("turn_detected")
            case _Stopped(audio_end_ms=end, item_id=item_id, audio=audio, respond=respond):
                await send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": end, "item_id": item_id})
                await self._commit(item_id, audio, fmt, respond=respond)
            case _TimedOut(audio_start_ms=start, audio_end_ms=end, item_id=item_id, audio=audio):
                await send(
                    {
                        "type": "input_audio_buffer.timeout_triggered",
                        "audio_start_ms": start,
                        "audio_end_ms": end,
                        "item_id": item_id,
                    }
                )
                await self._commit(item_id, audio, fmt, respond=True)

    # --- the turn --------------------------------------------------------------------------------------------

    async def _commit(self, item_id: str, audio: bytes, fmt: InputFormat, *, respond: bool) -> None:
        """``committed``, the user audio item, its transcription (if configured) and, if ``respond``, a response."""
        send, state = self._send, self._state
        self._disarm()  # a new turn: the next response.done arms the idle timeout again
        previous = state.follow(item_id)
        await send({"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id})
        item = {
            "id": item_id,
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        await send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        await send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})
        self._items.keep_audio(item_id, audio)
        level = VadSettings.of(_detection(state.session) or {}).level
        transcript = transcribe(fmt.pcm16(audio), fmt.rate, level)
        if transcript.text:
            state.last_user_text = transcript.text  # what the fake model "heard"
        transcription = ((state.session.get("audio") or {}).get("input") or {}).get("transcription")
        if isinstance(transcription, dict):
            where = {"item_id": item_id, "content_index": 0}
            for delta in transcript.deltas:
                await send({"type": "conversation.item.input_audio_transcription.delta", **where, "delta": delta})
            await send(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    **where,
                    "transcript": transcript.text,
                    "usage": transcript.usage(),
                }
            )
            self._items.keep_transcript(item_id, transcript.text)
        if respond:
            self._start_response()
