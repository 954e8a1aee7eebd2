"""The engine fault matrix's harness: one case = one conversation against a faulty server, over loopback.

A :class:`Case` names the server (the local server with :class:`~rtengine.server.Faults`, or a hostile HTTP
server answering call creation with ``raw`` bytes), the transport, what the caller's block does, and the documented
outcome: the exception the block raises (a start that fails raises inline, an ``RealtimeError`` subclass) or how
the conversation ends (the ``Closed`` reason and the ``Error`` code before it). :func:`run_case` runs it and returns
an :class:`Outcome` with everything the test asserts: what escaped, the events, the elapsed time, the engine tasks
left, and the connections the servers still hold open.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio
from engine_helpers import API_KEY, engine_tasks

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import Closed, ConversationEvent, Error, ResponseDone, SessionUpdated, SidebandRestored
from rtengine.protocol._lifecycle import ConversationStats
from rtengine.server import Faults, LocalServer, ServerOptions, open_local_server

SESSION = rtengine.SessionConfig(instructions="Be brief.")

#: What the caller's block does with the conversation; every event it reads goes into the list.
Body = Callable[[rtengine.Conversation, list[ConversationEvent]], Awaitable[None]]


class BodyFailed(Exception):
    """What the caller's block raises in the "a body that raises" cases."""


async def talk(conv: rtengine.Conversation, seen: list[ConversationEvent]) -> None:
    """A good turn: a text and a response, read to ``response.done``; then the block ends (``close()``)."""
    await _until(conv, SessionUpdated, seen)
    await conv.send_text("hello")
    await conv.request_response()
    await _until(conv, ResponseDone, seen)


async def read_all(conv: rtengine.Conversation, seen: list[ConversationEvent]) -> None:
    """Read until the events end (the server's fault ends the conversation)."""
    async for event in conv.events:
        seen.append(event)


async def rejoin_then_talk(conv: rtengine.Conversation, seen: list[ConversationEvent]) -> None:
    """The sideband is lost once and joined again: ``SidebandRestored``, then a good turn."""
    await _until(conv, SidebandRestored, seen)
    await conv.send_text("hello again")
    await conv.request_response()
    await _until(conv, ResponseDone, seen)


async def raise_in_body(conv: rtengine.Conversation, seen: list[ConversationEvent]) -> None:
    await _until(conv, SessionUpdated, seen)
    raise BodyFailed("the caller's code failed")


async def never_read(conv: rtengine.Conversation, seen: list[ConversationEvent]) -> None:
    """An absent consumer: ask for responses and never read an event; the block then ends."""
    for _ in range(5):
        await conv.request_response()
    await trio.sleep(1.0)


async def slow_reader(conv: rtengine.Conversation, seen: list[ConversationEvent]) -> None:
    """A slow consumer: a response read one event per 20 ms."""
    await conv.request_response()
    async for event in conv.events:
        seen.append(event)
        await trio.sleep(0.02)
        if isinstance(event, ResponseDone):
            return


def cancel_after(seconds: float) -> Body:
    async def body(conv: rtengine.Conversation, seen: list[ConversationEvent]) -> None:
        await trio.sleep(seconds)
        raise _CancelNow

    return body


class _CancelNow(Exception):
    """Turned into an outer cancellation by :func:`run_case` (the owner's scope is cancelled)."""


async def _until(conv: rtengine.Conversation, kind: type, seen: list[ConversationEvent]) -> None:
    async for event in conv.events:
        seen.append(event)
        if isinstance(event, kind):
            return
    raise AssertionError(f"events ended before {kind.__name__}")


@dataclass(frozen=True)
class Case:
    """One cell of the matrix (see the module docstring)."""

    id: str
    transport: str = "websocket"
    faults: Faults = field(default_factory=Faults)
    #: A hostile server's whole answer to ``POST /realtime/calls`` (``{port}`` is replaced), instead of the local
    #: server; ``drip`` sends it a byte at a time, ``drip`` seconds apart.
    raw: bytes | None = None
    drip: float = 0.0
    body: Body = talk
    client: dict[str, Any] = field(default_factory=dict)
    #: The documented outcome: the exception type escaping the block, or None with ``closed``/``error_code``.
    raises: type[BaseException] | None = None
    closed: str | None = "requested"
    error_code: str | None = None
    #: Seconds the whole case may take (the conversation, its end, the servers settling).
    bound: float = 10.0
    server: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    escaped: BaseException | None
    events: list[ConversationEvent]
    elapsed: float
    tasks: list[str]
    open_connections: int
    stats: ConversationStats | None

    @property
    def ends(self) -> list[ConversationEvent]:
        return [e for e in self.events if isinstance(e, Error | Closed)]


