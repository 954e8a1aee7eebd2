"""The simulated model: the conversation's state, a tiny voice activity detector, and the active response.

:class:`ModelState` is what the conversation remembers (its session, the last item, the last user text, the tool
calls awaiting output, how much output audio each item carried). :class:`EnergyVad` stands in for server VAD.
:class:`ActiveResponse` is the response being streamed (by :mod:`~rtengine.server._responses`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from ..protocol._audio import rms
from ._shapes import new_id

__all__ = ["ActiveResponse", "EnergyVad", "ModelState"]

#: Output audio per ``response.output_audio.delta`` on a plain websocket.
AUDIO_CHUNK_MS: Final = 50
#: Input audio louder than this (RMS, fraction of full scale) starts speech; quieter than SILENCE_LEVEL ends it.
SPEECH_LEVEL: Final = 0.05
SILENCE_LEVEL: Final = 0.01


@dataclass
class ActiveResponse:
    """The response being streamed: ``request`` is the ``response`` object of its ``response.create`` (``{}``
    for an automatic one); :meth:`cancel` cancels it (``response.cancel``, a VAD interruption)."""

    response_id: str
    scope: trio.CancelScope
    request: Mapping[str, Any] = field(default_factory=dict)
    #: ``status_details.reason`` of its ``response.done`` when cancelled.
    reason: str = "client_cancelled"
    #: Set once its ``response.created`` went out (or its stream ended without it): a ``response.create`` is
    #: answered before the client's next event is read, as the API does.
    announced: trio.Event = field(default_factory=trio.Event)

    def cancel(self, reason: str) -> None:
        """Cancel the response, recording why: ``client_cancelled`` (``response.cancel``) or ``turn_detected``
        (the user's speech interrupted it). The first cancellation's reason stands."""
        if not self.scope.cancel_called:
            self.reason = reason
        self.scope.cancel()


@dataclass
class ModelState:
    """What one conversation remembers between client events."""

    session: dict[str, Any]
    last_item_id: str | None = None
    last_user_text: str | None = None
    #: ``(tool name, output)`` received for the scripted call, quoted by the next response.
    tool_outputs: list[tuple[str, str]] = field(default_factory=list)
    #: call_id → tool name of function calls awaiting their output.
    pending_tools: dict[str, str] = field(default_factory=dict)
    tool_used: bool = False
    #: Milliseconds of output audio sent per assistant item (what ``conversation.item.truncate`` may cut).
    audio_items: dict[str, int] = field(default_factory=dict)
    response: ActiveResponse | None = None

    def follow(self, item_id: str) -> str | None:
        """Make ``item_id`` the last item; return the one before it (``previous_item_id``)."""
        previous, self.last_item_id = self.last_item_id, item_id
        return previous

    def new_item(self, item: dict[str, Any], after: object = None) -> tuple[dict[str, Any], str | None]:
        """A client item as the server shows it (an id; a ``status`` except on function call outputs, as the API
        shows them) and its ``previous_item_id``: the last item, unless ``after`` (the event's
        ``previous_item_id``, already checked to exist) places it: ``root`` first, an item id right after it."""
        full = {"id": new_id("item"), "type": item.get("type"), "status": "completed", **item}
        if full["type"] == "function_call_output":
            del full["status"]
        if after is None:
            return full, self.follow(full["id"])
        previous = None if after == "root" else str(after)
        if previous == self.last_item_id:  # placed at the end after all
            self.last_item_id = full["id"]
        return full, previous


class EnergyVad:
    """A tiny energy VAD standing in for server VAD: loud audio starts speech, silence after speech stops it."""

    def __init__(self) -> None:
        self.bytes_in = 0
        self.speaking = False
        self._item_id: str | None = None

    def feed(self, pcm: bytes, detection: dict[str, Any] | None) -> dict[str, Any] | None:
        """Account for ``pcm`` (PCM16 mono 24 kHz); the ``speech_started``/``speech_stopped`` event it causes, if
        any. With ``detection`` None (turn detection off) no event is ever produced."""
        start_ms = self.bytes_in // 48  # 48 bytes per ms
        self.bytes_in += len(pcm)
        if detection is None:
            return None
        level = rms(pcm)
        if not self.speaking and level >= SPEECH_LEVEL:
            self.speaking = True
            self._item_id = new_id("item")
            return {"type": "input_audio_buffer.speech_started", "audio_start_ms": start_ms, "item_id": self._item_id}
        if self.speaking and level < SILENCE_LEVEL:
            self.speaking = False
            return {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": start_ms, "item_id": self._item_id}
        return None
