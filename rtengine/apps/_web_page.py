"""One page's session: its websocket is the only handle on its conversation.

The page opens ``/api/session`` and talks JSON over it. Page → app: ``{"type": "offer", "sdp"}`` (start the call),
``{"type": "text", "text"}`` (``send_text`` + ``request_response``), ``{"type": "hangup"}``. App → page:
``hello`` (which worker holds the session), ``answer`` (``sdp``, ``call_id``), ``phase`` (timeline),
``transcript_delta``, ``transcript_done``, ``user_text``, ``tool_call``, ``error`` (``code``, ``message``),
``closed`` (``reason``), then the app closes the websocket. There is no conversation id a third party could learn:
only the websocket that created a conversation can steer it, and when that websocket goes away the conversation is
closed. Whichever worker process accepts the websocket holds the conversation, so several workers need no shared
state.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Final

import trio
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from .. import CallError, ConfigError, InvalidSdp, RealtimeClient, RealtimeError, SessionConfig, TransportError
from .. import events as ev
from ..engine import Conversation, start_conversation

__all__ = ["PageSession"]

log = logging.getLogger("rtengine.apps.web")

MAX_TEXT: Final = 4000
#: A session that sends no offer within this time is closed (it would hold one of the capped slots).
OFFER_TIMEOUT: Final = 30.0
#: How long shutting a page down waits for its conversation's ``closed`` to reach the page.
STOP_WAIT: Final = 5.0


def _message(event: object) -> dict[str, Any] | None:
    match event:
        case ev.OutputTranscriptDelta(delta=delta):
            return {"type": "transcript_delta", "delta": delta}
        case ev.OutputTranscriptDone(transcript=transcript):
            return {"type": "transcript_done", "transcript": transcript}
        case ev.Error(message=message, code=code, fatal=fatal):
            return {"type": "error", "message": message, "code": code, "fatal": fatal}
        case ev.Closed(reason=reason, code=code):
            return {"type": "closed", "reason": reason, "code": code}
        case ev.ToolCall(call_id=call_id, name=name):
            return {"type": "tool_call", "call_id": call_id, "name": name}
        case _:
            return None


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "fatal": False}


class PageSession:
    """The conversation of one page's websocket. :meth:`run` serves it; the conversation's own tasks live in
    ``nursery`` (the app's lifespan nursery). Cancelling :meth:`run` closes the conversation (shielded, bounded by
    the client's close timeout) before it returns."""

    def __init__(
        self,
        ws: WebSocket,
        client: RealtimeClient,
        session: SessionConfig,
        nursery: trio.Nursery,
        *,
        offer_timeout: float = OFFER_TIMEOUT,
    ) -> None:
        self.ws = ws
        self.offer_timeout = offer_timeout
        self.client = client
        self.session = session
        self._nursery = nursery
        self.conv: Conversation | None = None
        self.closed: ev.Closed | None = None
        self.ended = trio.Event()
        self._send_lock = trio.Lock()
        self._phases_sent: set[str] = set()
        self._scope = trio.CancelScope()
        self._close_code = 1000

    async def run(self) -> None:
        """Accept the websocket and serve the page until its conversation ends or the page goes away."""
        await self.ws.accept()
        try:
            with self._scope:
                await self._send({"type": "hello", "worker": os.getpid()})
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._receive_loop, nursery)
                    nursery.start_soon(self._expect_offer, nursery)
        except* WebSocketDisconnect:
            pass  # the page went away while we were talking to it
        finally:
            with trio.CancelScope(shield=True):
                if self.conv is not None and self.closed is None:
                    await self._close_unfollowed(self.conv)
                self.ended.set()
                if self.ws.application_state == WebSocketState.CONNECTED:
                    with trio.move_on_after(1.0):
                        await self.ws.close(self._close_code)

    async def _close_unfollowed(self, conv: Conversation) -> None:
        """Close a conversation whose page went away and read its ``Closed`` (bounded)."""
        if conv.active:
            log.info("closing conversation %s: its page went away", conv.call_id)
            await conv.close()
        with trio.move_on_after(STOP_WAIT):
            async for event in conv.events:
                if isinstance(event, ev.Closed):
                    self.closed = event

    async def stop(self) -> None:
        """End the session because the app is shutting down: the page gets ``closed`` and a 1001 close."""
        self._close_code = 1001
        if self.conv is not None:
            await self.conv.close()
            with trio.move_on_after(STOP_WAIT):
                await self.ended.wait()
        self._scope.cancel()

    async def _expect_offer(self, nursery: trio.Nursery) -> None:
        await trio.sleep(self.offer_timeout)
        if self.conv is None:
            await self._send(_error("no_offer", f"no offer within {self.offer_timeout:g} s: the session is closed"))
            self._close_code = 1008
            nursery.cancel_scope.cancel()

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.ws.send_text(json.dumps(message))

    async def _receive_loop(self, nursery: trio.Nursery) -> None:
        while True:
            received = await self.ws.receive()
            if received["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(received.get("code", 1000), received.get("reason"))
            message = _decode(received.get("text"))
            if message is _NOT_JSON:
                await self._send(_error("bad_json", "the message is not JSON text"))
                continue
            if not isinstance(message, dict):
                message = {}
            kind = message.get("type")
            if kind == "offer":
                await self._offer(message.get("sdp"), nursery)
            elif kind == "text":
                await self._text(message.get("text"))
            elif kind == "hangup":
                if self.conv is None:
                    nursery.cancel_scope.cancel()
                    return
                await self.conv.close()
            else:
                await self._send(_error("unknown_message", 'expected a message of type "offer", "text" or "hangup"'))

    async def _offer(self, sdp: object, nursery: trio.Nursery) -> None:
        if self.conv is not None:
            await self._send(_error("already_started", "this session already holds its call"))
            return
        if not isinstance(sdp, str):
            await self._send(_error("invalid_offer", 'expected {"type": "offer", "sdp": "v=0…"}'))
            return
        try:
            self.conv = await start_conversation(self.client, self.session, self._nursery, sdp)
        except (InvalidSdp, ConfigError) as exc:
            await self._send(_error("invalid_offer", f"not a usable SDP offer: {exc}"))
            return
        except (CallError, TransportError) as exc:
            await self._send(_error("provider_error", f"the realtime provider refused the call: {exc}"))
            return
        answer = {"type": "answer", "sdp": self.conv.answer_sdp, "call_id": self.conv.call_id, "worker": os.getpid()}
        await self._send(answer)
        nursery.start_soon(self._follow, self.conv, nursery)

    async def _text(self, text: object) -> None:
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            expected = f'expected {{"type": "text", "text": "…"}} with 1-{MAX_TEXT} characters'
            await self._send(_error("bad_text", expected))
            return
        if self.conv is None:
            await self._send(_error("not_running", "no call yet: send the offer first"))
            return
        try:
            await self.conv.send_text(text)
            await self.conv.request_response()
        except ConfigError as exc:  # text the wire cannot carry (a lone surrogate): the page's, the call goes on
            await self._send(_error("bad_text", str(exc)))
            return
        except RealtimeError as exc:
            await self._send(_error("not_running", f"the conversation is not running: {exc}"))
            return
        await self._send({"type": "user_text", "text": text})

    async def _follow(self, conv: Conversation, nursery: trio.Nursery) -> None:
        """Forward the conversation's events to the page; once it ended, end the session."""
        await self._phases(conv)
        async for event in conv.events:
            if isinstance(event, ev.Closed):
                self.closed = event  # before sending: the page may be gone already
            await self._phases(conv)
            message = _message(event)
            if message is not None:
                await self._send(message)
        await self._phases(conv)
        self.ended.set()
        nursery.cancel_scope.cancel()

    async def _phases(self, conv: Conversation) -> None:
        for phase, seconds in conv.timeline.items():
            if phase not in self._phases_sent:
                self._phases_sent.add(phase)
                await self._send({"type": "phase", "phase": phase, "ms": round(seconds * 1000, 1)})


#: What :func:`_decode` returns for a message that is not JSON text.
_NOT_JSON: Final = object()


def _decode(text: object) -> object:
    """The one place page messages are decoded: the JSON value of a text message, or :data:`_NOT_JSON` for a binary
    message (no text), text that is not JSON, or JSON nested too deeply for the decoder (``RecursionError``)."""
    if not isinstance(text, str):
        return _NOT_JSON
    try:
        return json.loads(text)
    except (ValueError, RecursionError, TypeError):
        return _NOT_JSON
