"""Close at every schedule point: a sweep of ``close()`` and of the owner's cancellation over whole scenarios.

Each scenario (a websocket conversation — also one reconnected after a reset and one rotated before its cap; WebRTC
calls whose sideband joins, fails after the handshake, is refused,
receives a benign or fatal server error, a clean close, a reset or a binary frame, or is lost and joined again
(a reset, a CLOSE 1011); the owner being a block or a nursery given to ``start_conversation``; a
``ConversationManager`` that starts, replaces and closes) runs on the fake seams of ``engine_fakes`` in a fresh
``trio.run`` on ``MockClock(autojump_threshold=0)``.

**Schedule points.** A :class:`trio.abc.Instrument` counts task steps (``after_task_step``, every task of the run:
between two steps is exactly where another task can interleave). Trio's scheduler is made deterministic by
hypothesis' trio plugin (imported here) and reseeded before every run, so the same scenario takes the same steps.
A first run without injection counts the steps ``N`` the scenario takes (up to its own end). Then, for each ``k``
in ``1..N``, a fresh run injects the end right after step ``k``: the instrument sets an event that wakes an injector
task, which — in its very next step — either calls ``close()`` (``manager.close()`` for the manager) or cancels the
owning scope (the ``CancelScope`` around ``open_conversation``/``open_manager``, or the nursery given to
``start_conversation``). ``close()`` needs the conversation: a ``k`` before the start returned closes it as soon as
the start returns; the cancellation sweep covers the start itself. Every ``k`` is run (no sampling): the whole file
stays well within its time budget.

**Invariants, each run** (per conversation that started):

* ``Started`` first; exactly one ``Closed``, last — none for a conversation the manager replaced;
* after the step that claimed the end, nothing but ``Closed`` (the final ``Error`` is part of the claim);
* no ``Error`` at all after the injection when the conversation was active then (``close()``/cancellation won);
* the fakes saw no socket opened, no frame sent and no call created after the injection (or after the
  conversation's end was claimed);
* every call created was hung up; no engine task is left once the owner's block is left;
* bounded virtual time: ``close()`` — and leaving the owner after a cancellation — within
  ``close_timeout + 4`` seconds.

**The owner's cancellation wins at once** (``test_owner_cancellation_wins_at_once``): after ``cancel()`` no socket
is opened, no frame sent, no call created and no ``Error`` delivered. The sweep found this broken while the work ran
under a shielded root scope (it went on until the owner watch noticed); the work now runs in the owner's scope.
Cost: 13 scenarios x 2 modes x 25-80 points, about 12 s in all.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import hypothesis  # noqa: F401  (its trio plugin makes trio's scheduling deterministic for a seeded random)
import pytest
import trio
import trio.testing
from engine_fakes import OFFER, FakeEndpoint, FakeSocket, FakeSockets
from engine_helpers import engine_tasks

import rtengine
from rtengine.engine import open_manager, start_conversation
from rtengine.events import Closed, ConversationEvent, Error, Started
from rtengine.protocol import SocketEnd

SESSION = rtengine.SessionConfig(instructions="Be brief.")
CLOSE_TIMEOUT = 1.0
BOUND = CLOSE_TIMEOUT + 4.0

Mode = Literal["count", "close", "cancel"]


def _frame(kind: str, **fields: object) -> str:
    return json.dumps({"type": kind, **fields})


SESSION_UPDATED = _frame("session.updated", session={"id": "sess_1"})
BENIGN = _frame("error", error={"type": "invalid_request_error", "code": "response_cancel_not_active", "message": "x"})
FATAL = _frame("error", error={"type": "server_error", "code": "server_error", "message": "the server broke"})
RESPONSE = [
    _frame("response.created", response={"id": "resp_1"}),
    _frame("response.done", response={"id": "resp_1", "status": "completed"}),
]


@dataclass(eq=False)
class Tracked:
    """One conversation the scenario started, and what its reader saw."""

    conv: rtengine.Conversation
    events: list[ConversationEvent] = field(default_factory=list)
    #: Events delivered (read or buffered) right after the step that claimed the end.
    claim_index: int | None = None
    #: Events delivered when the injection began, if the conversation was active then.
    inject_index: int | None = None
    #: The manager began replacing it (no ``Closed`` expected).
    replacing: bool = False

    def delivered(self) -> int:
        """Events put into ``conv.events`` so far (read, being read, or buffered)."""
        return self.conv.stats.events_forwarded


@dataclass(eq=False)
class Run:
    """One run of a scenario: the fakes, the conversations, the injection."""

    mode: Mode
    at: int | None
    endpoint: FakeEndpoint
    tracked: list[Tracked] = field(default_factory=list)
    steps: int = 0
    #: Steps the scenario took up to its own end (the count run's result).
    body_steps: int = 0
    fire: trio.Event = field(default_factory=trio.Event)
    fired_at: int | None = None
    #: The end was injected (close() began, or the owner's scope was cancelled).
    closing: bool = False
    injected_time: float | None = None
    close_took: float | None = None
    exit_took: float | None = None
    owner: trio.CancelScope | None = None
    manager: rtengine.ConversationManager | None = None
    conv_ready: trio.Event = field(default_factory=trio.Event)
    leftover: list[str] = field(default_factory=list)
    unexpected: list[BaseException] = field(default_factory=list)
    #: (when, url) of every open or send the fakes saw after the end began: "claim" or "injection".
    lates: list[tuple[str, str]] = field(default_factory=list)

    def track(self, conv: rtengine.Conversation) -> Tracked:
        tracked = Tracked(conv)
        if not conv.active:
            tracked.claim_index = tracked.delivered()
        self.tracked.append(tracked)
        self.conv_ready.set()
        return tracked

    def late(self, url: str) -> bool:
        """Has the end of the conversation behind ``url`` begun? Notes when: after its claim, or only after the
        injection (a claim has to follow the owner's cancellation; close() claims at once)."""
        mine = [t for t in self.tracked if t.conv.call_id is None or t.conv.call_id in url]
        if any(not t.conv.active for t in mine):
            self.lates.append(("claim", url))
            return True
        if self.closing:
            self.lates.append(("injection", url))
            return True
        return False


class Steps(trio.abc.Instrument):
    """Counts task steps; fires the injection after step ``run.at``; notes the step that claimed each end."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        run = self.run
        run.steps += 1
        for tracked in run.tracked:
            if tracked.claim_index is None and not tracked.conv.active:
                tracked.claim_index = tracked.delivered()
        if run.at is not None and run.steps == run.at and not run.fire.is_set():
            run.fired_at = run.steps
            run.fire.set()


async def _consume(tracked: Tracked) -> None:
    async for event in tracked.conv.events:
        tracked.events.append(event)


def _drain_now(tracked: Tracked) -> None:
    while True:
        try:
            tracked.events.append(tracked.conv.events.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return


# --- the scenarios: the caller's script, run inside the owner's scope -------------------------------------------


async def _converse(run: Run, conv: rtengine.Conversation, nursery: trio.Nursery) -> None:
    """The caller's side of one conversation: read, send a little, wait, close."""
    tracked = run.track(conv)
    nursery.start_soon(_consume, tracked)
    try:
        await conv.send_text("hello")
        conv.send_audio(b"\x00\x00" * 4)
        await conv.request_response()
    except rtengine.ConversationNotRunning:
        pass
    await trio.sleep(2.0)
    run.body_steps = run.steps
    await conv.close()


def _sockets(*frames: str | bytes | SocketEnd, fail_sends: bool = False) -> Callable[[int], FakeSocket]:
    def make(_n: int) -> FakeSocket:
        sock = FakeSocket(fail_sends=fail_sends)
        for frame in frames:
            sock.push(frame)
        return sock

    return make


def _first_then(end: SocketEnd) -> Callable[[int], FakeSocket]:
    """The first sideband ends with ``end`` after ``session.updated`` (a loss worth a re-join); the next is fine."""

    def make(n: int) -> FakeSocket:
        return _sockets(SESSION_UPDATED, end)(n) if n == 0 else _sockets(SESSION_UPDATED, *RESPONSE)(n)

    return make


class _Echoing(FakeSocket):
    """A fake session that adds every item created, as a server does (a replay waits for those answers)."""

    async def send(self, text: str) -> None:
        await super().send(text)
        frame = json.loads(text)
        if frame.get("type") == "conversation.item.create":
            self.push(_frame("conversation.item.added", item={"id": f"item_{len(self.log)}", **frame["item"]}))


def _expiring(n: int) -> FakeSocket:
    """A websocket session whose cap is 3 s away (each new session's too): it is rotated half way."""
    sock = _Echoing()
    sock.push(_frame("session.created", session={"id": f"sess_{n}", "expires_at": int(time.time()) + 3}))
    for frame in (SESSION_UPDATED, *RESPONSE):
        sock.push(frame)
    return sock


def _ws_first_then(end: SocketEnd) -> Callable[[int], FakeSocket]:
    """A websocket session that ends with ``end`` after ``session.updated``; the next sessions are fine."""

    def make(n: int) -> FakeSocket:
        sock = _Echoing()
        for frame in (SESSION_UPDATED, end) if n == 0 else (SESSION_UPDATED, *RESPONSE):
            sock.push(frame)
        return sock

    return make


@dataclass(frozen=True)
class Scenario:
    name: str
    make: Callable[[int], FakeSocket] = field(default_factory=lambda: _sockets(SESSION_UPDATED, *RESPONSE))
    webrtc: bool = True
    refuse: int = 0
    owner: Literal["block", "nursery", "manager"] = "block"
    reconnect: bool = False
    #: Accept a SIP call (``accept_call_id``) instead of creating a WebRTC call.
    sip: bool = False


SCENARIOS = [
    Scenario("a_websocket", webrtc=False),
    Scenario("b_join_success"),
    Scenario("b_join_success_start_conversation", owner="nursery"),
    Scenario("c_join_fails_after_handshake", make=_sockets(fail_sends=True)),
    Scenario("d_join_refused", refuse=1000),
    Scenario("e_benign_error", make=_sockets(SESSION_UPDATED, BENIGN, *RESPONSE)),
    Scenario("f_fatal_error", make=_sockets(SESSION_UPDATED, FATAL)),
    Scenario("g_clean_close", make=_sockets(SESSION_UPDATED, SocketEnd(clean=True, code=1000, reason="bye"))),
    Scenario("h_reset", make=_sockets(SESSION_UPDATED, SocketEnd(clean=False, detail="reset by peer"))),
    Scenario("i_binary_frame", make=_sockets(SESSION_UPDATED, b"\x00\x01", *RESPONSE)),
    Scenario("j_manager", owner="manager"),
    Scenario("k_rejoin_after_reset", make=_first_then(SocketEnd(clean=False, detail="reset by peer"))),
    Scenario("l_rejoin_after_1011", make=_first_then(SocketEnd(clean=True, code=1011, reason="server error"))),
    Scenario(
        "m_ws_reconnect_after_reset",
        make=_ws_first_then(SocketEnd(clean=False, detail="reset by peer")),
        webrtc=False,
        reconnect=True,
    ),
    Scenario("n_ws_rotation", make=_expiring, webrtc=False),
    Scenario("o_sip_accept_join_success", sip=True),
    Scenario("p_sip_accept_join_refused", sip=True, refuse=1000),
    Scenario("q_sip_accept_rejoin_after_reset", sip=True, make=_first_then(SocketEnd(clean=False, detail="reset"))),
]
SIP_CALL = "rtc_sip_sweep"


async def _block(run: Run, s: Scenario) -> None:
    endpoint = run.endpoint
    offer = OFFER if s.webrtc and not s.sip else None
    accept = SIP_CALL if s.sip else None
    async with (
        rtengine.open_conversation(endpoint, SESSION, offer, reconnect=s.reconnect, accept_call_id=accept) as conv,  # type: ignore[arg-type]
        trio.open_nursery() as nursery,
    ):
        await _converse(run, conv, nursery)


async def _nursery(run: Run, s: Scenario) -> None:
    assert run.owner is not None
    async with trio.open_nursery() as owner:
        run.owner = owner.cancel_scope  # the nursery given to start_conversation is the owner
        conv = await start_conversation(run.endpoint, SESSION, owner, OFFER)  # type: ignore[arg-type]
        async with trio.open_nursery() as nursery:
            await _converse(run, conv, nursery)


async def _manager(run: Run, s: Scenario) -> None:
    async with open_manager(run.endpoint) as manager, trio.open_nursery() as nursery:  # type: ignore[arg-type]
        run.manager = manager
        run.conv_ready.set()
        previous: Tracked | None = None
        for _ in range(2):
            if run.closing:
                break  # the caller closed the manager: it starts nothing more
            if previous is not None:
                previous.replacing = previous.conv.active
            try:
                conv = await manager.start(SESSION, OFFER)
            except rtengine.ConversationNotRunning:
                break
            previous = run.track(conv)
            nursery.start_soon(_consume, previous)
            with contextlib.suppress(rtengine.ConversationNotRunning):
                await conv.send_text("hello")
            await trio.sleep(1.0)
        run.body_steps = run.steps
        await manager.close()


BODIES: dict[str, Callable[[Run, Scenario], Awaitable[None]]] = {
    "block": _block,
    "nursery": _nursery,
    "manager": _manager,
}


async def _inject(run: Run) -> None:
    await run.fire.wait()
    if run.mode == "cancel":
        _begin(run)
        assert run.owner is not None
        run.owner.cancel()
        return
    await run.conv_ready.wait()
    _begin(run)
    start = trio.current_time()
    if run.manager is not None:
        await run.manager.close()
    else:
        await run.tracked[0].conv.close()
    run.close_took = trio.current_time() - start


def _begin(run: Run) -> None:
    run.closing = True
    run.injected_time = trio.current_time()
    for tracked in run.tracked:
        if tracked.conv.active:
            tracked.inject_index = tracked.delivered()


async def _main(run: Run, s: Scenario) -> None:
    async with trio.open_nursery() as top:
        top.start_soon(_inject, run)
        with trio.CancelScope() as owner:
            run.owner = owner
            try:
                await BODIES[s.owner](run, s)
            except rtengine.RealtimeError as exc:  # pragma: no cover - reported by check()
                run.unexpected.append(exc)
        if run.injected_time is not None and run.mode == "cancel":
            run.exit_took = trio.current_time() - run.injected_time
        run.leftover = engine_tasks()
        top.cancel_scope.cancel()
    for tracked in run.tracked:
        _drain_now(tracked)


def run_once(s: Scenario, mode: Mode, at: int | None) -> Run:
    endpoint = FakeEndpoint(
        sockets=FakeSockets(make=s.make, refuse=s.refuse),
        close_timeout=CLOSE_TIMEOUT,
        sideband_retries=2,
        backoff_base=0.1,
    )
    run = Run(mode, at, endpoint)
    endpoint.sockets.closing = run.late
    endpoint.calls.closing = lambda: run.closing
    trio._core._run._r.seed(0)  # deterministic scheduling (with hypothesis' trio plugin): the same steps each run
    trio.run(_main, run, s, clock=trio.testing.MockClock(autojump_threshold=0), instruments=[Steps(run)])
    return run


def violations(s: Scenario, run: Run) -> tuple[list[str], list[str]]:
    """The invariant violations of one run: (hard ones, ones in the owner-cancellation window).

    The window: between the owner's ``cancel()`` and the step in which the conversation notices it (its owner
    watch) and claims the end, the shielded work still runs — see ``test_owner_cancellation_wins_at_once``."""
    where = f"{s.name} {run.mode} at step {run.at}"
    hard: list[str] = []
    window: list[str] = []
    late_injection = hard if run.mode == "close" else window

    def expect(ok: object, what: str, into: list[str] | None = None) -> None:
        if not ok:
            (hard if into is None else into).append(f"{where}: {what}")

    expect(run.unexpected == [], f"raised {run.unexpected}")
    expect(run.leftover == [], f"tasks left: {run.leftover}")
    calls = run.endpoint.calls
    for when, url in run.lates:
        expect(False, f"socket opened or frame sent after the {when}: {url}", hard if when == "claim" else None)
        if when == "injection":
            late_injection.append(hard.pop())
    expect(calls.created_late == [], f"call created after the injection: {calls.created_late}", late_injection)
    created = sorted(f"rtc_fake{n}" for n in range(1, calls.created + 1))
    if s.sip:  # an accepted call is hung up; a cancelled accept may have gone through: that call is hung up too
        expect(set(calls.accepted) <= set(calls.hangups) <= {SIP_CALL}, f"hung up {calls.hangups} of {calls.accepted}")
        expect(calls.created == 0, "a SIP conversation created a call")
    else:
        expect(sorted(calls.hangups) == created, f"hung up {calls.hangups} of {created}")
    for tracked in run.tracked:
        events = tracked.events
        kinds = [type(e).__name__ for e in events]
        expect(events and isinstance(events[0], Started), f"Started not first: {kinds}")
        closed = [e for e in events if isinstance(e, Closed)]
        if not (tracked.replacing and not closed):  # a conversation the manager replaced: its events just end
            expect(len(closed) == 1 and events[-1] is closed[0], f"not exactly one Closed, last: {kinds}")
        if tracked.claim_index is None:
            expect(False, "the end was never claimed")
        else:
            after_claim = events[tracked.claim_index :]
            expect(all(isinstance(e, Closed) for e in after_claim), f"more than Closed after the claim: {kinds}")
        if tracked.inject_index is not None:
            after = events[tracked.inject_index :]
            expect(not any(isinstance(e, Error) for e in after), f"Error after the end began: {kinds}", late_injection)
            if closed:
                expect(closed[0].reason == "requested", f"the injected end lost: {closed[0]}", late_injection)
    if run.close_took is not None:
        expect(run.close_took <= BOUND, f"close() took {run.close_took}")
    if run.exit_took is not None:
        expect(run.exit_took <= BOUND, f"leaving the owner took {run.exit_took}")
    return hard, window


def sweep(scenario: Scenario, mode: Mode) -> tuple[int, list[str], list[str]]:
    """Count the scenario's schedule points, then end it at every one: (points, hard violations, window ones)."""
    baseline = run_once(scenario, "count", None)
    hard, window = violations(scenario, baseline)
    total = baseline.body_steps
    assert total > 10
    for k in range(1, total + 1):
        more_hard, more_window = violations(scenario, run_once(scenario, mode, k))
        hard += more_hard
        window += more_window
    return total, hard, window


@pytest.mark.parametrize("mode", ["close", "cancel"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_end_at_every_schedule_point(scenario: Scenario, mode: Mode) -> None:
    began = time.perf_counter()
    total, hard, _window = sweep(scenario, mode)
    assert hard == []
    print(f"{scenario.name} {mode}: {total} points, {time.perf_counter() - began:.2f}s")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_owner_cancellation_wins_at_once(scenario: Scenario) -> None:
    """The owner's ``cancel()`` ends the conversation as ``close()`` does, from that instant: no socket opened, no
    frame sent, no call created and no ``Error`` delivered after it. (With the work under a shielded root scope it
    went on until the owner watch next ran — 3 to 23 schedule points per scenario; the work now sits in the
    owner's scope, and every teardown step shields itself.)"""
    _total, _hard, window = sweep(scenario, "cancel")
    assert window == []


# --- regressions the sweep found (pinned with gates) -------------------------------------------------------------


async def test_manager_close_claims_the_current_conversation_at_once(autojump_clock: trio.abc.Clock) -> None:
    """manager.close() took its lock (a checkpoint) before closing the current conversation: meanwhile the
    conversation went on — its sideband opened its socket after close() had begun (found by the sweep: j_manager,
    close at step 6), and here a fatal server error arriving at that instant won over the close."""
    sock = FakeSocket()
    endpoint = FakeEndpoint(sockets=FakeSockets(make=lambda _n: sock))
    async with open_manager(endpoint) as manager:  # type: ignore[arg-type]
        conv = await manager.start(SESSION, OFFER)
        await trio.sleep(1)  # joined; the reader waits for a frame
        sock.push(FATAL)  # the reader is woken, and runs at the next checkpoint
        await manager.close()
    assert _events_now(conv) == [Started("webrtc", conv.call_id), Closed("requested")]


async def test_manager_close_during_the_replacement_wins(autojump_clock: trio.abc.Clock) -> None:
    """A start replacing the current conversation was not cancelled by a close() arriving meanwhile: it went on to
    create a new call after close() had begun."""
    gate = trio.Event()
    sockets = FakeSockets(exit_gate=gate)  # holds the first conversation's teardown
    endpoint = FakeEndpoint(sockets=sockets)
    outcome: list[BaseException] = []
    async with open_manager(endpoint) as manager:  # type: ignore[arg-type]
        await manager.start(SESSION, OFFER)
        await trio.sleep(1)  # joined

        async def replace() -> None:
            try:
                await manager.start(SESSION, OFFER)
            except rtengine.ConversationNotRunning as exc:
                outcome.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(replace)
            await trio.testing.wait_all_tasks_blocked()  # the start waits for the old teardown
            nursery.start_soon(manager.close)
            await trio.testing.wait_all_tasks_blocked()
            gate.set()
        assert manager.current is None
    assert len(outcome) == 1
    assert endpoint.calls.created == 1
    assert endpoint.calls.hangups == ["rtc_fake1"]


def _events_now(conv: rtengine.Conversation) -> list[ConversationEvent]:
    events: list[ConversationEvent] = []
    while True:
        try:
            events.append(conv.events.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return events
