"""``rtengine web``: server-side controls for a browser's WebRTC call, as a small trio web app.

The browser is the media peer (microphone, speaker); the app creates the call with its own API key (which never
reaches the browser), returns the SDP answer at once, and keeps the conversation — sideband, events, text, hang-up —
in its own nursery. Routes:

* ``GET /`` — the page (plain HTML and JS, no build step);
* ``POST /api/calls`` (``application/sdp``) — start a conversation for the offer → ``{"id", "call_id", "answer"}``;
* ``websocket /api/calls/{id}/events`` — the conversation as JSON: ``phase`` (timeline), ``transcript_delta``,
  ``transcript_done``, ``user_text``, ``error``, ``closed``; replayed from the start for a late subscriber. When the
  last subscriber disconnects (the browser went away), the conversation is closed;
* ``POST /api/calls/{id}/text`` (``{"text": …}``) — ``send_text`` + ``request_response``;
* ``POST /api/calls/{id}/hangup`` — close the conversation; ``GET /api/calls/{id}`` — its state.

Bad input (not SDP, an oversized body, an unknown id, bad JSON) gets a 4xx JSON error; the app never crashes. It is
served by the same h11/wsproto stack as the local realtime server.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final

import trio

from .. import CallError, ConfigError, InvalidSdp, RealtimeClient, RealtimeError, SessionConfig, TransportError
from .. import events as ev
from ..adapters import HttpRequest, Limits, WebSocket, WsClosed, collapse_single_group, serve_connection
from ..engine import Conversation, start_conversation

__all__ = ["WebApp", "open_web_app"]

log = logging.getLogger("rtengine.apps.web")

MAX_BODY: Final = 64 * 1024
#: A conversation whose page never subscribes to its events within this time is closed.
SUBSCRIBE_TIMEOUT: Final = 30.0
JSON: Final = [("content-type", "application/json")]


def _error_json(message: str, code: str) -> bytes:
    return json.dumps({"error": {"message": message, "code": code}}).encode()


def _error(status: int, message: str, code: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, JSON, _error_json(message, code)


def _ok(payload: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    return 200, JSON, json.dumps(payload).encode()


@dataclass(eq=False)
class AppCall:
    """One browser's conversation, as the app keeps it."""

    id: str
    conv: Conversation
    history: list[dict[str, Any]] = field(default_factory=list)
    subscribers: set[trio.MemorySendChannel[dict[str, Any]]] = field(default_factory=set)
    subscribed: trio.Event = field(default_factory=trio.Event)
    ended: trio.Event = field(default_factory=trio.Event)
    closed: ev.Closed | None = None
    phases_sent: set[str] = field(default_factory=set)

    def publish(self, message: dict[str, Any]) -> None:
        self.history.append(message)
        for channel in list(self.subscribers):
            try:
                channel.send_nowait(message)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self.subscribers.discard(channel)  # a subscriber that cannot keep up is dropped

    def publish_phases(self) -> None:
        for phase, seconds in self.conv.timeline.items():
            if phase not in self.phases_sent:
                self.phases_sent.add(phase)
                self.publish({"type": "phase", "phase": phase, "ms": round(seconds * 1000, 1)})


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


