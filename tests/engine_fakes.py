"""One-method fakes of the engine's seams, for tests that pin an exact interleaving (no server needed).

Every fake records what the engine did (opens, frames sent, hang-ups) and lets the test hold it at a gate.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from rtengine import ConnectionLost, SessionConfig
from rtengine.protocol import CallAnswer, CallBody, SocketEnd

ANSWER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
OFFER = ANSWER


@dataclass
class FakeSocket:
    """A socket the test drives: ``push(text)`` delivers a server frame, ``end(...)`` ends it."""

    log: list[str] = field(default_factory=list)
    fail_sends: bool = False
    send_gate: trio.Event | None = None
    #: Whether the conversation's end has begun (set by the sockets seam from its own ``closing``).
    closing: Callable[[], bool] = lambda: False
    #: Frames that went out although ``closing()`` was already true.
    sent_late: list[str] = field(default_factory=list)
    _tx: trio.MemorySendChannel[str | bytes | SocketEnd] | None = None
    _rx: trio.MemoryReceiveChannel[str | bytes | SocketEnd] | None = None
    _held: SocketEnd | None = None

    def __post_init__(self) -> None:
        self._tx, self._rx = trio.open_memory_channel[str | bytes | SocketEnd](10_000)

    async def send(self, text: str) -> None:
        if self.send_gate is not None:
            await self.send_gate.wait()
        if self.fail_sends:
            raise ConnectionLost("fake write failed")
        await trio.lowlevel.checkpoint()
        if self.closing():
            self.sent_late.append(text)
        self.log.append(text)

    async def receive(self) -> str | bytes | SocketEnd:
        assert self._rx is not None
        if (held := self._held) is not None:
            self._held = None
            await trio.lowlevel.checkpoint()
            return held
        return await self._rx.receive()

    def receive_nowait(self) -> str | bytes | None:
        """A frame already pushed (an end is held back for :meth:`receive`, as the real socket does)."""
        assert self._rx is not None
        if self._held is not None:
            return None
        try:
            frame = self._rx.receive_nowait()
        except trio.WouldBlock:
            return None
        if isinstance(frame, SocketEnd):
            self._held = frame
            return None
        return frame

    def push(self, frame: str | bytes | SocketEnd) -> None:
        assert self._tx is not None
        self._tx.send_nowait(frame)


@dataclass
class FakeSockets:
    """The socket seam: each ``open`` takes the next socket from ``make`` and records the open and the close."""

    make: Callable[[int], FakeSocket] = lambda _n: FakeSocket()
    opened: list[FakeSocket] = field(default_factory=list)
    closed: int = 0
    #: Set to hold the exit of an ``open`` block (the stream close is a schedule point).
    exit_gate: trio.Event | None = None
    #: Opens refused (``ConnectFailed``) before one succeeds.
    refuse: int = 0
    #: Trio time of each open.
    open_times: list[float] = field(default_factory=list)
    #: ``closing(url)``: has the end of the conversation behind ``url`` begun? (the test decides)
    closing: Callable[[str], bool] = lambda _url: False
    #: URLs of the opens attempted although ``closing(url)`` was already true.
    opened_late: list[str] = field(default_factory=list)

    @asynccontextmanager
    async def open(self, url: str, headers: Mapping[str, str]) -> AsyncIterator[FakeSocket]:
        from rtengine import ConnectFailed

        await trio.lowlevel.checkpoint()
        self.open_times.append(trio.current_time())
        if self.closing(url):
            self.opened_late.append(url)
        if self.refuse > 0:
            self.refuse -= 1
            raise ConnectFailed("fake refusal", status=503)
        sock = self.make(len(self.opened))
        sock.closing = lambda: self.closing(url)
        self.opened.append(sock)
        try:
            yield sock
        finally:
            with trio.CancelScope(shield=True):
                if self.exit_gate is not None:
                    await self.exit_gate.wait()
                await trio.lowlevel.checkpoint()
            self.closed += 1


@dataclass
class FakeCalls:
    """The call seam: answers at once (or after ``delay``), records hang-ups."""

    delay: float = 0.0
    hangups: list[str] = field(default_factory=list)
    created: int = 0
    #: ``closing()``: has the end begun? (the test decides) Calls created although it had are recorded.
    closing: Callable[[], bool] = lambda: False
    created_late: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    referred: list[tuple[str, str]] = field(default_factory=list)

    async def create(
        self, body: CallBody, headers: Mapping[str, str], *, on_sent: Callable[[], None] | None = None
    ) -> CallAnswer:
        if on_sent is not None:
            on_sent()
        await trio.sleep(self.delay)
        self.created += 1
        if self.closing():
            self.created_late.append(f"rtc_fake{self.created}")
        return CallAnswer(ANSWER, f"rtc_fake{self.created}")

    async def hangup(self, call_id: str, headers: Mapping[str, str]) -> None:
        await trio.lowlevel.checkpoint()
        self.hangups.append(call_id)

    async def accept(
        self,
        call_id: str,
        session: SessionConfig,
        headers: Mapping[str, str],
        *,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        if on_sent is not None:
            on_sent()
        await trio.sleep(self.delay)
        self.accepted.append(call_id)

    async def refer(self, call_id: str, target_uri: str, headers: Mapping[str, str]) -> None:
        await trio.lowlevel.checkpoint()
        self.referred.append((call_id, target_uri))


@dataclass
class FakeEndpoint:
    """What ``open_conversation`` needs from a client, built from fakes."""

    calls: FakeCalls = field(default_factory=FakeCalls)
    sockets: FakeSockets = field(default_factory=FakeSockets)
    realtime_base_url: str = "http://fake.invalid/v1"
    sideband_retries: int = 2
    sideband_rejoin_attempts: int = 3
    sideband_rejoin_deadline: float = 10.0
    backoff_base: float = 0.1
    close_timeout: float = 1.0
    rand: Callable[[], float] = field(default_factory=lambda: random.Random(1).random)

    def auth_headers(self) -> Mapping[str, str]:
        return {"authorization": "Bearer sk-fake"}

    def session_json(self, session: SessionConfig) -> str:
        return session.call_session_json()
