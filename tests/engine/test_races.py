"""Exact interleavings forced with ``trio.testing.Sequencer`` (over real loopback sockets).

The sideband's byte stream is wrapped so the test can stop the join at a precise point: a join that fails the
instant after ``close()`` began, a ``close()`` the instant after the handshake succeeded, and a ``close()`` in the
middle of writing ``session.update``. In every case: exactly one ``Closed("requested")``, never an ``Error``, and a
prompt teardown.
"""

from collections.abc import Awaitable, Callable

import trio
import trio.testing
from engine_helpers import client_for, drain, engine_tasks, serving

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import Closed, Started


class GatedStream(trio.abc.Stream):
    """A TCP stream whose ``n``-th ``send_all`` passes through ``gate`` after ``head`` bytes.

    ``atomic=True`` shields that whole write, so it completes even though the caller was cancelled meanwhile
    (the frame is sent whole); otherwise the rest of the frame is abandoned when the caller is cancelled.
    """

    def __init__(
        self, inner: trio.abc.Stream, n: int, gate: Callable[[], Awaitable[None]], head: int, atomic: bool
    ) -> None:
        self.inner, self.n, self.gate, self.head, self.atomic, self.sends = inner, n, gate, head, atomic, 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.sends += 1
        if self.sends != self.n:
            await self.inner.send_all(data)
            return
        with trio.CancelScope(shield=self.atomic):
            await self.inner.send_all(data[: self.head])
            await self.gate()
            await self.inner.send_all(data[self.head :])

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def send_eof(self) -> None:
        await self.inner.aclose()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _close_at_step_zero(conv: rtengine.Conversation, seq: trio.testing.Sequencer) -> float:
    """Begin close() at step 0 (in a task), let step 1 run, return how long close() took."""
    took: list[float] = []

    async def closer() -> None:
        start = trio.current_time()
        await conv.close()
        took.append(trio.current_time() - start)

    async with trio.open_nursery() as nursery, seq(0):
        nursery.start_soon(closer)
        await trio.testing.wait_all_tasks_blocked()
        assert not conv.active  # the claim happened before anything else could run
    return took[0]


async def test_join_failing_the_instant_after_close_produces_no_error(peers: PeerService, offer_sdp: str) -> None:
    seq = trio.testing.Sequencer()

    async def refuse_after_close(host: str, port: int) -> trio.abc.Stream:
        with trio.CancelScope(shield=True):  # the failure happens even though close() cancelled the join
            async with seq(1):
                pass
        raise ConnectionRefusedError("refused at the instant after close()")

    async with serving(peers) as server:
        client = client_for(server, open_stream=refuse_after_close, sideband_retries=0, close_timeout=5.0)
        async with client:
            with trio.fail_after(10):
                async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp) as conv:
                    took = await _close_at_step_zero(conv, seq)
                events = await drain(conv)
    assert events == [Started("webrtc", conv.call_id), Closed("requested")]
    assert took < 1.0
    assert engine_tasks() == []


async def _gated(
    peers: PeerService, offer_sdp: str, head: int, atomic: bool
) -> tuple[list[rtengine.events.ConversationEvent], float, list[object]]:
    seq = trio.testing.Sequencer()

    async def gate() -> None:
        with trio.CancelScope(shield=True):  # close() cancels the write; the gate itself must not break
            async with seq(1):
                pass

    async def open_gated(host: str, port: int) -> trio.abc.Stream:
        # send #1 is the HTTP upgrade request, send #2 the session.update frame
        return GatedStream(await trio.open_tcp_stream(host, port), 2, gate, head, atomic)

    async with serving(peers) as server, client_for(server, open_stream=open_gated, close_timeout=5.0) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp) as conv:
                await server.record.wait_until(lambda: any(c.accepted for c in server.record.sidebands()))
                await trio.testing.wait_all_tasks_blocked()
                took = await _close_at_step_zero(conv, seq)
            events = await drain(conv)
            record = server.record.sidebands()[-1]
            await server.record.wait_until(lambda: record.end is not None)
    return events, took, [record.end, record.close_answered]


async def test_close_the_instant_after_the_join_succeeded(peers: PeerService, offer_sdp: str) -> None:
    # session.update is written whole (the join completed), then close() arrives
    events, took, (end, answered) = await _gated(peers, offer_sdp, head=0, atomic=True)
    assert [type(e) for e in events] == [Started, Closed]
    assert events[-1] == Closed("requested")
    assert took < 1.0  # the close handshake ran with the reader alive, not to the 5 s deadline
    assert end == "client_close"
    assert answered
    assert engine_tasks() == []


async def test_close_during_session_update(peers: PeerService, offer_sdp: str) -> None:
    # three bytes of the session.update frame are on the wire when close() arrives: the stream is torn, so
    # no close handshake is attempted (it could never complete) and the TCP connection is simply closed
    events, took, (end, _) = await _gated(peers, offer_sdp, head=3, atomic=False)
    assert [type(e) for e in events] == [Started, Closed]
    assert events[-1] == Closed("requested")
    assert took < 1.0
    assert end == "eof"
    assert engine_tasks() == []
