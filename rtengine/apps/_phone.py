"""``rtengine phone``: a phone agent — a small trio web app that answers incoming SIP calls.

It receives the API's ``realtime.call.incoming`` webhook (``POST /webhooks/openai``), verifies it
(a :class:`rtengine.webhooks.Verifier`, with its own replay store), answers ``200`` at once and, in its nursery, accepts
the call inline with a session (``open_conversation(..., accept_call_id=…)``), answers the caller (server VAD
turns), transfers the call (``conv.refer``) when the caller presses ``transfer_key``, and records a timeline:
``webhook_received``, ``accepted``, ``sideband_joined`` (``Started``), ``session_updated``, ``first_response``,
``dtmf <key>``, ``refer <target>`` / ``closed <reason>``. A delivery that fails verification gets a 400 and is
never acted on; a retried delivery (a ``webhook-id`` already verified: the API retries when an answer was slow or
lost) is acknowledged with ``200`` and skipped, as Standard Webhooks receivers do; an accept that fails is logged
(the API rings out).

``rtengine phone`` runs it against the embedded local server, whose simulated phone places a call to it, and
prints the timeline (see :func:`run_phone_demo`).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final

import trio

from .. import Conversation, RealtimeClient, RealtimeError, SessionConfig, open_conversation, webhooks
from .. import events as ev
from ..adapters import HttpRequest, Limits, serve_connection
from ..server import ServerOptions, SipScript, open_local_server

__all__ = ["PHONE_INSTRUCTIONS", "WEBHOOK_PATH", "AnsweredCall", "PhoneApp", "open_phone_app", "run_phone_demo"]

log = logging.getLogger("rtengine.apps.phone")

WEBHOOK_PATH: Final = "/webhooks/openai"
PHONE_INSTRUCTIONS: Final = "You answer the phone for a small shop. Be brief. Press 5 to reach a person."
_JSON: Final = [("content-type", "application/json")]
Reply = tuple[int, list[tuple[str, str]], bytes]


def _error(message: str, code: str) -> bytes:
    return json.dumps({"error": {"message": message, "code": code}}).encode()


@dataclass(eq=False)
class AnsweredCall:
    """One call the app took: its id, the caller (``From``), and its timeline (phase, seconds since the webhook)."""

    call_id: str
    caller: str | None
    received_at: float
    timeline: list[tuple[str, float]] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)
    done: trio.Event = field(default_factory=trio.Event)

    def mark(self, phase: str) -> None:
        self.timeline.append((phase, trio.current_time() - self.received_at))

    def phases(self) -> list[str]:
        return [phase for phase, _ in self.timeline]


class PhoneApp:
    """The webhook endpoint and the conversations of the calls it accepted (each in the app's nursery)."""

    def __init__(
        self,
        client: RealtimeClient,
        secret: str,
        nursery: trio.Nursery,
        *,
        session: SessionConfig | None = None,
        transfer_key: str = "5",
        transfer_to: str = "tel:+14155550123",
        on_phase: Callable[[AnsweredCall, str], None] | None = None,
    ) -> None:
        self._client = client
        self._verifier = webhooks.Verifier(secret)  # a bad secret fails here, before any call
        self._nursery = nursery
        self.session = session or SessionConfig(instructions=PHONE_INSTRUCTIONS)
        self.transfer_key = transfer_key
        self.transfer_to = transfer_to
        self.calls: list[AnsweredCall] = []
        self.refused: list[str] = []
        self.duplicates: list[str] = []
        self._on_phase = on_phase
        self.port = 0

    def __repr__(self) -> str:
        return f"<PhoneApp port={self.port} calls={len(self.calls)}>"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    async def handle(self, stream: trio.abc.Stream) -> None:
        limits = Limits(64 * 1024)
        await serve_connection(stream, route=self._route, websocket=_no_websocket, limits=limits, error_body=_error)

    async def _route(self, request: HttpRequest) -> Reply:
        received = trio.current_time()
        if request.path.rstrip("/") != WEBHOOK_PATH:
            return 404, _JSON, _error("not found", "not_found")
        if request.method != "POST":
            return 405, [*_JSON, ("allow", "POST")], _error("use POST", "method_not_allowed")
        try:
            incoming = self._verifier.verify(request.headers, request.body)
        except webhooks.WebhookReplayError as exc:  # verified before: acknowledge it (2xx), act on it once only
            self.duplicates.append(exc.webhook_id)
            log.info("webhook %s: a retry of a delivery already handled; acknowledged", exc.webhook_id)
            return 200, _JSON, b"{}"
        except webhooks.WebhookError as exc:
            self.refused.append(type(exc).__name__)
            log.warning("webhook refused: %s", exc)
            return 400, _JSON, _error(str(exc), "invalid_webhook")
        call = AnsweredCall(incoming.call_id, incoming.header("From"), received)
        self.calls.append(call)
        self._phase(call, "webhook_received")
        self._nursery.start_soon(self._answer, call)
        return 200, _JSON, b"{}"

    def _joined(self, call: AnsweredCall, conv: Conversation) -> None:
        """``sideband_joined``, at the time the conversation's own timeline saw the join (it ran in the background)."""
        timeline, accepted = conv.timeline, dict(call.timeline).get("accepted")
        if accepted is None or "sideband_joined" not in timeline or "answer" not in timeline:
            return
        call.timeline.append(("sideband_joined", accepted + timeline["sideband_joined"] - timeline["answer"]))
        if self._on_phase is not None:
            self._on_phase(call, "sideband_joined")

    def _phase(self, call: AnsweredCall, phase: str) -> None:
        call.mark(phase)
        log.info("call %s: %s", call.call_id, phase)
        if self._on_phase is not None:
            self._on_phase(call, phase)

    async def _answer(self, call: AnsweredCall) -> None:
        try:
            async with open_conversation(self._client, self.session, accept_call_id=call.call_id) as conv:
                self._phase(call, "accepted")
                await self._converse(call, conv)
        except RealtimeError as exc:
            self._phase(call, f"failed {type(exc).__name__}")
            log.warning("call %s could not be answered: %s", call.call_id, exc)
        finally:
            call.done.set()

    async def _converse(self, call: AnsweredCall, conv: Conversation) -> None:
        async for event in conv.events:
            match event:
                case ev.Started():
                    self._phase(call, "started")
                case ev.SessionUpdated() if "session_updated" not in call.phases():
                    self._joined(call, conv)
                    self._phase(call, "session_updated")
                case ev.OutputTranscriptDone(transcript=text):
                    call.transcript.append(text)
                case ev.ResponseDone() if "first_response" not in call.phases():
                    self._phase(call, "first_response")
                case ev.DtmfReceived(key=key):
                    self._phase(call, f"dtmf {key}")
                    if key == self.transfer_key:
                        await conv.refer(self.transfer_to)
                        self._phase(call, f"refer {self.transfer_to}")
                case ev.Closed(reason=reason):
                    self._phase(call, f"closed {reason}")


async def _no_websocket(stream: trio.abc.Stream, request: HttpRequest) -> None:
    await stream.aclose()


@asynccontextmanager
async def open_phone_app(client: RealtimeClient, secret: str, **options: object) -> AsyncIterator[PhoneApp]:
    """Serve a :class:`PhoneApp` on a free loopback port for the duration of the block (``app.webhook_url``)."""
    async with trio.open_nursery() as nursery:
        app = PhoneApp(client, secret, nursery, **options)  # type: ignore[arg-type]
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        app.port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(trio.serve_listeners, app.handle, listeners)
        try:
            yield app
        finally:
            nursery.cancel_scope.cancel()


async def run_phone_demo(*, seconds: float = 30.0, out: Callable[[str], None] = print) -> AnsweredCall | None:
    """``rtengine phone``: the embedded local server rings a :class:`PhoneApp` once (a simulated caller who speaks,
    then presses 5 and #); the app answers, transfers on 5, and each phase is printed as it happens. Returns the
    call (``None`` when it never reached the app). Bounded by ``seconds``."""
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    key = "sk-local-phone"

    def printed(call: AnsweredCall, phase: str) -> None:
        out(f"{call.timeline[-1][1] * 1000:8.1f} ms  {phase}")

    options = ServerOptions(api_key=key, webhook_secret=secret, sip=SipScript(calls=0, dtmf_delay=0.5))
    with trio.move_on_after(seconds):
        async with (
            open_local_server(options) as server,
            RealtimeClient(server.base_url, api_key=key) as client,
            open_phone_app(client, secret, on_phase=printed) as app,
        ):
            out(f"local server {server.base_url}; phone app {app.webhook_url}")
            placed = await server.sip.place_call(app.webhook_url)
            await placed.ended.wait()
            if app.calls:
                await app.calls[0].done.wait()
            out(f"call {placed.call_id} ended: {placed.end_reason}")
            return app.calls[0] if app.calls else None
    out(f"rtengine phone: gave up after {seconds:g} s")
    return None
