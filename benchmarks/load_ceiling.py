"""What any trio client can carry under ``load.py``'s load: the ceiling a websocket library is measured against.

Run: ``python benchmarks/load_ceiling.py [--quick] [--json PATH] [--steps 100,150,...] [--seconds S]``.

``load.py`` asks how many live conversations (50 frames/s each way) one process carries. This asks how many it could
carry if the client library cost nothing, in three floors, each against the same load server and app:

* **app pacing alone** — N tasks doing only what ``load.py``'s app does between frames: ``trio.sleep_until`` the
  next 20 ms due time (phases spread over the period, as independent callers). No sockets: the CPU the app itself
  costs, which no client library can take away.
* **trio floor** — per conversation, a trio socket stream, no websocket library and no JSON: the upgrade and every
  frame built by hand, the app's sending task writes its frame itself, one reading task per conversation finds the
  stamp by its offset. The least a trio client with a reading task per conversation can do.
* **shared reactor** — the same, but one task reads every conversation's socket (an ``epoll`` set, itself waited on
  with ``trio.lowlevel.wait_readable``) and the app's sending tasks write to non-blocking sockets directly: no
  reading task per conversation at all.

A floor's step passes as ``load.py``'s does (zero drops, p99 lag ≤ 60 ms both ways). Prints a table; ``--json``
writes the steps.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import select
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

import trio
from load import LAG_GOAL_MS, PERIOD_NS, Server, Window, fmt, load_server, pct, seen, sender

UPGRADE = (
    b"GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
)
SESSION_UPDATE = b'{"type":"session.update","session":{"type":"realtime"}}'
EVENT_ID = b'"event_id":"'


@dataclass
class Floor:
    floor: str
    conversations: int
    cores: float
    cpu_per_conv_s_us: float
    passed: bool | None
    lag_in_p99_ms: float | None = None
    lag_out_p99_ms: float | None = None
    drops_in: int = 0
    drops_out: int = 0


def masked(payload: bytes) -> bytes:
    """A client text frame with an all-zero mask key (the payload goes as it is)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, 0x80 | size))
    elif size < 65536:
        head = bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + bytes(4) + payload


def append(frame: bytes) -> bytes:
    return masked(b'{"type":"input_audio_buffer.append","audio":"' + base64.b64encode(frame) + b'"}')


class Reader:
    """One connection's unread bytes: the server's unmasked frames, each audio delta's stamp handed to ``seen``."""

    def __init__(self, window: Window, rest: bytes) -> None:
        self.window = window
        self.buf = rest

    def feed(self, data: bytes) -> None:
        buf = self.buf + data
        start = 0  # frames are read in place: a read holding many frames costs no copy of its rest per frame
        while len(buf) - start >= 2:
            size, at = buf[start + 1] & 0x7F, start + 2
            if size == 126:
                size, at = int.from_bytes(buf[at : at + 2], "big"), at + 2
            elif size == 127:
                size, at = int.from_bytes(buf[at : at + 8], "big"), at + 8
            if len(buf) < at + size:
                break
            payload, start = buf[at : at + size], at + size
            mark = payload.find(EVENT_ID)
            if mark >= 0 and b"output_audio.delta" in payload:
                seen(self.window, payload[mark + len(EVENT_ID) : mark + 60].decode("ascii"))
        self.buf = buf[start:]


def upgraded(data: bytes) -> tuple[bool, bytes]:
    _, found, rest = data.partition(b"\r\n\r\n")
    return bool(found), rest


async def trio_floor_conv(url: str, window: Window, stop: trio.Event, ready: trio.Semaphore, phase: int) -> None:
    host, _, port = url.removeprefix("ws://").partition(":")
    async with await trio.open_tcp_stream(host, int(port)) as stream:
        await stream.send_all(UPGRADE + base64.b64encode(os.urandom(16)) + b"\r\n\r\n")
        data = b""
        done = False
        while not done:
            data += await stream.receive_some(65536)
            done, rest = upgraded(data)
        await stream.send_all(masked(SESSION_UPDATE))
        reader = Reader(window, b"")
        reader.feed(rest)
        ready.release()

        async def send(frame: bytes) -> bool:
            await stream.send_all(append(frame))
            return True

        async def read() -> None:
            while data := await stream.receive_some(65536):
                reader.feed(data)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await sender(window, send, stop, phase)
            nursery.cancel_scope.cancel()


