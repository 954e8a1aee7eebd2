"""A websocket server light enough never to be the bottleneck of a client benchmark (``benchmarks/throughput.py``).

Run: ``python benchmarks/blast_server.py --events N --paced P``; it prints its base URL (``http://127.0.0.1:PORT``)
on one line, then serves until interrupted. Every frame is encoded once, at start-up: ``response.created``, then
audio deltas of 960 bytes of PCM16 (20 ms at 24 kHz; 1280 base64 characters), then ``response.done``. The request
path picks the schedule:

* ``/blast/...`` — the N deltas written as fast as the socket takes them (one ``send_all`` of the pre-joined bytes),
  the client is the bottleneck;
* ``/paced/...`` — P deltas at one per millisecond (every wake-up writes what is due, so a late wake-up catches up);
* ``/stepped/...`` — P deltas, one write each, ``--step-ms`` apart (``benchmarks/wakeups.py``: every delta its own
  read, even for a slow client);
* ``/quiet/...`` — nothing: the client's frames are read and dropped (``wakeups.py``'s send path).

The handshake and the client's frames go through wsproto (a CLOSE is answered); nothing else is parsed. The shapes
follow the GA events the real API sends, so the openai SDK's models accept them.
"""

from __future__ import annotations

import argparse
import base64
import json
import struct
import sys

import trio
import wsproto
import wsproto.events as wse

AUDIO = base64.b64encode(bytes(range(256)) * 3 + bytes(192)).decode()  # 960 bytes


def frame(payload: dict[str, object]) -> bytes:
    """One unmasked text frame (server to client), FIN set."""
    data = json.dumps(payload, separators=(",", ":")).encode()
    size = len(data)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + data


def stream_frames(count: int) -> list[bytes]:
    response = {"id": "resp_1", "object": "realtime.response", "status": "in_progress", "output": []}
    frames = [frame({"type": "response.created", "event_id": "event_start", "response": response})]
    for i in range(count):
        delta = {
            "type": "response.output_audio.delta",
            "event_id": f"event_{i}",
            "response_id": "resp_1",
            "item_id": "item_1",
            "output_index": 0,
            "content_index": 0,
            "delta": AUDIO,
        }
        frames.append(frame(delta))
    done = {**response, "status": "completed"}
    frames.append(frame({"type": "response.done", "event_id": "event_done", "response": done}))
    return frames


class Server:
    def __init__(self, events: int, paced: int, step: float = 0.005) -> None:
        self.blast = b"".join(stream_frames(events))
        self.paced = stream_frames(paced)
        self.step = step

    async def handle(self, stream: trio.SocketStream) -> None:
        ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        target = ""
        try:
            while not target:
                data = await stream.receive_some(65536)
                if not data:
                    return
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, wse.Request):
                        target = event.target
                        await stream.send_all(ws.send(wse.AcceptConnection()))
            lock = trio.StrictFIFOLock()  # the reader answers PINGs and the CLOSE while the stream may be sending
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.read, stream, ws, nursery.cancel_scope, lock)
                if "/paced/" in target:
                    await self.send_paced(stream, lock)
                elif "/stepped/" in target:
                    await self.send_stepped(stream, lock)
                elif "/quiet/" in target:
                    await trio.sleep_forever()  # until the client closes
                else:
                    async with lock:
                        await stream.send_all(self.blast)
        except (trio.BrokenResourceError, trio.ClosedResourceError, wsproto.utilities.LocalProtocolError):
            pass
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def send_paced(self, stream: trio.SocketStream, lock: trio.StrictFIFOLock) -> None:
        frames = self.paced
        start = trio.current_time()
        sent = 0
        while sent < len(frames):
            due = min(len(frames), int((trio.current_time() - start) * 1000) + 1)
            if due > sent:
                async with lock:
                    await stream.send_all(b"".join(frames[sent:due]))
                sent = due
            await trio.sleep_until(start + sent / 1000)
        await trio.sleep_forever()  # until the client closes

    async def send_stepped(self, stream: trio.SocketStream, lock: trio.StrictFIFOLock) -> None:
        for frame in self.paced:
            async with lock:
                await stream.send_all(frame)
            await trio.sleep(self.step)
        await trio.sleep_forever()  # until the client closes

    async def read(
        self, stream: trio.SocketStream, ws: wsproto.WSConnection, scope: trio.CancelScope, lock: trio.StrictFIFOLock
    ) -> None:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                scope.cancel()
                return
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, wse.CloseConnection):
                    async with lock:
                        await stream.send_all(ws.send(event.response()))
                    scope.cancel()
                    return
                if isinstance(event, wse.Ping):
                    async with lock:
                        await stream.send_all(ws.send(event.response()))


async def main(events: int, paced: int, step: float = 0.005) -> None:
    server = Server(events, paced, step)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    print(f"http://127.0.0.1:{port}", flush=True)
    await trio.serve_listeners(server.handle, listeners)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--paced", type=int, default=2000)
    parser.add_argument("--step-ms", type=float, default=5.0, help="between two deltas of /stepped/")
    args = parser.parse_args()
    try:
        trio.run(main, args.events, args.paced, args.step_ms / 1000)
    except KeyboardInterrupt:
        sys.exit(0)
