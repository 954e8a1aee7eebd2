"""A view that stops reading never stalls the conversation's other views: it is dropped after
``ServerOptions.slow_client_seconds`` (recorded ``too_slow``) and the others go on."""

import socket

import pytest
import trio
from helpers import call_id_of, create_call, sideband
from rawnet import RawSocket

from rtengine.adapters._peer import PeerService
from rtengine.adapters._ws import open_socket
from rtengine.protocol import SocketEnd
from rtengine.protocol._payloads import encode, user_text
from rtengine.server import ServerOptions, open_local_server

#: Far more than the kernel buffers between the server and a client that reads nothing (loopback: a few MiB).
EVENTS = 24
#: A valid server event of 1 MiB.
PADDED = {"type": "error", "error": {"type": "server_error", "code": "padding", "message": "x" * (1024 * 1024)}}


async def test_a_sideband_that_stops_reading_is_dropped_and_the_other_keeps_its_events(
    peers: PeerService, offer_sdp: str
) -> None:
    options = ServerOptions(delta_interval=0.0, slow_client_seconds=0.5)
    async with open_local_server(options, peers=peers) as server:
        with trio.fail_after(20):
            call_id = call_id_of(await create_call(server, offer_sdp))
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stuck = RawSocket(stream)
            await stuck.handshake(f"/v1/realtime?call_id={call_id}")
            got: list[str] = []
            all_got = trio.Event()
            async with open_socket(sideband(server, call_id), {}) as reader, trio.open_nursery() as nursery:

                async def read() -> None:
                    while not isinstance(message := await reader.receive(), SocketEnd):
                        if isinstance(message, str) and '"padding"' in message:
                            got.append(message)
                            if len(got) == EVENTS:
                                all_got.set()

                nursery.start_soon(read)
                # Both attached (accepted is recorded right before a link joins the fan-out): none of the events
                # below is sent before a view can take it.
                await server.record.wait_until(
                    lambda: [join.accepted for join in server.record.joins(call_id)] == [True, True]
                )
                for _ in range(EVENTS):  # stalled for good at the stuck sideband without the bound
                    await server.send_event(PADDED, call_id=call_id)
                await reader.send(encode(user_text("still served")))
                await all_got.wait()
                await server.record.wait_until(lambda: len(server.record.joins(call_id)[1].frames_in) == 1)
                nursery.cancel_scope.cancel()
            stuck_record, reader_record = server.record.joins(call_id)
            assert stuck_record.end == "too_slow"
            assert reader_record.types_in() == ["conversation.item.create"]
            with pytest.raises(trio.BrokenResourceError):  # reset, not closed: the frame it was given was cut
                await _read_to_the_end(stuck.stream)
            await stuck.stream.aclose()


async def _read_to_the_end(stream: trio.SocketStream) -> None:
    while await stream.receive_some(65536):
        pass


def test_slow_client_seconds_must_be_positive() -> None:
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="slow_client_seconds must be > 0"):
            ServerOptions(slow_client_seconds=bad)
