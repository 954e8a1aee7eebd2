"""Streaming one scripted response, in the real API's order and shapes.

:class:`ResponseStreamer` streams a message (text, or audio: output audio deltas on a plain websocket, a tone over
RTP on a call) or, once, the :class:`~rtengine.server.ToolScript` function call through the ``send`` it is given,
so it never knows who is watching. The order of events follows recordings of the real API (see
``tests/server/recordings/``):

* a message: ``response.created`` → ``response.output_item.added`` → ``conversation.item.added`` →
  ``response.content_part.added`` (part ``audio``/``text``) → transcript (or text) deltas → on a call
  ``output_audio_buffer.started``, on a websocket the output audio deltas (in the session's output format: PCM16
  24 kHz, or G.711 μ-law/A-law at 8 kHz) → ``response.output_audio.done`` →
  ``…transcript.done`` (or ``response.output_text.done``) → ``response.content_part.done`` →
  ``conversation.item.done`` → ``response.output_item.done`` → ``response.done`` → ``rate_limits.updated`` → on a
  call that played audio ``output_audio_buffer.stopped``, once that audio has gone out over RTP (as the real API:
  ``response.done`` comes when the answer is generated, ``stopped`` when it has played — seconds later);
* a function call: … ``response.function_call_arguments.delta`` → ``.done`` → ``conversation.item.done`` →
  ``response.output_item.done`` → ``response.done`` → ``rate_limits.updated``.

A cancelled response (``response.cancel``, or a VAD interruption through :meth:`ActiveResponse.cancel`) ends with
``response.done`` ``cancelled``, its ``status_details.reason``, and the output produced so far (items
``incomplete``); on a call whose audio had started, ``output_audio_buffer.cleared`` follows.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import trio

from ..protocol._audio import tone
from ..protocol._g711 import G711_FORMATS, PCM_FORMAT, format_geometry, pcm16_to_g711
from ._model import AUDIO_CHUNK_MS, ActiveResponse, ModelState
from ._options import ServerOptions
from ._shapes import new_id
from ._validate_requests import input_text, out_of_band

if TYPE_CHECKING:
    from ._calls import Call

__all__ = ["ResponseStreamer", "Send"]

Send = Callable[[dict[str, Any]], Awaitable[object]]

#: The token budget ``rate_limits.updated`` reports (the real API's shape: one ``tokens`` entry).
TOKEN_LIMIT: Final = 15_000_000
PCM = {"type": "audio/pcm", "rate": 24000}
#: Seconds between two looks at a call's outbound audio (one RTP frame).
FRAME_PERIOD: Final = 0.02


@dataclass
class _Output:
    """One output item as it stands: its fixed fields, its content part type (messages only) and the text (or
    arguments) produced so far."""

    fields: dict[str, Any]
    part_type: str | None = None
    text: str = ""
    part_added: bool = False
    done: bool = False
    audio_ms: int = 0

    def part(self) -> dict[str, Any]:
        """The content part as the conversation item shows it (``output_audio``/``output_text``)."""
        if self.part_type == "output_audio":
            return {"type": "output_audio", "transcript": self.text}
        return {"type": "output_text", "text": self.text}

    def item(self, status: str) -> dict[str, Any]:
        """The item with ``status`` and what it holds so far."""
        if self.fields["type"] == "function_call":
            return {**self.fields, "status": status, "arguments": self.text}
        return {**self.fields, "status": status, "content": [self.part()] if self.part_added else []}


@dataclass
class _Progress:
    """What a response produced so far (kept when it is cancelled)."""

    outputs: list[_Output]
    audio_started: bool = False
    #: The call's source had taken ``pushed_bytes`` bytes once this response's audio was queued, and had been
    #: cleared ``clears`` times: the audio has played when the source's ``gone_bytes`` reach the first (unless
    #: cleared meanwhile).
    pushed_bytes: int = 0
    clears: int = 0
    #: When the audio queued up to this response's would have played on the server's clock (trio's).
    play_until: float = 0.0

    def output(self, cancelled: bool) -> list[dict[str, Any]]:
        return [o.item("completed" if o.done else "incomplete" if cancelled else "in_progress") for o in self.outputs]


def _tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


class ResponseStreamer:
    """Streams scripted responses for one conversation through ``send``."""

    def __init__(self, state: ModelState, options: ServerOptions, call: Call | None, send: Send) -> None:
        self._state = state
        self._options = options
        self._call = call
        self._send = send
        self._conversation_id = new_id("conv")
        self._tokens_used = 0
        #: The last response that played audio on the call, and how many times its audio was cut.
        self._last_played: str | None = None
        self._clears = 0

    def clear_playback(self) -> str | None:
        """``output_audio_buffer.clear`` on a call: cut the audio; the id of the response it belonged to (the
        last one that played), None if no response ever played audio."""
        assert self._call is not None
        self._call.source.clear()
        self._clears += 1
        return self._last_played

    # --- the response object ---------------------------------------------------------------------------------

    def _modality(self, request: Mapping[str, Any]) -> str:
        modalities = request.get("output_modalities") or self._state.session.get("output_modalities") or ["audio"]
        return "text" if modalities[0] == "text" else "audio"

    def _output_format_type(self) -> str:
        """The session's output format type (``audio/pcm``, ``audio/pcmu`` or ``audio/pcma``): what the output
        audio deltas of a websocket are encoded in."""
        output = (self._state.session.get("audio") or {}).get("output") or {}
        fmt = output.get("format")
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        return kind if kind in G711_FORMATS else PCM_FORMAT

    def _audio_output(self) -> dict[str, Any]:
        output = (self._state.session.get("audio") or {}).get("output") or {}
        return {"output": {"format": output.get("format") or dict(PCM), "voice": output.get("voice") or "alloy"}}

    def _response_object(
        self, response: ActiveResponse, status: str, output: list[Any], usage: dict[str, Any] | None
    ) -> dict[str, Any]:
        request = response.request
        details = {"type": "cancelled", "reason": response.reason} if status == "cancelled" else None
        return {
            "object": "realtime.response",
            "id": response.response_id,
            "status": status,
            "status_details": details,
            "output": output,
            "conversation_id": None if out_of_band(request) else self._conversation_id,
            "output_modalities": [self._modality(request)],
            "max_output_tokens": request.get("max_output_tokens", self._state.session.get("max_output_tokens", "inf")),
            "audio": self._audio_output(),
            "usage": usage,
            "metadata": request.get("metadata"),
        }

    def _usage(self, progress: _Progress) -> dict[str, Any]:
        """Deterministic token counts: ~4 characters a text token, one audio token per 50 ms of output audio."""
        session = self._state.session
        input_text = str(session.get("instructions") or "") + (self._state.last_user_text or "")
        input_tokens = _tokens(input_text)
        text_out = sum(_tokens(o.text) for o in progress.outputs)
        audio_out = sum(o.audio_ms // 50 for o in progress.outputs)
        zero = {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}
        return {
            "total_tokens": input_tokens + text_out + audio_out,
            "input_tokens": input_tokens,
            "output_tokens": text_out + audio_out,
            "input_token_details": {
                "text_tokens": input_tokens,
                "audio_tokens": 0,
                "image_tokens": 0,
                "cached_tokens": 0,
                "cached_tokens_details": zero,
            },
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
        }

    # --- streaming -------------------------------------------------------------------------------------------

    async def stream(self, response: ActiveResponse) -> None:
        """``response.created`` … ``response.done`` (``cancelled`` if ``response.scope`` is cancelled meanwhile),
        then ``rate_limits.updated`` and, on a call that played audio, the output audio buffer's end: ``cleared``
        at once when cancelled, else ``stopped`` when the audio has played out over RTP (none if it was cut
        meanwhile: the ``cleared`` of the cut says so). Cancelled while waiting for the playback: no ``stopped``."""
        state, send = self._state, self._send
        progress = _Progress([])
        # Announced even when cancelled before it began (a response.cancel right behind the response.create):
        # every response.done follows its response.created.
        created = self._response_object(response, "in_progress", [], None)
        try:
            await send({"type": "response.created", "response": created})
        finally:
            response.announced.set()
        with response.scope:
            if self._options.tool_call is not None and not state.tool_used:
                state.tool_used = True
                await self._tool_response(response, progress)
            else:
                await self._message_response(response, progress)
        cancelled = response.scope.cancelled_caught
        cut = progress.audio_started and progress.clears != self._clears  # output_audio_buffer.clear came first
        if cancelled and self._call is not None:
            self._call.source.clear()
            self._clears += 1
        if state.response is response:
            state.response = None
        usage = self._usage(progress)
        self._tokens_used += usage["total_tokens"]
        status = "cancelled" if cancelled else "completed"
        done = self._response_object(response, status, progress.output(cancelled), usage)
        await send({"type": "response.done", "response": done})
        remaining = max(0, TOKEN_LIMIT - self._tokens_used)
        limits = [{"name": "tokens", "limit": TOKEN_LIMIT, "remaining": remaining, "reset_seconds": 0.002}]
        await send({"type": "rate_limits.updated", "rate_limits": limits})
        if not progress.audio_started or cut:
            return
        if cancelled:
            await send({"type": "output_audio_buffer.cleared", "response_id": response.response_id})
        elif await self._played(progress):
            await send({"type": "output_audio_buffer.stopped", "response_id": response.response_id})

    async def _played(self, progress: _Progress) -> bool:
        """Wait until a response's audio has gone out over RTP (looked at once a frame period: the source is
        drained on aiortc's side); False when it was cut (cleared) first. While the call's media is not flowing
        (not connected yet, failed, or a SIP line) nothing drains the source: the audio then plays into the void on the
        server's clock, done ``progress.play_until``."""
        assert self._call is not None
        call = self._call
        while call.source.gone_bytes < progress.pushed_bytes and progress.clears == self._clears:
            if not call.media_flowing() and trio.current_time() >= progress.play_until:
                break
            await trio.sleep(FRAME_PERIOD)
        return progress.clears == self._clears

    async def _start_item(self, response: ActiveResponse, out: _Output) -> None:
        """``response.output_item.added`` and, unless the response is out of band, ``conversation.item.added``."""
        item = out.item("in_progress")
        added = {"type": "response.output_item.added", "response_id": response.response_id, "output_index": 0}
        await self._send({**added, "item": item})
        if not out_of_band(response.request):
            previous = self._state.follow(out.fields["id"])
            await self._send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})

    async def _finish_item(self, response: ActiveResponse, out: _Output) -> None:
        """``conversation.item.done`` (the API shows ``previous_item_id`` null there; none out of band),
        ``response.output_item.done``."""
        out.done = True
        item = out.item("completed")
        rid = response.response_id
        if not out_of_band(response.request):
            await self._send({"type": "conversation.item.done", "previous_item_id": None, "item": item})
        await self._send({"type": "response.output_item.done", "response_id": rid, "output_index": 0, "item": item})

    async def _pace(self) -> None:
        if self._options.delta_interval:
            await trio.sleep(self._options.delta_interval)

    def _reply_text(self, request: Mapping[str, Any]) -> str:
        """The scripted answer: a tool's output, the configured reply, or an echo of the user's last text (the
        response's own ``input``, when it gives one, is its context instead of the conversation)."""
        state = self._state
        if state.tool_outputs:
            name, output = state.tool_outputs[-1]
            state.tool_outputs.clear()
            return f"The {name} tool returned: {output}"
        if self._options.reply_text is not None:
            return self._options.reply_text
        if "input" in request and request["input"] is not None:
            own = input_text(request)
            return "Hello from the rtengine local server." if own is None else f"You said: {own}"
        if state.last_user_text is not None:
            return f"You said: {state.last_user_text}"
        return "Hello from the rtengine local server."

    async def _message_response(self, response: ActiveResponse, progress: _Progress) -> None:
        send, rid = self._send, response.response_id
        audio = self._modality(response.request) == "audio"
        text = self._reply_text(response.request)
        fields = {"id": new_id("item"), "type": "message", "role": "assistant"}
        out = _Output(fields, "output_audio" if audio else "output_text")
        progress.outputs.append(out)
        await self._start_item(response, out)
        where = {"response_id": rid, "item_id": fields["id"], "output_index": 0, "content_index": 0}
        out.part_added = True
        empty = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        await send({"type": "response.content_part.added", **where, "part": empty})
        words = text.split(" ")
        delta_type = "response.output_audio_transcript.delta" if audio else "response.output_text.delta"
        for index, word in enumerate(words):
            delta = word + (" " if index < len(words) - 1 else "")
            await send({"type": delta_type, **where, "delta": delta})
            out.text += delta
            await self._pace()
        if audio:
            await self._play(response, out, progress, where)
            await send({"type": "response.output_audio.done", **where})
            await send({"type": "response.output_audio_transcript.done", **where, "transcript": text})
            part = {"type": "audio", "transcript": text}
        else:
            await send({"type": "response.output_text.done", **where, "text": text})
            part = {"type": "text", "text": text}
        await send({"type": "response.content_part.done", **where, "part": part})
        await self._finish_item(response, out)

    async def _play(self, response: ActiveResponse, out: _Output, progress: _Progress, where: dict[str, Any]) -> None:
        """The answer's audio: over RTP on a call (``output_audio_buffer.started``), as deltas on a websocket.
        Only an item in the conversation can be truncated later (its audio is remembered)."""
        rid = response.response_id
        iid = out.fields["id"]
        audio_items = {} if out_of_band(response.request) else self._state.audio_items
        if self._call is not None:
            self._call.source.push(tone(440.0, self._options.audio_ms))
            progress.audio_started = True
            source = self._call.source
            progress.pushed_bytes, progress.clears = source.pushed_bytes, self._clears
            progress.play_until = trio.current_time() + source.buffered_ms / 1000
            self._last_played = rid
            out.audio_ms = self._options.audio_ms
            audio_items[iid] = self._options.audio_ms
            await self._send({"type": "output_audio_buffer.started", "response_id": rid})
            return
        fmt = self._output_format_type()
        rate, width = format_geometry(fmt)
        audio = tone(440.0, self._options.audio_ms, rate=rate)
        if fmt in G711_FORMATS:
            audio = pcm16_to_g711(audio, fmt)
        size = rate * AUDIO_CHUNK_MS // 1000 * width
        for start in range(0, len(audio), size):
            chunk = base64.b64encode(audio[start : start + size]).decode("ascii")
            await self._send({"type": "response.output_audio.delta", **where, "delta": chunk})
            out.audio_ms += AUDIO_CHUNK_MS
            audio_items[iid] = out.audio_ms
            await self._pace()

    async def _tool_response(self, response: ActiveResponse, progress: _Progress) -> None:
        send, rid = self._send, response.response_id
        script = self._options.tool_call
        assert script is not None
        call_id = new_id("call")
        fields = {"id": new_id("item"), "type": "function_call", "name": script.name, "call_id": call_id}
        out = _Output(fields)
        progress.outputs.append(out)
        await self._start_item(response, out)
        where = {"response_id": rid, "item_id": fields["id"], "output_index": 0, "call_id": call_id}
        await send({"type": "response.function_call_arguments.delta", **where, "delta": script.arguments})
        out.text = script.arguments
        await self._pace()
        done = {"type": "response.function_call_arguments.done", **where, "name": script.name}
        await send({**done, "arguments": script.arguments})
        self._state.pending_tools[call_id] = script.name
        await self._finish_item(response, out)
