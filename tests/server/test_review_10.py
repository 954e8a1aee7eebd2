"""Review of the bounded writes (``ServerOptions.slow_client_seconds``): the paths that wrote to a client websocket
without the bound."""

import socket

import pytest
import trio
from rawnet import RawSocket, frame

from rtengine.server import ServerOptions, open_local_server

#: A ping with the largest payload a control frame may carry: each one makes the server write a 127-byte pong.
PINGS = frame(0x9, b"p" * 125) * 512


async def _stuck_client(port: int, target: str) -> RawSocket:
    """A client whose receive window is tiny and that never reads after the handshake."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
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


@pytest.mark.xfail(strict=True, reason="rev10: the pong path writes without the bound: a pinging client that does "
                   "not read holds its connection (and its reader) until the session cap")  # fmt: skip
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