def sole(exc: BaseException | None) -> BaseException | None:
    """The one exception inside (possibly nested) groups, else ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@contextlib.asynccontextmanager
async def hostile_server(answer: bytes, drip: float) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP server answering every request with ``answer`` (after reading its head and body); yields its base
    URL and a one-item list holding how many of its connections are open."""
    open_now = [0]

    async def handle(stream: trio.SocketStream) -> None:
        open_now[0] += 1
        try:
            data = b""
            with trio.move_on_after(5):
                while b"\r\n\r\n" not in data:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.lower().split(b"\r\n")
                        if line.startswith(b"content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    body += chunk
            port = stream.socket.getsockname()[1]
            reply = answer.replace(b"{port}", str(port).encode())
            if drip:
                for index in range(len(reply)):
                    await stream.send_all(reply[index : index + 1])
                    await trio.sleep(drip)
            else:
                await stream.send_all(reply)
            with trio.move_on_after(5):
                while await stream.receive_some(65536):
                    pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            open_now[0] -= 1
            await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}/v1", open_now
        finally:
            nursery.cancel_scope.cancel()


async def _converse(case: Case, base_url: str, offer: str | None) -> tuple[BaseException | None, list[Any], Any]:
    settings: dict[str, Any] = {"backoff_base": 0.01, "connect_timeout": 3.0, "close_timeout": 1.0}
    settings.update(case.client)
    events: list[ConversationEvent] = []
    escaped: BaseException | None = None
    stats = None
    async with rtengine.RealtimeClient(base_url, api_key=API_KEY, **settings) as client:
        conv: rtengine.Conversation | None = None
        with trio.CancelScope() as owner:
            try:
                async with rtengine.open_conversation(client, SESSION, offer_sdp=offer) as conv:
                    try:
                        await case.body(conv, events)
                    except _CancelNow:
                        owner.cancel()
                        await trio.sleep_forever()
            except BaseException as exc:  # everything that escapes is the case's outcome
                if owner.cancel_called:
                    raise  # the outer cancellation unwinding: the owner's scope absorbs it
                escaped = exc
        if conv is not None:
            while True:
                try:
                    events.append(conv.events.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
            stats = conv.stats
    return escaped, events, stats


async def run_case(case: Case, peers: PeerService, offer: str) -> Outcome:
    """Run ``case`` under its bound (``trio.fail_after``); see :class:`Outcome`."""
    start = trio.current_time()
    sdp = offer if case.transport == "webrtc" else None
    with trio.fail_after(case.bound):
        if case.raw is not None:
            async with hostile_server(case.raw, case.drip) as (base_url, open_now):
                escaped, events, stats = await _converse(case, base_url, sdp)
                tasks = engine_tasks()
                elapsed = trio.current_time() - start
                await _settle(lambda: open_now[0] == 0)
                left = open_now[0]
        else:
            options: dict[str, Any] = {"api_key": API_KEY, "delta_interval": 0.0, "faults": case.faults}
            options.update(case.server)
            async with open_local_server(ServerOptions(**options), peers=peers) as server:
                escaped, events, stats = await _converse(case, server.base_url, sdp)
                tasks = engine_tasks()
                elapsed = trio.current_time() - start
                await _settle(lambda: _idle(server))
                left = server.connections
    return Outcome(escaped, events, elapsed, tasks, left, stats)


def _idle(server: LocalServer) -> bool:
    return server.connections == 0


async def _settle(done: Callable[[], bool]) -> None:
    """Poll (up to about 5 s) until the servers saw every connection end."""
    for _ in range(500):
        if done():
            return
        await trio.sleep(0.01)
