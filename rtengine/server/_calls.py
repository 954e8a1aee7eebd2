"""Call management: creating WebRTC calls, running their media and data channel, ending them.

``POST /v1/realtime/calls`` answers the offer with a real aiortc peer (:class:`CallManager.create`); the call then
lives in the server's nursery (:meth:`CallManager._run_call`) with its one conversation. Like the API's, a call
ends only when

* it is hung up (:meth:`CallManager.hang_up`, ``POST /v1/realtime/calls/{call_id}/hangup``);
* its media peer goes away: the peer connection fails or closes once connected (``media_closed``), fails before
  connecting (``media_failed``), or has not connected ``ServerOptions.call_connect_seconds`` after the call's
  creation (``media_timeout``), so calls that nobody ever connects cannot pile up;
* nobody uses it: no sideband joined it and its data channel carried no client event
  ``ServerOptions.unused_call_seconds`` after its creation (``unused``), as the API expires unused calls;
* the session cap is reached (``ServerOptions.session_max_seconds`` after its creation): every sideband is closed
  with ``1001`` "Your session hit the maximum duration of 60 minutes." first (``session_expired``);
* the server stops (:meth:`CallManager.end`).

A sideband leaving does not end the call: another sideband may join the same ``call_id`` later. An ended call is
forgotten: its id answers 404 from then on.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from ..adapters._peer import PcmTrack, Peer, PeerService
from ..adapters._serving import HttpRequest
from ..protocol._audio import tone
from ..protocol._calls import check_sdp, validate_call_id
from ..protocol._errors import InvalidCallId, InvalidSdp
from ..protocol._session import DEFAULT_MODEL
from ._faults import CLOSE_REPLY_TIMEOUT
from ._guard import guarded
from ._http import CALLS_PATH, HttpError, Reply, parse_call_body
from ._ids import call_id as new_call_id
from ._ids import session_id_of_call
from ._options import Faults, ServerOptions
from ._realtime import RealtimeSession
from ._record import CallRecord, ServerRecord
from ._shapes import encode, error_event, new_id
from ._validate import ClientFrame

__all__ = ["Call", "CallManager", "stamp_session"]

log = logging.getLogger("rtengine.server")

#: Received call audio kept in the record for assertions (10 s of PCM16 mono 24 kHz).
MAX_RECORDED_AUDIO: Final = 10 * 24000 * 2
#: What the API answers to a hang-up of a call it does not know (recorded from api.openai.com; see
#: tests/server/test_server_hangup.py for the source).
#: The CLOSE code each sideband gets when its call ends (hang-up, shutdown): a normal closure. The code the API
#: sends is not in the recordings; 1000 lets websocket clients (the openai SDK's ``async for``) end cleanly.
CALL_ENDED_CODE: Final = 1000
CALL_NOT_FOUND: Final = "No session found for the provided call_id"


@dataclass(eq=False)
class Call:
    """A WebRTC call the server created: its answering peer (with its outbound ``source`` track), its one
    ``conversation`` (shared by the call's data channel and every sideband that joins), its record, and ``scope``,
    which holds the call's media and conversation tasks."""

    call_id: str
    peer: Peer
    source: PcmTrack
    model: str
    session: dict[str, Any] | None
    record: CallRecord
    conversation: RealtimeSession = field(init=False)
    ended: bool = False
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    #: When the call was created (trio's clock): the session cap counts from here.
    created: float = field(default_factory=trio.current_time)
    #: Set when a sideband joins or the data channel carries a client event: the call no longer expires as unused.
    used: trio.Event = field(default_factory=trio.Event)

    def media_flowing(self) -> bool:
        """Whether a connected peer drains the call's outbound RTP now (not yet, or no longer, or a SIP line, whose
        phone network is not simulated: the audio then plays on the server's clock)."""
        peer = self.peer
        return isinstance(peer, Peer) and peer.connected.is_set() and not peer.failed.is_set()


def stamp_session(conversation: RealtimeSession, session_id: str, max_seconds: float) -> None:
    """Give a new conversation's session its id and the ``expires_at`` of the session cap (the API's shapes)."""
    session = dict(conversation.session)
    session["id"] = session_id
    if "expires_at" in session and max_seconds < float("inf"):
        session["expires_at"] = int(time.time() + max_seconds)
    conversation.state.session = session


class CallManager:
    """The live calls of one server, by id. ``nursery`` (set while the server runs) hosts each call's tasks."""

    def __init__(
        self, record: ServerRecord, options: ServerOptions, faults: Callable[[], Faults], peers: PeerService
    ) -> None:
        self._record = record
        self._options = options
        self._faults = faults
        self._peers = peers
        self.calls: dict[str, Call] = {}
        self.nursery: trio.Nursery | None = None

    # --- creating --------------------------------------------------------------------------------------------

    async def create(self, request: HttpRequest, *, authorized: bool) -> Reply:
        """Answer ``POST /v1/realtime/calls``: ``201`` with the SDP answer and ``Location``, or a JSON error."""
        record = CallRecord(request.path, request.query, dict(request.headers), request.headers.get("content-type", ""))
        self._record.calls.append(record)
        try:
            if not authorized:
                raise HttpError(401, "Incorrect API key provided.", "invalid_api_key")
            sdp, session, record.part_names, record.part_types = parse_call_body(request)
            record.sdp, record.session = sdp, session
            if len(self.calls) >= self._options.max_calls:  # each call holds a peer: a flood must not exhaust fds
                raise HttpError(503, "rtengine local server: too many open calls; retry later.", "server_busy")
            peer, source = await self._answer(sdp)
        except HttpError as exc:
            record.status, record.error = exc.status, str(exc)
            self._record.changed()
            status, headers, body = exc.reply()
            if exc.code == "injected" and self._faults().retry_after is not None:
                headers.append(("retry-after", f"{self._faults().retry_after:g}"))
            elif exc.code == "server_busy":
                headers.append(("retry-after", "1"))
            return status, headers, body
        call_id = new_call_id()
        model = session.get("model") if session and isinstance(session.get("model"), str) else DEFAULT_MODEL
        call = Call(call_id, peer, source, str(model), session, record)
        call.conversation = RealtimeSession(
            self._record, self._options, model=call.model, call=call, faults_getter=self._faults
        )
        stamp_session(call.conversation, session_id_of_call(call_id), self._options.session_max_seconds)
        self.calls[call_id] = call
        if self._faults().media_unreachable:
            await peer.aclose()  # the answer stands, but nobody will ever answer ICE checks
        assert self.nursery is not None
        ended = functools.partial(self.end, call_id, "server_error")
        self.nursery.start_soon(functools.partial(guarded, f"call {call_id}", self._run_call, call, on_bug=ended))
        record.status, record.call_id = 201, call_id
        self._record.changed()
        headers = [("content-type", "application/sdp"), ("location", f"{CALLS_PATH}/{call_id}")]
        return 201, headers, peer.local_sdp.encode("utf-8")

    async def _answer(self, sdp: str) -> tuple[Peer, PcmTrack]:
        """Check the offer, apply the call faults, and answer with a new peer (and its outbound track)."""
        try:
            check_sdp(sdp, what="The SDP offer")
        except InvalidSdp as exc:
            raise HttpError(400, str(exc), "invalid_offer") from exc
        faults = self._faults()
        if faults.call_delay:
            await trio.sleep(faults.call_delay)
        if faults.call_status is not None:
            raise HttpError(faults.call_status, "Injected failure (rtengine local server).", "injected")
        source = PcmTrack()
        try:
            peer = await self._peers.answer(sdp, source=source)
        except InvalidSdp as exc:
            raise HttpError(400, f"The SDP offer was rejected: {exc}", "invalid_offer") from exc
        return peer, source

    # --- ending ----------------------------------------------------------------------------------------------

    async def end(self, call_id: str, reason: str = "server_shutdown") -> bool:
        """End a call: cancel its sidebands and close its peer. False if the call is unknown or already ended."""
        call = self.calls.pop(call_id, None)
        if call is None:
            return False
        call.ended = True
        call.record.end = reason
        log.info("call ended call_id=%s reason=%s", call_id, reason)
        try:  # each sideband learns the end from a CLOSE frame, not a dropped connection
            await call.conversation.views.close_all(CALL_ENDED_CODE, "call ended", "call_ended", CLOSE_REPLY_TIMEOUT)
        finally:
            call.scope.cancel()
            call.conversation.drop_all("call_ended")
        await call.peer.aclose()
        self._record.changed()
        return True

    async def hang_up(self, raw_call_id: str) -> Reply:
        """Answer ``POST /v1/realtime/calls/{call_id}/hangup`` like the API: ``200`` with an empty body for a live
        call (which ends), else ``404`` ``call_id_not_found`` — an unknown id, an ended call, or an id that is not
        a call id at all (it is validated before any lookup)."""
        try:
            call_id = validate_call_id(raw_call_id)
        except InvalidCallId:
            call_id = None
        if call_id is not None and await self.end(call_id, "hangup"):
            self._record.hangups.append(call_id)
            self._record.changed()
            return 200, [], b""
        self._record.refused_hangups.append(raw_call_id[:200])
        self._record.changed()
        # The API's body, param and all (it sends "param": "" here, not null).
        return HttpError(404, CALL_NOT_FOUND, "call_id_not_found", param="").reply()

    async def end_all(self) -> None:
        for call_id in list(self.calls):
            await self.end(call_id)

    # --- a live call -----------------------------------------------------------------------------------------

    async def _run_call(self, call: Call) -> None:
        """The call, in the server's nursery until it ends: its conversation (served on the data channel and on
        every sideband that joins), the received audio (recorded, echoed back with ``echo``, heard by server
        VAD), a greeting tone once
        the peer connection is up, and the watch on its lifetime (media peer, session cap), which ends it."""
        record = call.record

        def received(pcm: bytes) -> None:
            record.audio_frames_in += 1
            if len(record.audio_in) < MAX_RECORDED_AUDIO:
                record.audio_in += pcm
            if self._options.echo:
                call.source.push(pcm)
            call.conversation.hear(pcm)  # server VAD runs on the call's audio

        reason: str | None = None
        with call.scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(call.conversation.run)
                nursery.start_soon(call.peer.receive_audio, received)
                nursery.start_soon(self._serve_data_channel, call)
                nursery.start_soon(self._greet_when_connected, call)
                reason = await self._lifetime(call)
                nursery.cancel_scope.cancel()
        if reason is not None:
            await self.end(call.call_id, reason)

    async def _greet_when_connected(self, call: Call) -> None:
        await call.peer.connected.wait()
        call.record.connected = True
        self._record.changed()
        if self._options.greeting_ms:
            call.source.push(tone(660.0, self._options.greeting_ms))

    async def _lifetime(self, call: Call) -> str:
        """Wait until the call ends by itself and say why: its media peer went away, or the session cap (then
        its sidebands are closed with ``1001`` first)."""
        with trio.move_on_at(call.created + self._options.session_max_seconds):
            return await _first_reason(
                [functools.partial(self._media_gone, call), functools.partial(self._unused, call)]
            )
        await call.conversation.views.expire(self._options.session_cap_message, CLOSE_REPLY_TIMEOUT)
        return "session_expired"

    async def _media_gone(self, call: Call) -> str:
        """Return once the call's media peer is gone: ``media_timeout`` (not connected within
        ``call_connect_seconds`` of the call's creation), ``media_failed`` (failed before connecting),
        ``media_closed`` (failed or closed once connected)."""
        peer = call.peer
        # A peer the server dropped on purpose (``media_unreachable``) plays a caller whose ICE never completes:
        # only the deadline ends that call.
        watched = [peer.connected] if peer.closed else [peer.connected, peer.failed]
        with trio.move_on_at(call.created + self._options.call_connect_seconds):
            await _first_set(watched)
        if not peer.connected.is_set():
            return "media_failed" if peer.failed.is_set() and not peer.closed else "media_timeout"
        await peer.failed.wait()
        return "media_closed"

    async def _unused(self, call: Call) -> str:
        """Return ``unused`` if nobody used the call within ``unused_call_seconds`` of its creation; else never."""
        limit = self._options.unused_call_seconds
        with trio.move_on_at(call.created + (limit if limit is not None else float("inf"))):
            await call.used.wait()
        if call.used.is_set():
            await trio.sleep_forever()
        return "unused"

    async def _serve_data_channel(self, call: Call) -> None:
        """The call's ``oai-events`` data channel is a view of its conversation, like a sideband: it gets
        ``session.created`` when it opens, then every server event; its client events go into the conversation.
        A binary message, or one after the conversation ended, gets an ``error`` event: never dropped silently. A
        burst waits for the conversation's inbox (backpressure), and is handled in order."""
        await call.peer.channel_open.wait()
        call.conversation.greet_data_channel()
        async for message in call.peer.messages:
            frame = message if isinstance(message, bytes) else ClientFrame.decode(message)  # parsed once
            self._record.data_frame_in(call.record, frame)
            call.used.set()
            if isinstance(frame, bytes):
                reply = error_event("Binary messages are not supported; send JSON text.", code="invalid_json")
            elif await call.conversation.deliver(frame):
                continue
            else:
                reply = error_event("rtengine local server: this call has ended.", code="call_ended")
            call.record.data_frames_refused += 1
            self._record.changed()
            sent = {**reply, "event_id": new_id("event")}
            call.peer.send_data(encode(sent))
            call.record.data_frames_out.append(sent)


async def _first_reason(waits: list[Callable[[], Awaitable[str]]]) -> str:
    """Run ``waits`` together; the first one to return gives the reason, the others are cancelled."""
    reasons: list[str] = []
    async with trio.open_nursery() as nursery:

        async def watch(wait: Callable[[], Awaitable[str]]) -> None:
            reasons.append(await wait())
            nursery.cancel_scope.cancel()

        for wait in waits:
            nursery.start_soon(watch, wait)
    return reasons[0]


async def _first_set(events: list[trio.Event]) -> None:
    """Return once any of ``events`` is set."""
    async with trio.open_nursery() as nursery:

        async def wait(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        for event in events:
            nursery.start_soon(wait, event)
