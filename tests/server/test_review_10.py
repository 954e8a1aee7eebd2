"""Review of the bounded writes (``ServerOptions.slow_client_seconds``): the paths that wrote to a client websocket
without the bound."""

import json
import socket

import pytest
import trio
import wsproto.events as ws_events
from rawnet import RawSocket, frame

from rtengine.server import LocalServer, ServerOptions, open_local_server

#: A ping with the largest payload a control frame may carry: each one makes the server write a 127-byte pong.
PINGS = frame(0x9, b"p" * 125) * 512


async def _stuck_client(port: int, target: str, *, tiny_window: bool = True) -> RawSocket:
    """A client that does not read after the handshake (until the test makes it), its receive window tiny unless
    ``tiny_window`` is False (a tiny window would make it slow to read 1 MiB once it reads: delayed ACKs)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    if tiny_window:
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client = RawSocket(stream)
    await client.handshake(target)
    return client


async def _flood_pings(client: RawSocket) -> None:
    """Ping without ever reading the pongs (a keep-alive task whose reader is stuck); blocks once the server
    stops reading."""
    while True:
        await client.stream.send_all(PINGS)


async def _read_to_the_end(stream: trio.SocketStream) -> None:
    while await stream.receive_some(65536):
        pass


async def test_a_client_that_pings_but_never_reads_is_reset_as_too_slow() -> None:
    options = ServerOptions(slow_client_seconds=0.5)
    async with open_local_server(options) as server:
        with trio.fail_after(30):
            client = await _stuck_client(server.port, "/v1/realtime?model=gpt-realtime")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_flood_pings, client)
                await server.record.wait_until(lambda: server.record.directs()[0].end is not None)
                nursery.cancel_scope.cancel()
            assert server.record.directs()[0].end == "too_slow"
            with pytest.raises(trio.BrokenResourceError):  # reset: the pong it was given was cut
                await _read_to_the_end(client.stream)
            await client.stream.aclose()


#: A valid server event of 1 MiB.
PADDED = {"type": "error", "error": {"type": "server_error", "code": "padding", "message": "x" * (1024 * 1024)}}
AFTER = {"type": "error", "error": {"type": "server_error", "code": "after", "message": "after the cut"}}


async def test_a_write_cancelled_midway_finishes_its_frame_before_the_next_one() -> None:
    options = ServerOptions(slow_client_seconds=30.0)
    async with open_local_server(options) as server:
        with trio.fail_after(30):
            client = await _stuck_client(server.port, "/v1/realtime?model=gpt-realtime", tiny_window=False)
            assert (await client.next_json())["type"] == "session.created"  # the conversation is live
            flooding = trio.CancelScope()

            async def flood() -> None:  # a response streaming to a slow view, cancelled (response.cancel, ...)
                with flooding:
                    while True:
                        await server.send_event(PADDED)
                await server.send_event(AFTER)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood)
                await _until_writes_stall(server)
                flooding.cancel()  # lands in the middle of a 1 MiB frame: part of it is out
                types = []
                while (event := await client.next_event()) is not None:
                    assert isinstance(event, ws_events.TextMessage), event
                    value = json.loads(event.data)  # whole frames only
                    types.append(value["type"] if value["type"] != "error" else value["error"]["code"])
                    if types[-1] == "after":
                        break
            assert set(types[:-1]) == {"padding"}
            assert types[-1] == "after"
            assert server.record.directs()[0].end is None  # it kept taking frames: never dropped
            await client.stream.aclose()


async def _until_writes_stall(server: LocalServer) -> None:
    """Return once the server's writes to its one direct websocket have not progressed for a second."""
    seen = -1
    while (count := len(server.record.directs()[0].frames_out)) != seen:
        seen = count
        await trio.sleep(1.0)
