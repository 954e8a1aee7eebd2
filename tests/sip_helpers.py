"""A webhook endpoint for SIP tests: answers each delivery as scripted and keeps what it verified."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from rtengine import webhooks
from rtengine.adapters import HttpRequest, Limits, serve_connection

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

    async def route(self, request: HttpRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        self.deliveries.append(request)
        answer = self.answers.pop(0) if self.answers else 200
        if answer == "hang":
            await trio.sleep_forever()
        assert isinstance(answer, int)
        if answer == 200:
            self.calls.append(webhooks.verify(request.headers, request.body, SECRET))
        return answer, [], b""

    async def handle(self, stream: trio.abc.Stream) -> None:
        async def no_ws(s: trio.abc.Stream, r: HttpRequest) -> None:
            await s.aclose()

        await serve_connection(stream, route=self.route, websocket=no_ws, limits=Limits(65536), error_body=_body)


def _body(message: str, code: str) -> bytes:
    return json.dumps({"error": {"message": message, "code": code}}).encode()


@asynccontextmanager
async def receiving(*answers: int | str) -> AsyncIterator[Receiver]:
    receiver = Receiver(list(answers))
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        receiver.port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(trio.serve_listeners, receiver.handle, listeners)
        yield receiver
        nursery.cancel_scope.cancel()


async def wait_for_call(receiver: Receiver) -> str:
    """The call id of the first verified delivery, once there is one."""
    while not receiver.calls:  # noqa: ASYNC110 - the receiver sets no event
        await trio.sleep(0.01)
    return receiver.calls[0].call_id