def blocking_open(url: str, window: Window) -> tuple[socket.socket, Reader]:
    """Connect and upgrade one socket, blocking (a few ms on loopback, before the step's measured window)."""
    host, _, port = url.removeprefix("ws://").partition(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(UPGRADE + base64.b64encode(os.urandom(16)) + b"\r\n\r\n")
    data = b""
    done = False
    while not done:
        data += sock.recv(65536)
        done, rest = upgraded(data)
    sock.sendall(masked(SESSION_UPDATE))
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = Reader(window, b"")
    reader.feed(rest)
    return sock, reader


async def send_nonblocking(sock: socket.socket, data: bytes) -> bool:
    """The app's write of one frame to a non-blocking socket, whole: what the kernel does not take at once is sent
    when there is room (as ``load.py``'s clients' ``send_all`` does) — never counted as sent with its rest lost,
    which would also corrupt every later frame of the connection."""
    rest = memoryview(data)
    while True:
        with contextlib.suppress(BlockingIOError):  # no room at all: wait for some
            rest = rest[sock.send(rest) :]
        if not rest:
            return True
        await trio.lowlevel.wait_writable(sock)


async def reactor(poller: select.epoll, readers: dict[int, tuple[socket.socket, Reader]]) -> None:
    """Read every ready socket of the set in one wake-up."""
    while True:
        await trio.lowlevel.wait_readable(poller.fileno())
        for fd, _ in poller.poll(0):
            sock, reader = readers[fd]
            try:
                data = sock.recv(262144)
            except BlockingIOError:
                continue
            if not data:  # the server closed it: stays readable for good, so it leaves the set (no spinning)
                poller.unregister(fd)
            reader.feed(data)


async def measure(server: Server, window: Window, seconds: float) -> tuple[float, dict[str, object]]:
    """A warm-up second, the window (client CPU seconds), a drain second; the server's report."""
    await trio.sleep(1.0)
    t0 = time.monotonic_ns() + 200_000_000
    window.t0, window.t1 = t0, t0 + int(seconds * 1e9)
    await server.ask(f"reset {t0} {window.t1}")
    await trio.sleep(max(0.0, (t0 - time.monotonic_ns()) / 1e9))
    cpu0 = time.process_time()
    await trio.sleep(seconds)
    cpu = time.process_time() - cpu0
    await trio.sleep(1.0)
    report: dict[str, object] = json.loads(await server.ask("report"))
    return cpu, report


def verdict(name: str, count: int, seconds: float, cpu: float, window: Window, report: dict[str, object]) -> Floor:
    frames_in, frames_out, out_dropped = (int(str(report[k])) for k in ("frames_in", "frames_out", "out_dropped"))
    lag_in = report["lag_in_p99_ms"]
    lag_in_p99 = float(str(lag_in)) if lag_in is not None else None
    lag_out_p99 = pct(window.lags_out, 0.99)
    drops_in = window.expected() - frames_in
    drops_out = frames_out + out_dropped - len(window.lags_out)
    passed = (
        drops_in == 0
        and drops_out == 0
        and all(lag is not None and lag <= LAG_GOAL_MS for lag in (lag_in_p99, lag_out_p99))
    )
    return Floor(name, count, cpu / seconds, cpu / (count * seconds) * 1e6, passed, lag_in_p99, lag_out_p99,
                 drops_in, drops_out)  # fmt: skip


async def pacing_alone(count: int, seconds: float) -> Floor:
    stop = trio.Event()

    async def pace(phase: float) -> None:
        due = trio.current_time() + phase
        while not stop.is_set():
            await trio.sleep_until(due)
            due += PERIOD_NS / 1e9

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(pace, index * PERIOD_NS / 1e9 / count)
        await trio.sleep(1.0)
        cpu0 = time.process_time()
        await trio.sleep(seconds)
        cpu = time.process_time() - cpu0
        stop.set()
    return Floor("app pacing alone", count, cpu / seconds, cpu / (count * seconds) * 1e6, None)


async def trio_floor(server: Server, url: str, count: int, seconds: float) -> Floor:
    window = Window(t0=1 << 62, t1=1 << 62)
    stop = trio.Event()
    ready = trio.Semaphore(0)
    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(trio_floor_conv, url, window, stop, ready, index * PERIOD_NS // count)
        for _ in range(count):
            await ready.acquire()
        cpu, report = await measure(server, window, seconds)
        stop.set()
    return verdict("trio floor", count, seconds, cpu, window, report)


async def shared_reactor(server: Server, url: str, count: int, seconds: float) -> Floor:
    window = Window(t0=1 << 62, t1=1 << 62)
    stop = trio.Event()
    readers: dict[int, tuple[socket.socket, Reader]] = {}
    with select.epoll() as poller:
        try:
            async with trio.open_nursery() as nursery:
                for index in range(count):
                    sock, reader = blocking_open(url, window)
                    readers[sock.fileno()] = (sock, reader)
                    poller.register(sock.fileno(), select.EPOLLIN)

                    async def send(frame: bytes, sock: socket.socket = sock) -> bool:
                        return await send_nonblocking(sock, append(frame))

                    nursery.start_soon(sender, window, send, stop, index * PERIOD_NS // count)
                nursery.start_soon(reactor, poller, readers)
                cpu, report = await measure(server, window, seconds)
                stop.set()
                nursery.cancel_scope.cancel()
        finally:
            for sock, _ in readers.values():
                sock.close()
    return verdict("shared reactor", count, seconds, cpu, window, report)


Run = Callable[[Server, str, int, float], Awaitable[Floor]]


async def run(steps: list[int], seconds: float) -> list[Floor]:
    results = [await pacing_alone(count, seconds) for count in steps]
    for result in results:
        print(row(result), flush=True)
    floors: list[Run] = [trio_floor, shared_reactor]
    async with load_server() as (server, url):
        for floor in floors:
            for count in steps:
                result = await floor(server, url, count, seconds)
                results.append(result)
                print(row(result), flush=True)
                if not result.passed:
                    break
    return results


HEADER = (
    "| floor | N | pass | client cores | CPU µs per conv-second | lag in / out p99 ms | drops in/out |\n"
    "|---|---|---|---|---|---|---|"
)


def row(f: Floor) -> str:
    passed = "—" if f.passed is None else ("yes" if f.passed else "no")
    lags = "—" if f.passed is None else f"{fmt(f.lag_in_p99_ms)} / {fmt(f.lag_out_p99_ms)}"
    drops = "—" if f.passed is None else f"{f.drops_in} / {f.drops_out}"
    cost = f"{f.cores:.2f} | {f.cpu_per_conv_s_us:.0f}"
    return f"| {f.floor} | {f.conversations} | {passed} | {cost} | {lags} | {drops} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="steps 25 and 50, 2 s windows (a check that it runs)")
    parser.add_argument("--steps", help="comma-separated N (default 50,100,150,200,300)")
    parser.add_argument("--seconds", type=float, help="window per step (default 5)")
    parser.add_argument("--json", help="write the steps to this file")
    args = parser.parse_args()
    steps = [int(n) for n in args.steps.split(",")] if args.steps else ([25, 50] if args.quick else
                                                                          [50, 100, 150, 200, 300])  # fmt: skip
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    print(f"python {platform.python_version()}; trio {trio.__version__}; {os.cpu_count()} cores; "
          f"{seconds:g} s windows; 50 frames/s each way per conversation")  # fmt: skip
    print(HEADER, flush=True)
    results = trio.run(run, steps, seconds)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"python": platform.python_version(), "trio": trio.__version__, "cores": os.cpu_count(),
                       "seconds": seconds, "steps": [asdict(f) for f in results]}, fh, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
