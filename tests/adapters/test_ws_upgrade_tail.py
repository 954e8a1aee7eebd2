"""The frames a server writes in the same packet as its upgrade answer (the real API sends ``session.created`` right
behind the 101) reach the first ``receive()``: the open socket keeps wsproto's connection, not the finished HTTP
handshake, and those bytes are in it. Against a wsproto server on 127.0.0.1:0."""

from __future__ import annotations

import trio
import wsproto
import wsproto.events as wse
from loopback import serving_raw

from rtengine.adapters._ws import WebSocketOpener


async def test_frames_in_the_same_write_as_the_101_reach_the_first_receive() -> None:
    async def handler(stream: trio.SocketStream) -> None:
        ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        while not any(isinstance(event, wse.Request) for event in ws.events()):
            ws.receive_data(await stream.receive_some(65536))
        answer = ws.send(wse.AcceptConnection())
        answer += ws.send(wse.TextMessage(data='{"type":"session.created"}'))
        answer += ws.send(wse.TextMessage(data='{"type":"second"}'))
        await stream.send_all(answer)  # one write: the 101 and two frames
        while True:
            for event in ws.events():
                if isinstance(event, wse.TextMessage):
                    await stream.send_all(ws.send(wse.TextMessage(data=f"echo {event.data}")))
                elif isinstance(event, wse.CloseConnection):
                    await stream.send_all(ws.send(event.response()))
                    return
            data = await stream.receive_some(65536)
            if not data:
                return
            ws.receive_data(data)

    with trio.fail_after(10):
        async with serving_raw(handler, close=True) as port:
            url = f"ws://127.0.0.1:{port}/v1/realtime?model=m"
            async with WebSocketOpener().open(url, {"authorization": "Bearer k"}) as sock:
                assert await sock.receive() == '{"type":"session.created"}'
                assert await sock.receive() == '{"type":"second"}'
                await sock.send("one")
                assert await sock.receive() == "echo one"
    end = sock.end
    assert end is not None
    assert (end.clean, end.code) == (True, 1000)
