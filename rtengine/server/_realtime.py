"""One realtime conversation as the local server plays it (GA event shapes).

A :class:`RealtimeSession` is one conversation. A plain websocket has its own; a WebRTC call has one for its
lifetime, seen through several views (:mod:`~rtengine.server._views`). It answers each client event the way the
API does — state changes go to every view, an ``error`` back to the view that caused it — keeps its state in
the simulated model (:mod:`~rtengine.server._model`), streams scripted responses from a child task (so readers
keep reading and a second ``response.create`` meets the API's active-response error), and lets
:mod:`~rtengine.server._faults` play the configured faults. Client events are parsed with rtengine's own sans-IO
parser, so the server and the engine agree on shapes by construction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import trio

from ..adapters._serving import WebSocket
from ..protocol._buffer_events import InputAudioClear, InputAudioCommit, ItemDelete, ItemRetrieve
from ..protocol._events import ProtocolWarning
from ..protocol._payloads import (
    FunctionCallOutput,
    InputAudioAppend,
    ItemCreate,
    ItemTruncate,
    OutputAudioBufferClear,
    ResponseCancel,
    ResponseCreate,
    SessionUpdate,
    UnknownClientEvent,
    UserText,
    parse_client_message,
)
from ._event_fields import event_error
from ._faults import ConversationFaults
from ._guard import split_bug
from ._item_store import ConversationItems
from ._items import request_error
from ._model import ActiveResponse, ModelState
from ._options import Faults, ServerOptions
from ._record import ConnectionRecord, ServerRecord
from ._responses import ResponseStreamer
from ._sessions import apply_session_update
from ._shapes import ERROR_MESSAGES, SUPPORTED_CLIENT_EVENTS, default_session, error_event, merge, new_id
from ._turns import Turns
from ._vad import InputFormat
from ._validate import ClientFrame, check_session
from ._validate_requests import check_response, check_session_type
from ._views import ConversationViews, Link
from ._voice import voice_change_problem

if TYPE_CHECKING:
    from ._calls import Call

__all__ = ["RealtimeSession"]

log = logging.getLogger("rtengine.server")

#: Data-channel client events waiting to be handled (beyond this the data channel's reader waits).
INBOX_SIZE: Final = 64
#: Frames of a call's received audio waiting for the VAD (~10 s of 20 ms frames; beyond this they are dropped,
#: counted and logged: a server that far behind has bigger problems than one lost frame).
CALL_AUDIO_FRAMES: Final = 500
#: The format of a call's received audio (the peer decodes RTP to PCM16 mono 24 kHz): the VAD's own rate.
CALL_AUDIO: Final = InputFormat()


class RealtimeSession:
    """One conversation as the realtime API plays it.

    A plain websocket has a conversation of its own (:meth:`serve_alone`). A WebRTC call has one conversation for
    its lifetime (:meth:`run`, in the call's scope): its ``oai-events`` data channel (:meth:`deliver`) and every
    sideband websocket that joins (:meth:`serve`) are views of it (``views``).
    """

    def __init__(
        self,
        server_record: ServerRecord,
        options: ServerOptions,
        *,
        model: str,
        call: Call | None,
        faults_getter: Callable[[], Faults],
    ) -> None:
        self.call = call
        session = default_session(model)
        if call is not None and call.session:
            session = merge(session, {k: v for k, v in call.session.items() if k != "model"})
        self.state = ModelState(session)
        self.faults = ConversationFaults(server_record, faults_getter)
        self.views = ConversationViews(server_record, self.faults, call)
        self._responses = ResponseStreamer(self.state, options, call, self._send)
        self.items = ConversationItems(self.state, self._send, self.views.reply)
        self.turns = Turns(
            self.state, self.items, self._send, self.views.reply, self._start_response, lambda: self._nursery
        )
        self._nursery: trio.Nursery | None = None
        self._running = trio.Event()
        self.ended = False
        # Client events from the call's data channel, handled like frames from a websocket.
        self._inbox_tx, self._inbox_rx = trio.open_memory_channel[ClientFrame](INBOX_SIZE)
        # A call's received audio, for server VAD (the API runs VAD on a call's audio as on appended audio).
        self._audio_tx, self._audio_rx = trio.open_memory_channel[bytes](CALL_AUDIO_FRAMES)
        self.audio_dropped = 0

    @property
    def session(self) -> dict[str, Any]:
        """The session as ``session.updated`` last showed it."""
        return self.state.session

    @property
    def links(self) -> list[Link]:
        """The websockets attached now."""
        return self.views.links

    # --- running ---------------------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host the conversation's tasks (streamed responses, data-channel client events) until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._serve_inbox)
                if self.call is not None:
                    nursery.start_soon(self._serve_call_audio)
                self._running.set()
                task_status.started()
                await trio.sleep_forever()
        finally:
            self.ended = True
            self._nursery = None
            self._inbox_tx.close()
            self._audio_tx.close()
            self._running.set()  # a view still waiting to attach sees the end
            self.drop_all("call_ended")

    async def serve_alone(self, ws: WebSocket, record: ConnectionRecord) -> None:
        """A plain websocket's conversation: it lives exactly as long as the connection."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.run)
            await self.serve(ws, record)
            nursery.cancel_scope.cancel()

    async def serve(self, ws: WebSocket, record: ConnectionRecord) -> None:
        """Attach one accepted websocket (a direct one gets ``session.created`` first, a sideband nothing) until
        the client ends it, a fault ends it or :meth:`drop_all` cancels it."""
        link = self.views.attach(ws, record)
        try:
            with link.scope:
                await self._running.wait()
                if self.ended:
                    record.end = record.end or "call_ended"
                    return
                await self.views.greet(link, self.session)
                await self.views.read(link, self._handle)
        finally:
            self.views.detach(link)

    def drop_all(self, end: str) -> None:
        """Cancel every attached websocket, recording ``end`` for those that had not ended."""
        self.views.drop_all(end)

    def greet_data_channel(self) -> None:
        """``session.created`` on the call's data channel, once it opens."""
        self.views.greet_data_channel(self.session)

    async def deliver(self, frame: ClientFrame) -> bool:
        """Queue a client event that arrived on the call's data channel; it is handled like a websocket frame.
        Waits while the inbox is full (backpressure: a burst is handled in order, nothing refused); False when the
        conversation has ended (nothing was queued)."""
        try:
            await self._inbox_tx.send(frame)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True

    def hear(self, pcm: bytes) -> None:
        """A frame of the call's received audio (PCM16 mono 24 kHz, decoded from RTP): queued for server VAD,
        like ``input_audio_buffer.append`` on a websocket. Never blocks (the peer's receive loop calls it)."""
        try:
            self._audio_tx.send_nowait(pcm)
        except trio.WouldBlock:
            self.audio_dropped += 1
            if self.audio_dropped == 1 or self.audio_dropped % 100 == 0:
                log.warning("call audio dropped before the VAD: %d frames so far", self.audio_dropped)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the conversation has ended: nobody listens any more

    async def _serve_call_audio(self) -> None:
        async for pcm in self._audio_rx:
            await self.turns.append(pcm, CALL_AUDIO)

    async def _serve_inbox(self) -> None:
        async for frame in self._inbox_rx:
            await self._handle(frame, None)

    # --- client events ---------------------------------------------------------------------------------------

    async def _handle(self, frame: ClientFrame, origin: Link | None) -> None:
        """One client event from ``origin`` (a websocket, or None for the call's data channel). State changes go
        to every view; an ``error`` goes back to ``origin`` only, as a reply to the event that caused it. A bug
        while handling it is logged once and answered with a ``server_error`` to ``origin``; nothing else ends."""
        try:
            await self._dispatch(frame, origin)
        except BaseException as exc:
            passing, bug = split_bug(exc)
            if bug is None:
                raise
            log.exception("bug in the local server while handling a client event", exc_info=bug)
            if passing is not None:
                raise passing from None
            code = "server_error"
            await self.views.reply(origin, error_event(ERROR_MESSAGES[code], code=code, type="server_error"))

    async def _dispatch(self, frame: ClientFrame, origin: Link | None) -> None:
        """Answer one client event; the frame was parsed once on arrival and everything here works on its value."""
        reply, state = self.views.reply, self.state
        if frame.problem is not None:
            await reply(origin, error_event(f"Invalid client event: {frame.problem}"[:300], code="invalid_event"))
            return
        message = frame.value
        refused = (
            event_error(message) or request_error(message) or self.items.placement_error(message)
            if isinstance(message, dict)
            else None
        )
        if refused is not None:  # an event or item the API refuses is answered, never acted on or echoed
            await reply(origin, refused)
            return
        match parse_client_message(message):
            case ProtocolWarning(detail=detail):
                eid = message.get("event_id") if isinstance(message, dict) else None
                eid = eid if isinstance(eid, str) else None
                error = error_event(f"Invalid client event: {detail}", code="invalid_event", event_id=eid)
                await reply(origin, error)
            case SessionUpdate(session=session, event_id=eid):
                await self._session_update(session, eid, origin)
            case InputAudioAppend(audio=audio):
                await self.turns.append(audio)
            case InputAudioCommit(event_id=eid):
                await self.turns.commit(eid, origin)
            case InputAudioClear():
                await self.turns.clear()
            case ItemDelete(item_id=item_id, event_id=eid):
                await self.items.delete(item_id, eid, origin)
            case ItemRetrieve(item_id=item_id, event_id=eid):
                await self.items.retrieve(item_id, eid, origin)
            case UserText(text=user_text):  # the item as the client sent it (its own id, if any)
                state.last_user_text = user_text
                await self._add_item(dict(message["item"]), message)
            case FunctionCallOutput(call_id=call_id, output=output):
                name = state.pending_tools.pop(call_id, None)
                if name is not None:
                    state.tool_outputs.append((name, output))
                await self._add_item(dict(message["item"]), message)
            case ItemCreate(item=item):
                await self._add_item(dict(item), message)
            case ResponseCreate(event_id=eid):
                await self._response_create(eid, origin, message.get("response"))
            case ResponseCancel(response_id=rid, event_id=eid):
                # "A specific response ID to cancel": another id names no active response (the API's error).
                if state.response is None or rid not in (None, state.response.response_id):
                    code = "response_cancel_not_active"
                    await reply(origin, error_event(ERROR_MESSAGES[code], code=code, event_id=eid))
                else:
                    state.response.cancel("client_cancelled")
            case ItemTruncate() as truncate:
                await self.items.cut(truncate, origin)
            case OutputAudioBufferClear(event_id=eid):
                if self.call is None:
                    message = "output_audio_buffer.clear is only supported for WebRTC calls."
                    await reply(origin, error_event(message, code="invalid_value", param="type", event_id=eid))
                else:
                    await self._clear_output_audio(eid, origin)
            case UnknownClientEvent(type=unknown, raw=raw):
                message = f"Invalid value: '{unknown}'. Supported values are: {SUPPORTED_CLIENT_EVENTS}."
                eid = raw.get("event_id") if isinstance(raw.get("event_id"), str) else None
                await reply(origin, error_event(message, code="invalid_value", param="type", event_id=eid))

    async def _send(self, event: dict[str, Any]) -> None:
        """Send a server event to every view; the item store and the turns follow what the conversation says."""
        self.items.observe(event)
        self.turns.observe(event)
        await self.views.send(event)

    async def _clear_output_audio(self, eid: str | None, origin: Link | None) -> None:
        """``output_audio_buffer.clear`` on a call: ``cleared`` naming the response whose audio was cut."""
        response_id = self._responses.clear_playback()
        if response_id is None:
            message = "rtengine local server: no response has played audio on this call yet."
            await self.views.reply(origin, error_event(message, code="invalid_value", param="type", event_id=eid))
        else:
            await self._send({"type": "output_audio_buffer.cleared", "response_id": response_id})

    async def _session_update(self, session: Any, eid: str | None, origin: Link | None) -> None:
        problem = (
            check_session(session)
            or check_session_type(self.session, session)
            or voice_change_problem(self.session, session, self.state.audio_items)
        )
        if problem is not None:
            error = error_event(problem.message, code=problem.code, param=problem.param, event_id=eid)
            await self.views.reply(origin, error)
            return
        self.state.session = apply_session_update(self.session, dict(session))
        await self._send({"type": "session.updated", "session": self.session})
        await self.faults.inject_once(self.views)

    async def _add_item(self, item: dict[str, Any], message: Mapping[str, Any]) -> None:
        full, previous = self.state.new_item(item, message.get("previous_item_id"))
        await self._send({"type": "conversation.item.added", "previous_item_id": previous, "item": full})
        await self._send({"type": "conversation.item.done", "previous_item_id": previous, "item": full})

    async def _response_create(self, eid: str | None, origin: Link | None, request: Any) -> None:
        """Start the response ``request`` (the ``response`` object, if any) asks for, or answer the API's error
        (an invalid request, or a response already active)."""
        if request is not None and (problem := check_response(request)) is not None:
            error = error_event(problem.message, code=problem.code, param=problem.param, event_id=eid)
            await self.views.reply(origin, error)
            return
        if isinstance(request, dict) and (refused := self.items.input_error(request.get("input"), eid)) is not None:
            await self.views.reply(origin, refused)
            return
        active = self.state.response
        if active is not None:
            message = (
                f"Conversation already has an active response in progress: {active.response_id}. "
                "Wait until the response is finished before creating a new one."
            )
            code = "conversation_already_has_active_response"
            await self.views.reply(origin, error_event(message, code=code, event_id=eid))
            return
        if self._start_response(request) and (started := self.state.response) is not None:
            await started.announced.wait()  # its response.created goes out before the next client event is read

    def _start_response(self, request: Mapping[str, Any] | None = None) -> bool:
        """Start streaming a response (``request``: the ``response.create`` payload, if a client asked), unless one
        is active or the conversation has ended (its views are being dropped); whether it started."""
        if self.state.response is not None or self._nursery is None:
            return False
        response = ActiveResponse(new_id("resp"), trio.CancelScope(), request or {})
        self.state.response = response
        self._nursery.start_soon(self._stream, response)
        return True

    async def _stream(self, response: ActiveResponse) -> None:
        """Stream one response; a bug while streaming it ends only that response (``server_error`` to every view)."""
        try:
            await self._responses.stream(response)
        except BaseException as exc:
            response.announced.set()  # never announced (cancelled or a bug first): the reader waits no longer
            passing, bug = split_bug(exc)
            if bug is None:
                raise
            log.exception("bug in the local server while streaming a response", exc_info=bug)
            if self.state.response is response:
                self.state.response = None
            if passing is not None:
                raise passing from None
            code = "server_error"
            await self.views.send(error_event(ERROR_MESSAGES[code], code=code, type="server_error"))
