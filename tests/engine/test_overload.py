"""The input audio's overload policy (:mod:`rtengine.engine._overload`): frames that waited together go out in one
append, in order and counted per frame; audio older than ``max_input_audio_age`` is dropped and counted, never
sent seconds late; drops are logged as a rate-limited summary; ``stats`` shows the lag."""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass

import pytest
import trio
import trio.testing
from engine_fakes import OFFER, FakeEndpoint, FakeSocket, FakeSockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rtengine
from rtengine.engine._inputs import Inputs
from rtengine.engine._overload import DROP_LOG_INTERVAL
from rtengine.protocol._lifecycle import ConversationStats

SESSION = rtengine.SessionConfig(instructions="Be brief.")
AGE = 0.5


def appends(sock: FakeSocket) -> list[bytes]:
    """The audio of each ``input_audio_buffer.append`` the socket carried, in order."""
    sent = [json.loads(text) for text in sock.log]
    return [base64.b64decode(p["audio"]) for p in sent if p["type"] == "input_audio_buffer.append"]


def frame(n: int, size: int = 960) -> bytes:
    return n.to_bytes(4, "little") + bytes(size - 4)


# --- the buffer itself: a property over random puts, waits and takes ----------------------------------------------

steps = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(1, 3000)),
        st.tuples(st.just("wait"), st.sampled_from([0.0, 0.01, 0.02, 0.2, 0.45, 0.6, 2.0])),
        st.tuples(st.just("take"), st.just(0)),
    ),
    max_size=60,
)


@dataclass
class Model:
    queued: list[tuple[bytes, float]]
    taken: list[bytes]
    since: float


async def play(script: list[tuple[str, float]], max_bytes: int, since_at: float) -> None:
    stats = ConversationStats()
    inputs = Inputs(text=4, tools=4, audio=256, stats=stats, audio_bytes=1 << 20, max_audio_age=AGE)
    start = trio.current_time()
    since = start + since_at
    model = Model([], [], since)
    count = 0
    for kind, value in script:
        if kind == "put":
            data = count.to_bytes(4, "little") + bytes(int(value))
            count += 1
            if inputs.put_audio(data):
                model.queued.append((data, trio.current_time()))
        elif kind == "wait":
            await trio.sleep(value)
        else:
            expired_before = stats.audio_frames_expired
            now = trio.current_time()
            waiting = [(d, q) for d, q in model.queued if d not in set(model.taken)]
            batch: list[bytes] = []
            with trio.move_on_after(0.001):  # nothing fresh waiting: the take is cancelled and takes nothing
                batch = await inputs.next_audio(since, max_bytes)
            fresh = [d for d, q in waiting if now - max(q, since) <= AGE]
            stale = [d for d, q in waiting if now - max(q, since) > AGE]
            # The stale frames were all at the head (waits only grow towards the head) and all dropped, counted.
            assert [d for d, _ in waiting[: len(stale)]] == stale
            assert stats.audio_frames_expired - expired_before == len(stale)
            model.taken.extend(stale)  # gone from the buffer
            # The batch is the oldest fresh frames, in order, as many as fit in max_bytes (at least one).
            assert batch == fresh[: len(batch)]
            if fresh:
                assert batch
                assert len(batch) == 1 or sum(map(len, batch)) <= max_bytes
                rest = fresh[len(batch) :]
                assert not rest or sum(map(len, batch)) + len(rest[0]) > max_bytes
                queued_at = dict(model.queued)[batch[0]]
                assert stats.input_audio_lag == pytest.approx(now - queued_at)
            model.taken.extend(batch)
    # Every frame accepted is accounted for: taken, expired, or still buffered (discarded at the end).
    left = [d for d, _ in model.queued if d not in set(model.taken)]
    inputs.discard()
    assert stats.audio_frames_discarded == len(left)
    assert stats.audio_frames_queued == len(model.queued)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, st.sampled_from([960, 4000, 48_000]), st.sampled_from([0.0, 1.0, 3.0]))
def test_takes_coalesce_in_order_and_expire_only_stale_audio(
    script: list[tuple[str, float]], max_bytes: int, since_at: float
) -> None:
    trio.run(play, script, max_bytes, since_at, clock=trio.testing.MockClock(autojump_threshold=0))


# --- through a conversation --------------------------------------------------------------------------------------


