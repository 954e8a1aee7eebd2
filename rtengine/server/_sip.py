"""The simulated phone: incoming SIP calls announced by signed webhooks, and the Calls API that answers them.

With ``ServerOptions(sip_webhook=URL, webhook_secret="whsec_…")`` the server plays both the phone network and the
API's webhook sender. :meth:`SipPhone.place_call` makes a call id, posts a ``realtime.call.incoming`` webhook
(Standard Webhooks signature) to ``sip_webhook`` — retried like the API's when the app answers 5xx or times out —
and rings until the app accepts or rejects it (``ServerOptions.sip.ring_seconds``, then ``no_answer``). A call the
app accepted stays live even when its deliveries then fail (the app crashed after the accept, or a proxy lost the
answer). The start-up calls wait for the app to listen first (``SipScript.app_wait``).

* ``POST /v1/realtime/calls/{call_id}/accept`` (the session as JSON): ``200``, empty body. The call becomes a live
  call of the :class:`~rtengine.server._calls.CallManager` (so sidebands join it by ``call_id``, and ``…/hangup``
  ends it), and the caller plays its part (:class:`~rtengine.server.SipScript`): once a sideband joined, it speaks
  into the server VAD (a response follows), then presses DTMF keys (``input_audio_buffer.dtmf_event_received``), and
  stays on the line until the call ends — or hangs up by itself (``caller_hangup_after``).
* ``…/reject`` (optional ``status_code``, SIP 400..699; default 603 Decline): ``200``; the call ends.
* ``…/refer`` (``target_uri``: ``tel:``/``sip:``/``sips:``): ``200``; the target is recorded and the call ends
  (the caller was transferred: ``REFER <target>``).

Errors, as the API's JSON bodies: an unknown, malformed or ended call id → ``404`` ``call_id_not_found`` (the
API's hang-up answer); accept or reject of a call already accepted → ``400`` ``call_already_accepted``, refer of a
call still ringing → ``400`` ``call_not_accepted`` (rtengine's codes: the API's are not in the recordings); a body
that is not a JSON object, a bad session, status code or target → ``400``.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import trio

from ..adapters._peer import PcmTrack
from ..adapters._webhook_delivery import WebhookSender, open_webhook_sender
from ..adapters._webhook_signing import WebhookSigner
from ..protocol._audio import tone
from ..protocol._calls import validate_call_id
from ..protocol._errors import ConfigError, ConnectFailed, InvalidCallId
from ..protocol._secrets import redact_url
from ..protocol._session import DEFAULT_MODEL
from ..protocol._sip import validate_target_uri
from ..protocol._webhooks import incoming_call_payload
from ._calls import CALL_NOT_FOUND, Call, CallManager, stamp_session
from ._faults import CLOSE_REPLY_TIMEOUT
from ._guard import guarded
from ._http import CALLS_PATH, HttpError, Reply, _session_part
from ._ids import _token, session_id_of_call
from ._ids import call_id as new_call_id
from ._realtime import RealtimeSession
from ._record import CallRecord, ServerRecord
from ._shapes import encode

if TYPE_CHECKING:
    from ..adapters._peer import Peer
    from ..adapters._serving import HttpRequest
    from ._options import Faults, ServerOptions

__all__ = ["SipCall", "SipPhone", "sip_target"]

log = logging.getLogger("rtengine.server")

SipAction = Literal["accept", "reject", "refer"]
SipState = Literal["ringing", "accepted", "rejected", "ended", "no_answer", "webhook_failed"]
_ACTIONS: Final = ("accept", "reject", "refer")
#: 20 ms of PCM16 mono 24 kHz: one frame of the caller's audio.
_FRAME: Final = 960


def sip_target(path: str) -> tuple[str, SipAction] | None:
    """``(raw call id, action)`` of a ``/v1/realtime/calls/{call_id}/{accept|reject|refer}`` path, else None."""
    prefix = CALLS_PATH + "/"
    if not path.startswith(prefix):
        return None
    call_id, _, action = path[len(prefix) :].rpartition("/")
    if call_id and action in _ACTIONS:
        return call_id, cast(SipAction, action)
    return None


class SipLine:
    """The media side of a SIP call: the phone network, simulated — no data channel, nothing to close."""

    closed = False

    def send_data(self, text: str) -> None:
        """A SIP call has no ``oai-events`` data channel: nothing is sent."""

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@dataclass(eq=False)
class SipCall:
    """One simulated incoming call, from the webhook to its end (kept after the end, for tests and the CLI).

    ``deliveries`` holds each webhook attempt's HTTP status (or ``"timeout"``/``"error"``); ``end_reason`` is
    SIP-style: ``603 Decline`` (or the reject's code), ``REFER <target>``, ``BYE (app hung up)``,
    ``BYE (caller hung up)``, ``487 no answer``, ``webhook not delivered``."""

    call_id: str
    webhook_id: str
    sip_headers: list[tuple[str, str]]
    state: SipState = "ringing"
    deliveries: list[int | str] = field(default_factory=list)
    session: dict[str, Any] | None = None
    reject_status: int | None = None
    refer_to: str | None = None
    end_reason: str | None = None
    dtmf_sent: list[str] = field(default_factory=list)
    spoke: bool = False
    decided: trio.Event = field(default_factory=trio.Event)
    ended: trio.Event = field(default_factory=trio.Event)
    call: Call | None = None

    def end(self, state: SipState, reason: str) -> None:
        if self.ended.is_set():
            return
        self.state, self.end_reason = state, reason
        self.decided.set()
        self.ended.set()


class SipPhone:
    """The simulated phone network of one server (see the module docstring). ``calls`` keeps every call placed."""

    def __init__(
        self, record: ServerRecord, options: ServerOptions, faults: Callable[[], Faults], calls: CallManager
    ) -> None:
        self._record = record
        self._options = options
        self._faults = faults
        self._calls = calls
        self._signer = WebhookSigner(options.webhook_secret) if options.webhook_secret else None
        self.calls: dict[str, SipCall] = {}
        self.nursery: trio.Nursery | None = None
        self._http: WebhookSender | None = None
        self._ready = trio.Event()

    def __repr__(self) -> str:
        return f"<SipPhone calls={len(self.calls)}>"

    # --- placing calls ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Own the webhook client; with ``sip_webhook``, wait (``sip.app_wait`` at most) for the app to listen there,
        place ``sip.calls`` calls one after the other; then stay ready for :meth:`place_call`."""
        async with open_webhook_sender() as http:
            self._http = http
            self._ready.set()
            try:
                url, script = self._options.sip_webhook, self._options.sip
                if url and script.calls and not await http.wait_reachable(url, seconds=script.app_wait):
                    log.warning(
                        "SIP webhook %s accepts no connection after %g s; ringing anyway",
                        redact_url(url),
                        script.app_wait,
                    )
                for _ in range(script.calls if url else 0):
                    placed = await self.place_call()
                    await placed.ended.wait()
                    await trio.sleep(self._options.sip.interval)
                await trio.sleep_forever()
            finally:
                self._http = None

    async def place_call(self, webhook_url: str | None = None) -> SipCall:
        """Ring one call: deliver its webhook to ``webhook_url`` (default: ``sip_webhook``), then wait for the
        app's decision (or ``ring_seconds``). Returns the call, decided (follow it with ``call.ended``)."""
        url = webhook_url or self._options.sip_webhook
        if self._signer is None or url is None:
            raise ConfigError("the local server needs webhook_secret (and sip_webhook or a webhook_url) to ring")
        await self._ready.wait()
        script = self._options.sip
        call_id = new_call_id()
        headers = [
            ("From", script.from_uri),
            ("To", script.to_uri),
            ("Call-ID", f"{_token(24)}@pstn.example"),
            ("X-Rtengine-Simulated", "true"),
        ]
        sip = SipCall(call_id, f"wh_{_token(32)}", headers)
        self.calls[call_id] = sip
        log.info("incoming SIP call call_id=%s webhook=%s", call_id, redact_url(url))
        if not await self._deliver(sip, url) and not sip.decided.is_set():  # an app that accepted keeps its call
            sip.end("webhook_failed", "webhook not delivered")
            return sip
        with trio.move_on_after(script.ring_seconds):
            await sip.decided.wait()
        if not sip.decided.is_set():
            sip.end("no_answer", "487 no answer")
        return sip

    async def _deliver(self, sip: SipCall, url: str) -> bool:
        """Post the webhook until a 2xx (True); 5xx and timeouts are retried with backoff, a 4xx is final."""
        assert self._signer is not None
        assert self._http is not None
        script = self._options.sip
        body = json.dumps(
            incoming_call_payload(f"evt_{_token(24)}", sip.call_id, sip.sip_headers, int(time.time()))
        ).encode()
        delay = script.webhook_backoff
        for attempt in range(script.webhook_retries + 1):
            if attempt:
                await trio.sleep(delay)
                delay *= 2
            headers = self._signer.headers(sip.webhook_id, int(time.time()), body)
            try:
                status = await self._http.deliver(url, headers, body, seconds=script.webhook_timeout)
            except ConnectFailed as exc:
                sip.deliveries.append("timeout" if "timed out" in str(exc) else "error")
                log.warning("SIP webhook delivery failed call_id=%s: %s", sip.call_id, exc)
                continue
            sip.deliveries.append(status)
            self._record.changed()
            if 200 <= status <= 299:
                return True
            if status < 500:
                return False
        return False

    # --- the Calls API ---------------------------------------------------------------------------------------

    async def control(self, action: SipAction, raw_call_id: str, request: HttpRequest) -> Reply:
        """Answer ``POST …/{call_id}/{accept|reject|refer}`` (see the module docstring)."""
        try:
            sip = self.calls.get(validate_call_id(raw_call_id))
        except InvalidCallId:
            sip = None
        try:
            if sip is None or sip.state not in ("ringing", "accepted"):
                raise HttpError(404, CALL_NOT_FOUND, "call_id_not_found", param="")
            body = _json_object(request.body)
            if action == "accept":
                self._accept(sip, body, request)
            elif action == "reject":
                self._reject(sip, body)
            else:
                await self._refer(sip, body)
        except HttpError as exc:
            return exc.reply()
        self._record.changed()
        return 200, [], b""

    def _accept(self, sip: SipCall, body: dict[str, Any], request: HttpRequest) -> None:
        if sip.state != "ringing":
            raise HttpError(400, "This call has already been accepted.", "call_already_accepted")
        session = _session_part(json.dumps(body))
        if session.get("type", "realtime") != "realtime":
            raise HttpError(400, "Only 'realtime' sessions can accept a call.", "invalid_value", "type")
        model = session.get("model") if isinstance(session.get("model"), str) else DEFAULT_MODEL
        path = f"{CALLS_PATH}/{sip.call_id}/accept"
        record = CallRecord(path, "", dict(request.headers), request.headers.get("content-type", ""))
        record.session, record.status, record.call_id = session, 200, sip.call_id
        call = Call(sip.call_id, cast("Peer", SipLine()), PcmTrack(), str(model), session, record)
        call.conversation = RealtimeSession(
            self._record, self._options, model=call.model, call=call, faults_getter=self._faults
        )
        stamp_session(call.conversation, session_id_of_call(sip.call_id), self._options.session_max_seconds)
        self._calls.calls[sip.call_id] = call
        sip.state, sip.session, sip.call = "accepted", session, call
        sip.decided.set()
        assert self.nursery is not None
        ended = functools.partial(self._calls.end, sip.call_id, "server_error")
        self.nursery.start_soon(
            functools.partial(guarded, f"SIP call {sip.call_id}", self._run, sip, call, on_bug=ended)
        )

    def _reject(self, sip: SipCall, body: dict[str, Any]) -> None:
        if sip.state != "ringing":
            raise HttpError(400, "This call has already been accepted.", "call_already_accepted")
        status = body.get("status_code", 603)
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 699:
            raise HttpError(400, "status_code must be a SIP error code (400-699).", "invalid_value", "status_code")
        sip.reject_status = status
        sip.end("rejected", f"{status} {'Decline' if status == 603 else 'rejected'}")

    async def _refer(self, sip: SipCall, body: dict[str, Any]) -> None:
        if sip.state != "accepted":
            raise HttpError(400, "This call has not been accepted.", "call_not_accepted")
        target = body.get("target_uri")
        try:
            validate_target_uri(target if isinstance(target, str) else "")
        except ConfigError as exc:
            raise HttpError(
                400, "target_uri must be a tel:, sip: or sips: URI.", "invalid_value", "target_uri"
            ) from exc
        sip.refer_to = str(target)
        sip.end("ended", f"REFER {target}")
        await self._calls.end(sip.call_id, "referred")

    # --- a live call -----------------------------------------------------------------------------------------

    async def _run(self, sip: SipCall, call: Call) -> None:
        """The accepted call, until it ends (hang-up, refer, the caller, the session cap): its conversation, and the
        caller's part."""
        expired = False
        try:
            with call.scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(call.conversation.run)
                    nursery.start_soon(self._caller, sip, call)
                    with trio.move_on_at(call.created + self._options.session_max_seconds):
                        await trio.sleep_forever()
                    # The session cap: every sideband gets 1001 "Your session hit the maximum duration …" first.
                    await call.conversation.views.expire(self._options.session_cap_message, CLOSE_REPLY_TIMEOUT)
                    expired = True
                    nursery.cancel_scope.cancel()
            if expired:
                await self._calls.end(sip.call_id, "session_expired")
        finally:
            reasons = {"hangup": "BYE (app hung up)", "caller_hangup": "BYE (caller hung up)"}
            sip.end("ended", reasons.get(call.record.end or "", f"BYE ({call.record.end})"))

    async def _caller(self, sip: SipCall, call: Call) -> None:
        """Speak once a sideband has joined, press the DTMF keys, and maybe hang up (:class:`SipScript`)."""
        script = self._options.sip
        async with trio.open_nursery() as nursery:
            if script.caller_hangup_after is not None:
                nursery.start_soon(self._hang_up_later, sip, script.caller_hangup_after)
            with trio.move_on_after(script.join_wait):
                while not call.conversation.links:  # noqa: ASYNC110 - a view attaching sets no event
                    await trio.sleep(0.01)
            if script.speech_ms:
                for pcm in _frames(tone(330.0, script.speech_ms) + bytes(2 * 24 * 1000)):
                    call.conversation.hear(pcm)
                sip.spoke = True
            await trio.sleep(script.dtmf_delay)
            for key in script.dtmf:
                # The API's DTMF event has no event_id (openai's InputAudioBufferDtmfEventReceivedEvent has none).
                event = {"type": "input_audio_buffer.dtmf_event_received", "event": key, "received_at": 0}
                event["received_at"] = int(time.time())
                await call.conversation.views.broadcast(encode(event), event)
                sip.dtmf_sent.append(key)
                await trio.sleep(script.dtmf_interval)

    async def _hang_up_later(self, sip: SipCall, seconds: float) -> None:
        await trio.sleep(seconds)
        log.info("the SIP caller hangs up call_id=%s", sip.call_id)
        await self._calls.end(sip.call_id, "caller_hangup")


def _frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + _FRAME] for i in range(0, len(pcm), _FRAME)]


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise HttpError(400, "The request body is not valid JSON.", "invalid_json") from exc
    if not isinstance(value, dict):
        raise HttpError(400, "The request body must be a JSON object.", "invalid_json")
    return value
