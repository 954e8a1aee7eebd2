"""A webhook endpoint for SIP tests (answers each delivery as scripted and keeps what it verified), and a call the
local server's simulated phone placed to it."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio
from engine_helpers import client_for, serving
from loopback import Reply, serving_routes

import rtengine
from rtengine import webhooks
from rtengine.adapters import HttpRequest
from rtengine.adapters._peer import PeerService
from rtengine.server import LocalServer, SipScript

SECRET = "whsec_" + base64.b64encode(b"local-server-sip-test-secret-32b").decode()


@dataclass(eq=False)
class Receiver:
    """A webhook endpoint that answers each delivery from ``answers`` (an HTTP status, or ``"hang"``: no answer)
    and keeps every delivery and the calls it verified."""

    answers: list[int | str] = field(default_factory=list)
    deliveries: list[HttpRequest] = field(default_factory=list)
    calls: list[webhooks.IncomingCall] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def route(self, request: HttpRequest) -> Reply:
        self.deliveries.append(request)
        answer = self.answers.pop(0) if self.answers else 200
        if answer == "hang":
            await trio.sleep_forever()
        assert isinstance(answer, int)
        if answer == 200:
            self.calls.append(webhooks.verify(request.headers, request.body, SECRET))
        return answer, [], b""


@asynccontextmanager
async def receiving(*answers: int | str) -> AsyncIterator[Receiver]:
    receiver = Receiver(list(answers))
    async with serving_routes(receiver.route) as port:
        receiver.port = port
        yield receiver


async def wait_for_call(receiver: Receiver) -> str:
    """The call id of the first verified delivery, once there is one."""
    while not receiver.calls:  # noqa: ASYNC110 - the receiver sets no event
        await trio.sleep(0.01)
    return receiver.calls[0].call_id


@dataclass
class Placed:
    """A SIP call the simulated phone placed, its webhook verified, not answered yet."""

    server: LocalServer
    client: rtengine.RealtimeClient
    hook: Receiver
    call_id: str


@asynccontextmanager
async def placed_call(
    peers: PeerService, sip: SipScript, *, within: float = 15, **options: object
) -> AsyncIterator[Placed]:
    """The local server (keyed, signing its webhooks with ``SECRET``, ``sip`` as its phone, and ``options``), a client
    for it and a receiver; the phone rings the receiver and the block runs once the receiver verified the call's
    webhook, still under ``trio.fail_after(within)``, which bounds the ringing and the block (not the setup or the
    teardown). Leaving the block (also on cancellation or an error) stops the phone, the receiver and the server."""
    async with (
        serving(peers, webhook_secret=SECRET, sip=sip, **options) as server,
        client_for(server) as client,
        receiving() as hook,
        trio.open_nursery() as nursery,
    ):
        with trio.fail_after(within):
            nursery.start_soon(server.sip.place_call, hook.url)
            call_id = await wait_for_call(hook)
            yield Placed(server, client, hook, call_id)