async def test_frames_that_waited_together_go_out_in_one_append(autojump_clock: trio.abc.Clock) -> None:
    sock = FakeSocket()
    endpoint = FakeEndpoint(sockets=FakeSockets(make=lambda _n: sock))
    async with rtengine.open_conversation(endpoint, SESSION) as conv:  # type: ignore[arg-type]
        await trio.sleep(0.1)
        for n in range(10):  # no checkpoint between: they wait together
            assert conv.send_audio(frame(n))
        await trio.sleep(0.1)
        conv.send_audio(frame(10))
        await trio.sleep(0.1)
        stats = conv.stats
    assert appends(sock) == [b"".join(frame(n) for n in range(10)), frame(10)]
    assert (stats.audio_frames_sent, stats.audio_appends_sent, stats.audio_frames_expired) == (11, 2, 0)


class SlowSocket(FakeSocket):
    """A socket whose every write takes ``delay`` seconds (an overloaded process, a slow link)."""

    delay = 0.7

    async def send(self, text: str) -> None:
        await trio.sleep(self.delay)
        await super().send(text)


async def test_overload_drops_stale_audio_counts_it_and_logs_a_summary(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """50 frames/s for 20 s into a socket that takes 0.7 s per write: the lag stays within the age bound (plus the
    one write in flight), the stale frames are dropped and counted, and the log has a few summary lines — not one
    per frame."""
    sock = SlowSocket()
    endpoint = FakeEndpoint(sockets=FakeSockets(make=lambda _n: sock))
    caplog.set_level(logging.WARNING, logger="rtengine")
    sent_at: list[float] = []
    capacities = rtengine.Capacities(max_input_audio_age=AGE)
    async with rtengine.open_conversation(endpoint, SESSION, capacities=capacities) as conv:  # type: ignore[arg-type]
        start = trio.current_time()
        for n in range(1000):
            await trio.sleep_until(start + n * 0.02)
            sent_at.append(trio.current_time())
            assert conv.send_audio(frame(n))
        await trio.sleep(1)
    stats = conv.stats  # after the end: what was still buffered or in flight is counted too
    got = [int.from_bytes(a[at : at + 4], "little") for a in appends(sock) for at in range(0, len(a), 960)]
    assert got == sorted(got)  # in order, nothing twice
    assert len(got) == stats.audio_frames_sent
    assert stats.audio_frames_expired > 0
    assert stats.audio_bytes_expired == 960 * stats.audio_frames_expired
    assert (
        stats.audio_frames_sent + stats.audio_frames_expired + stats.audio_frames_discarded + stats.inputs_lost == 1000
    )
    assert stats.audio_frames_dropped == 0  # the buffer never filled: the age bound came first
    assert AGE - 0.02 <= stats.input_audio_lag_max <= AGE
    assert stats.audio_appends_sent < stats.audio_frames_sent / 5  # coalesced: far fewer writes than frames
    summaries = [r for r in caplog.records if "input audio dropped" in r.getMessage()]
    assert 2 <= len(summaries) <= 20 / DROP_LOG_INTERVAL + 2
    assert sum(int(r.getMessage().split(", ")[1].split()[0]) for r in summaries) == stats.audio_frames_expired


async def test_audio_waiting_for_the_join_is_not_expired(autojump_clock: trio.abc.Clock) -> None:
    """The wait counts from when the socket is writable: audio buffered during a slow join (2 s of retries) is all
    written, in order, once it joined."""
    sock = FakeSocket()
    endpoint = FakeEndpoint(sockets=FakeSockets(make=lambda _n: sock, refuse=2), backoff_base=1.0)
    async with rtengine.open_conversation(endpoint, SESSION, offer_sdp=OFFER) as conv:  # type: ignore[arg-type]
        for n in range(50):
            assert conv.send_audio(frame(n))
            await trio.sleep(0.02)
        await trio.sleep(5)
        stats = conv.stats
    assert stats.join_attempts == 3
    assert b"".join(appends(sock)) == b"".join(frame(n) for n in range(50))
    assert (stats.audio_frames_sent, stats.audio_frames_expired) == (50, 0)


async def test_no_age_bound_sends_everything_late(autojump_clock: trio.abc.Clock) -> None:
    sock = SlowSocket()
    endpoint = FakeEndpoint(sockets=FakeSockets(make=lambda _n: sock))
    capacities = rtengine.Capacities(max_input_audio_age=None)
    async with rtengine.open_conversation(endpoint, SESSION, capacities=capacities) as conv:  # type: ignore[arg-type]
        for n in range(100):
            assert conv.send_audio(frame(n))
            await trio.sleep(0.02)
        await trio.sleep(3)
        stats = conv.stats
    assert (stats.audio_frames_sent, stats.audio_frames_expired) == (100, 0)
    assert stats.input_audio_lag_max > AGE


@pytest.mark.parametrize("age", [0, -1.0])
def test_the_age_bound_must_be_positive(age: float) -> None:
    with pytest.raises(rtengine.ConfigError):
        rtengine.Capacities(max_input_audio_age=age)
