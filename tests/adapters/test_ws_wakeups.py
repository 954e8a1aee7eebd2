"""What one message costs the socket in scheduler passes and parser work, against raw servers on 127.0.0.1:0.

The CPU a paced stream costs (one audio delta per millisecond) is mostly the trio scheduler's passes and the
frame parser's: a send is one schedule point (the write's), not two (the lock's and the write's); the frame parser
runs once per message and once per read, not again over the same bytes at every drain.
"""

from collections.abc import Generator

import trio
import wsproto.events as wse
from loopback import serving_raw
from ws_peer import TaskSteps, WsPeer

from rtengine.adapters._ws import WebSocketOpener


async def test_a_send_on_a_free_socket_is_one_schedule_point() -> None:
    """Twenty sends, nobody else sending: the sender is rescheduled once per send (it still yields every time —
    other tasks run in between), and every frame arrives in order."""
    got: list[str] = []
    done = trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        peer = WsPeer(stream)
        await peer.accept()
        while len(peer.texts) < 20:
            if await peer.next_event() is None:
                return
        got.extend(peer.texts)
        done.set()
        await peer.until_close()

    others = 0

    async def other() -> None:
        nonlocal others
        while True:
            await trio.lowlevel.checkpoint()
            others += 1

    with trio.fail_after(10):
        async with serving_raw(handler, close=True) as port:
            url = f"ws://127.0.0.1:{port}/v1/realtime?model=m"
            async with WebSocketOpener().open(url, {}) as sock, trio.open_nursery() as nursery:
                nursery.start_soon(other)
                await trio.sleep(0.01)
                steps = TaskSteps(trio.lowlevel.current_task())
                trio.lowlevel.add_instrument(steps)
                before = others
                for n in range(20):
                    await sock.send(f"m{n}")
                trio.lowlevel.remove_instrument(steps)
                ran = others - before
                await done.wait()
                nursery.cancel_scope.cancel()
    assert got == [f"m{n}" for n in range(20)]
    assert steps.steps == 20  # was 40: the free lock's acquire was a schedule point of its own
    assert ran >= 19  # the other task ran between each two sends


async def test_the_frame_parser_runs_once_per_read() -> None:
    """Ten rounds of a few messages in one write, each drained with ``receive`` then ``receive_nowait`` as the
    engine's reader does: wsproto is asked for events once per read (plus once for the opening's leftovers), not
    again over the same bytes each time the reader finds nothing more (was three times per read)."""

    async def handler(stream: trio.SocketStream) -> None:
        peer = WsPeer(stream)
        await peer.accept()
        for n in range(10):
            await peer.next_event()  # the client's "go": this round's messages come in a read of their own
            await stream.send_all(b"".join(peer.ws.send(wse.TextMessage(data=f"{n}.{k}")) for k in range(n % 3 + 1)))
        await peer.until_close()

    got: list[str | bytes] = []
    with trio.fail_after(10):
        async with serving_raw(handler, close=True) as port:
            url = f"ws://127.0.0.1:{port}/v1/realtime?model=m"
            async with WebSocketOpener().open(url, {}) as sock:
                ws = sock._ws
                real = ws.events
                calls = 0

                def counted() -> Generator[wse.Event, None, None]:  # a spy on wsproto, the socket's dependency
                    nonlocal calls
                    calls += 1
                    return real()

                ws.events = counted  # type: ignore[method-assign]
                for _ in range(10):
                    await sock.send("go")
                    message = await sock.receive()
                    assert isinstance(message, str)
                    got.append(message)
                    while (more := sock.receive_nowait()) is not None:
                        got.append(more)
                    await trio.sleep(0.01)  # nothing more arrives in this round (the drain found its end)
                    assert sock.receive_nowait() is None
                parsed, reads = calls, sock._reads
    assert got == [f"{n}.{k}" for n in range(10) for k in range(n % 3 + 1)]
    assert reads >= 10
    assert parsed <= reads + 1