class WebApp:
    """The running app: one conversation per browser, all in the app's nursery. See :func:`open_web_app`."""

    def __init__(self, client: RealtimeClient, session: SessionConfig, nursery: trio.Nursery) -> None:
        self.client = client
        self.session = session
        self._nursery = nursery
        self.calls: dict[str, AppCall] = {}
        self._page = resources.files("rtengine.apps.web").joinpath("index.html").read_bytes()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    # --- conversations ---------------------------------------------------------------------------------------

    async def _start(self, offer_sdp: str) -> AppCall:
        conv = await start_conversation(self.client, self.session, self._nursery, offer_sdp)
        call = AppCall(secrets.token_urlsafe(12), conv)
        self.calls[call.id] = call
        self._nursery.start_soon(self._follow, call)
        return call

    async def _follow(self, call: AppCall) -> None:
        """Forward the conversation's events to the page; close it when the page never subscribes."""
        call.publish_phases()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._abandon_unwatched, call)
            async for event in call.conv.events:
                call.publish_phases()
                message = _message(event)
                if message is not None:
                    call.publish(message)
                if isinstance(event, ev.Closed):
                    call.closed = event
            nursery.cancel_scope.cancel()
        call.publish_phases()
        call.ended.set()
        for channel in list(call.subscribers):
            channel.close()

    async def _abandon_unwatched(self, call: AppCall) -> None:
        with trio.move_on_after(SUBSCRIBE_TIMEOUT):
            await call.subscribed.wait()
            return
        log.info("closing conversation %s: its page never subscribed", call.id)
        await call.conv.close()

    async def aclose_calls(self) -> None:
        for call in list(self.calls.values()):
            await call.conv.close()

    # --- HTTP ------------------------------------------------------------------------------------------------

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Serve one TCP connection. Never raises."""
        await serve_connection(
            stream, route=self._route, websocket=self._events_socket, limits=Limits(MAX_BODY), error_body=_error_json
        )

    async def _route(self, request: HttpRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        path = request.path.rstrip("/") or "/"
        if path in ("/", "/index.html") and request.method == "GET":
            return 200, [("content-type", "text/html; charset=utf-8"), ("cache-control", "no-store")], self._page
        if path == "/api/calls" and request.method == "POST":
            return await self._create(request)
        parts = path.split("/")
        if len(parts) >= 4 and parts[:3] == ["", "api", "calls"]:
            call = self.calls.get(parts[3])
            if call is None:
                return _error(404, "unknown conversation id", "not_found")
            action = parts[4] if len(parts) == 5 else None
            if action is None and request.method == "GET":
                return _ok(self._state(call))
            if action == "text" and request.method == "POST":
                return await self._text(call, request)
            if action == "hangup" and request.method == "POST":
                await call.conv.close()
                with trio.move_on_after(2.0):
                    await call.ended.wait()  # the follower has seen Closed: the state below is final
                return _ok(self._state(call))
        return _error(404, f"no route for {request.method} {request.path[:200]}", "not_found")

    def _state(self, call: AppCall) -> dict[str, Any]:
        return {
            "id": call.id,
            "call_id": call.conv.call_id,
            "active": call.conv.active,
            "closed": call.closed.reason if call.closed else None,
            "timeline_ms": {k: round(v * 1000, 1) for k, v in call.conv.timeline.items()},
        }

    async def _create(self, request: HttpRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        try:
            offer = request.body.decode("utf-8")
        except UnicodeDecodeError:
            return _error(400, "the offer is not UTF-8 text", "invalid_offer")
        try:
            call = await self._start(offer)
        except (InvalidSdp, ConfigError) as exc:
            return _error(400, f"not a usable SDP offer: {exc}", "invalid_offer")
        except (CallError, TransportError) as exc:
            return _error(502, f"the realtime provider refused the call: {exc}", "provider_error")
        return _ok({"id": call.id, "call_id": call.conv.call_id, "answer": call.conv.answer_sdp})

    async def _text(self, call: AppCall, request: HttpRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        try:
            payload = json.loads(request.body)
        except ValueError:
            return _error(400, "the body is not JSON", "bad_json")
        text = payload.get("text") if isinstance(payload, dict) else None
        if not isinstance(text, str) or not text.strip() or len(text) > 4000:
            return _error(400, 'expected {"text": "…"} with 1-4000 characters', "bad_text")
        try:
            await call.conv.send_text(text)
            await call.conv.request_response()
        except RealtimeError as exc:
            return _error(409, f"the conversation is not running: {exc}", "not_running")
        call.publish({"type": "user_text", "text": text})
        return _ok({"queued": True})

    # --- the events websocket --------------------------------------------------------------------------------

    async def _events_socket(self, stream: trio.abc.Stream, request: HttpRequest) -> None:
        ws = WebSocket(stream, request, 64 * 1024)
        parts = request.path.rstrip("/").split("/")
        call = self.calls.get(parts[3]) if len(parts) == 5 and parts[4] == "events" else None
        if call is None:
            await ws.reject(
                404, json.dumps({"error": {"message": "unknown conversation", "code": "not_found"}}).encode()
            )
            return
        await ws.accept()
        send, receive = trio.open_memory_channel[dict[str, Any]](1000)
        for message in call.history:
            send.send_nowait(message)
        if call.ended.is_set():
            send.close()
        else:
            call.subscribers.add(send)
        call.subscribed.set()
        async with trio.open_nursery() as nursery:

            async def watch_client() -> None:
                while not isinstance(await ws.receive(), WsClosed):
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_client)
            async for message in receive:
                await ws.send_text(json.dumps(message))
            await ws.send_close(1000, "conversation ended")
            nursery.cancel_scope.cancel()
        call.subscribers.discard(send)
        if not call.subscribers and not call.ended.is_set():
            log.info("closing conversation %s: its page went away", call.id)
            await call.conv.close()


@asynccontextmanager
async def open_web_app(
    client: RealtimeClient, session: SessionConfig, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[WebApp]:
    """Serve the app for the duration of the block. Leaving it closes every conversation and connection."""
    with collapse_single_group():
        async with trio.open_nursery() as nursery:
            app = WebApp(client, session, nursery)
            listeners = await trio.open_tcp_listeners(port, host=host)
            app.port = listeners[0].socket.getsockname()[1]
            nursery.start_soon(trio.serve_listeners, app.handle, listeners)
            try:
                yield app
            finally:
                with trio.CancelScope(shield=True):
                    await app.aclose_calls()
                nursery.cancel_scope.cancel()
