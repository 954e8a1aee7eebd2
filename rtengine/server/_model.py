"""The simulated model: the conversation's state and the scripted responses.

:class:`ModelState` is what the conversation remembers (its session, the last item, the last user text, the tool
calls awaiting output, how much output audio each item carried); server VAD lives in :mod:`~rtengine.server._turns`.
:class:`ResponseStreamer` streams one scripted response — a message (text, or audio: output audio deltas on a
plain websocket, a tone over RTP on a call) or, once, the :class:`~rtengine.server.ToolScript` function call —
through the ``send`` it is given, so it never knows who is watching.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import trio

from ..protocol._audio import tone
from ._options import ServerOptions
from ._shapes import new_id

if TYPE_CHECKING:
    from ._calls import Call

__all__ = ["ActiveResponse", "ModelState", "ResponseStreamer"]

#: Output audio per ``response.output_audio.delta`` on a plain websocket.
AUDIO_CHUNK_MS: Final = 50

Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class ActiveResponse:
    """The response being streamed; cancelling ``scope`` cancels it (``response.cancel``, barge-in)."""

    response_id: str
    scope: trio.CancelScope
    #: Why it was cancelled (``client_cancelled``, ``turn_detected``), once it was.
    reason: str | None = None

    def cancel(self, reason: str) -> None:
        """Cancel the response, recording ``reason`` (the ``status_details.reason`` of its ``response.done``)."""
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

    def new_item(self, item: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """A completed client item as the server shows it (id, object, status) and its ``previous_item_id``."""
        full = {"id": new_id("item"), "object": "realtime.item", "status": "completed", **item}
        return full, self.follow(full["id"])


class ResponseStreamer:
    """Streams scripted responses for one conversation through ``send``."""

    def __init__(self, state: ModelState, options: ServerOptions, call: Call | None, send: Send) -> None:
        self._state = state
        self._options = options
        self._call = call
        self._send = send

    def _response_object(
        self, response_id: str, status: str, output: list[Any], modality: str, reason: str | None = None
    ) -> dict[str, Any]:
        details = {"type": "cancelled", "reason": reason or "client_cancelled"}
        return {
            "object": "realtime.response",
            "id": response_id,
            "status": status,
            "status_details": None if status != "cancelled" else details,
            "output": output,
            "conversation_id": "conv_local",
            "output_modalities": [modality],
            "max_output_tokens": "inf",
            "usage": None if status == "in_progress" else {"total_tokens": 0, "input_tokens": 0, "output_tokens": 0},
            "metadata": None,
        }

    async def stream(self, response: ActiveResponse) -> None:
        """``response.created`` … ``response.done`` (``cancelled`` if ``response.scope`` is cancelled meanwhile)."""
        state, send = self._state, self._send
        modality = (state.session.get("output_modalities") or ["audio"])[0]
        rid = response.response_id
        output: list[Any] = []
        with response.scope:
            await send(
                {"type": "response.created", "response": self._response_object(rid, "in_progress", [], modality)}
            )
            if self._options.tool_call is not None and not state.tool_used:
                state.tool_used = True
                output = await self._tool_response(rid)
            else:
                output = await self._message_response(rid, modality)
        status = "cancelled" if response.scope.cancelled_caught else "completed"
        if status == "cancelled" and self._call is not None:
            self._call.source.clear()
        state.response = None
        done = self._response_object(rid, status, output, modality, response.reason)
        await send({"type": "response.done", "response": done})
        if self._call is not None and modality == "audio":
            kind = "output_audio_buffer.cleared" if status == "cancelled" else "output_audio_buffer.stopped"
            await send({"type": kind, "response_id": rid})

    def _reply_text(self) -> str:
        state = self._state
        if state.tool_outputs:
            name, output = state.tool_outputs[-1]
            state.tool_outputs.clear()
            return f"The {name} tool returned: {output}"
        if self._options.reply_text is not None:
            return self._options.reply_text
        if state.last_user_text is not None:
            return f"You said: {state.last_user_text}"
        return "Hello from the rtengine local server."

    async def _message_response(self, rid: str, modality: str) -> list[Any]:
        send = self._send
        text = self._reply_text()
        iid = new_id("item")
        previous = self._state.follow(iid)
        item: dict[str, Any] = {
            "id": iid,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        where = {"response_id": rid, "item_id": iid, "output_index": 0, "content_index": 0}
        output: list[Any] = [item]
        await send({"type": "response.output_item.added", "response_id": rid, "output_index": 0, "item": item})
        await send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        audio = modality == "audio"
        part: dict[str, Any] = (
            {"type": "output_audio", "transcript": ""} if audio else {"type": "output_text", "text": ""}
        )
        await send({"type": "response.content_part.added", **where, "part": part})
        if audio and self._call is not None:
            self._call.source.push(tone(440.0, self._options.audio_ms))  # the answer is heard over RTP
            await send({"type": "output_audio_buffer.started", "response_id": rid})
        chunks = self._audio_chunks() if audio and self._call is None else []
        words = text.split(" ")
        delta_type = "response.output_audio_transcript.delta" if audio else "response.output_text.delta"
        for index in range(max(len(words), len(chunks))):
            if index < len(chunks):
                await send({"type": "response.output_audio.delta", **where, "delta": chunks[index]})
                self._state.audio_items[iid] = self._state.audio_items.get(iid, 0) + AUDIO_CHUNK_MS
            if index < len(words):
                await send(
                    {"type": delta_type, **where, "delta": words[index] + (" " if index < len(words) - 1 else "")}
                )
            if self._options.delta_interval:
                await trio.sleep(self._options.delta_interval)
        if audio:
            if chunks:
                await send({"type": "response.output_audio.done", **where})
            await send({"type": "response.output_audio_transcript.done", **where, "transcript": text})
            done_part = {"type": "output_audio", "transcript": text}
        else:
            await send({"type": "response.output_text.done", **where, "text": text})
            done_part = {"type": "output_text", "text": text}
        await send({"type": "response.content_part.done", **where, "part": done_part})
        item = {**item, "status": "completed", "content": [done_part]}
        output[0] = item
        await send({"type": "response.output_item.done", "response_id": rid, "output_index": 0, "item": item})
        await send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})
        return output

    def _audio_chunks(self) -> list[str]:
        pcm = tone(440.0, self._options.audio_ms)
        size = 24000 * AUDIO_CHUNK_MS // 1000 * 2
        return [base64.b64encode(pcm[i : i + size]).decode("ascii") for i in range(0, len(pcm), size)]

    async def _tool_response(self, rid: str) -> list[Any]:
        send = self._send
        script = self._options.tool_call
        assert script is not None
        iid, call_id = new_id("item"), new_id("call")
        previous = self._state.follow(iid)
        item: dict[str, Any] = {
            "id": iid,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": script.name,
            "call_id": call_id,
            "arguments": "",
        }
        await send({"type": "response.output_item.added", "response_id": rid, "output_index": 0, "item": item})
        await send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        where = {"response_id": rid, "item_id": iid, "output_index": 0, "call_id": call_id}
        await send({"type": "response.function_call_arguments.delta", **where, "delta": script.arguments})
        await send(
            {
                "type": "response.function_call_arguments.done",
                **where,
                "name": script.name,
                "arguments": script.arguments,
            }
        )
        item = {**item, "status": "completed", "arguments": script.arguments}
        self._state.pending_tools[call_id] = script.name
        await send({"type": "response.output_item.done", "response_id": rid, "output_index": 0, "item": item})
        await send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})
        return [item]
