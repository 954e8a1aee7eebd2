"""How many live websocket conversations one process carries: rtengine against bare trio-websocket, the same load.

Run: ``python benchmarks/load.py [--quick] [--json PATH] [--steps 50,100,...] [--seconds S]``. ``--quick`` is a check
that it runs, not a measurement: N = 25, 100 and 300 with 2 s windows, every step run; it fails (exit status 1) when
the engine side had an error — an ``Error`` event, an end other than ``Closed("requested")`` — at any N (a failed
open raises out of the run); lag, drops and conversations still opening after 60 s are overload, reported.

The load of one conversation is a live call: 50 frames/s each way. The app sends a 20 ms PCM16 24 kHz frame
every 20 ms (``conv.send_audio``; its first 8 bytes are the CLOCK_MONOTONIC ns at which it was due); the server
(:mod:`load_server`, stdlib only, in its own process, every frame pre-encoded) sends a 20 ms
``response.output_audio.delta`` every 20 ms, stamped with when it was due. A step holds N conversations open at
once: a warm-up second, then a window of ``--seconds`` in which every frame due is followed:

* **lag in** (app → server): the server's receive time minus the frame's due time; **lag out** (server → app): the
  time the app got the event minus its due time. p50 and p99 over all frames of the window.
* **drops**: frames due in the window that did not arrive by the end of a drain second after it — in (app →
  server: refused by ``send_audio``, dropped as too old, lost, or more than a second late) and out (server → app:
  not sent because the client fell a second behind, or not read in time).
* **CPU**: the client process's CPU seconds per conversation-second, and the server's share of a core (it must
  stay well under one core: then it is never the bottleneck).

A step passes with zero drops both ways and p99 lag ≤ 60 ms both ways; the knee is the largest passing N. Both
clients run every step against the same server; each client's steps stop after its first failed step. The app's
work is the same for both: one task sending, one task reading and reading the stamp out of each audio event's
``event_id``. Prints a table; ``--json`` writes the steps.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import json
import os
import platform
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field

import trio
import trio_websocket

import rtengine
from rtengine.events import AudioOut, Closed, Error

SESSION = rtengine.SessionConfig(instructions="load")
PERIOD_NS = 20_000_000
FRAME_BYTES = 960
PAD = bytes(FRAME_BYTES - 8)
STAMP = struct.Struct("<q")
LAG_GOAL_MS = 60.0
HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Window:
    """What the app side saw in one step's window (shared by the conversations of the step)."""

    t0: int = 0
    t1: int = 0
    sent: int = 0
    refused: int = 0
    lags_out: list[int] = field(default_factory=list)
    #: Each sender's first due time: the frames due in the window follow from it (also those never sent).
    starts: list[int] = field(default_factory=list)

    def expected(self) -> int:
        """Frames due in the window over all senders (a sender that fell behind still owes them)."""
        return sum(-((start - self.t1) // PERIOD_NS) - -((start - self.t0) // PERIOD_NS) for start in self.starts)

    def due(self, ns: int) -> bool:
        return self.t0 <= ns < self.t1


@dataclass
class Step:
    client: str
    conversations: int
    seconds: float
    opened: int
    passed: bool
    cpu_per_conv_s_us: float
    client_cores: float
    server_cores: float
    lag_in_p50_ms: float | None
    lag_in_p99_ms: float | None
    lag_out_p50_ms: float | None
    lag_out_p99_ms: float | None
    drops_in: int
    drops_out: int
    frames_in: int
    frames_out: int
    appends_in: int
    engine_dropped: int = 0
    #: ``Error`` events, and ``Closed`` other than ``requested``, over the step's conversations (the engine side
    #: must have none: a conversation that fails under load is a bug, not overload).
    engine_errors: int = 0


def pct(values: list[int], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] / 1e6


class Server:
    """The load server process, driven over its stdin/stdout."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self._buffer = b""

    async def line(self) -> str:
        assert self.process.stdout is not None
        while b"\n" not in self._buffer:
            chunk = await self.process.stdout.receive_some(65536)
            if not chunk:
                raise RuntimeError("the load server ended")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    async def ask(self, command: str) -> str:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(command.encode() + b"\n")
        return await self.line()


async def sender(window: Window, send: Callable[[bytes], Awaitable[bool]], stop: trio.Event, phase: int) -> None:
    """Send a stamped frame every 20 ms until the window closed; a frame refused counts as a drop."""
    offset = trio.current_time() - time.monotonic_ns() / 1e9
    due = time.monotonic_ns() + phase
    window.starts.append(due)
    while not stop.is_set():
        await trio.sleep_until(offset + due / 1e9)
        ok = await send(STAMP.pack(due) + PAD)
        if window.due(due):
            window.sent += 1
            window.refused += not ok
        due += PERIOD_NS


def seen(window: Window, event_id: str) -> None:
    """An audio event arrived: its lag (``event_<seq>_<due ns>``)."""
    due = int(event_id[17:37])
    if window.due(due):
        window.lags_out.append(time.monotonic_ns() - due)


async def rtengine_conv(
    client: rtengine.RealtimeClient, window: Window, stop: trio.Event, ready: trio.Semaphore, phase: int
) -> tuple[int, int]:
    """One conversation: (audio frames the engine dropped, engine errors — ``Error`` events and an end other than
    ``Closed("requested")``)."""
    errors = 0
    async with rtengine.open_conversation(client, SESSION) as conv:
        ready.release()

        async def send(frame: bytes) -> bool:
            return conv.send_audio(frame)

        async def read() -> None:
            nonlocal errors
            async for event in conv.events:
                if isinstance(event, AudioOut) and event.event_id is not None:
                    seen(window, event.event_id)
                elif isinstance(event, Error):
                    errors += 1
                    print(f"engine error: {event.code}: {event.message}", file=sys.stderr)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await sender(window, send, stop, phase)
            nursery.cancel_scope.cancel()
        await conv.close()
        rest = [event async for event in conv.events]
        errors += sum(isinstance(event, Error) for event in rest)
        closed = [event for event in rest if isinstance(event, Closed)]
        if [c.reason for c in closed] != ["requested"]:
            errors += 1
            print(f"engine end: {closed}", file=sys.stderr)
        stats = conv.stats
    return stats.audio_frames_dropped + getattr(stats, "audio_frames_expired", 0), errors


async def bare_conv(url: str, window: Window, stop: trio.Event, ready: trio.Semaphore, phase: int) -> int:
    try:
        return await _bare_conv(url, window, stop, ready, phase)
    except* trio_websocket.DisconnectionTimeout:  # its close handshake overran under overload (the baseline's own)
        pass
    return 0


async def _bare_conv(url: str, window: Window, stop: trio.Event, ready: trio.Semaphore, phase: int) -> int:
    async with trio_websocket.open_websocket_url(url) as ws:
        await ws.send_message(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        ready.release()

        async def send(frame: bytes) -> bool:
            audio = base64.b64encode(frame).decode("ascii")
            await ws.send_message(
                json.dumps({"type": "input_audio_buffer.append", "audio": audio}, separators=(",", ":"))
            )
            return True

        async def read() -> None:
            while True:
                event = json.loads(await ws.get_message())
                if event.get("type") == "response.output_audio.delta":
                    seen(window, event["event_id"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await sender(window, send, stop, phase)
            nursery.cancel_scope.cancel()
    return 0


async def step(server: Server, url: str, kind: str, count: int, seconds: float) -> Step:
    window = Window(t0=1 << 62, t1=1 << 62)
    stop = trio.Event()
    ready = trio.Semaphore(0)
    dropped: list[int] = []
    errors: list[int] = []

    async def one(index: int, client: rtengine.RealtimeClient | None) -> None:
        phase = index * PERIOD_NS // max(count, 1)
        if client is not None:
            engine_dropped, engine_errors = await rtengine_conv(client, window, stop, ready, phase)
            dropped.append(engine_dropped)
            errors.append(engine_errors)
        else:
            dropped.append(await bare_conv(url + "/v1/realtime?model=gpt-realtime", window, stop, ready, phase))

    base_url = url.replace("ws://", "http://") + "/v1"
    async with rtengine.RealtimeClient(base_url, api_key="sk-load") as client, trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(one, index, client if kind == "rtengine" else None)
        opened = 0
        with trio.move_on_after(60):
            for _ in range(count):
                await ready.acquire()
                opened += 1
        await trio.sleep(1.0)  # warm-up
        t0 = time.monotonic_ns() + 200_000_000  # after the server has taken the reset
        window.t0, window.t1 = t0, t0 + int(seconds * 1e9)
        await server.ask(f"reset {t0} {window.t1}")
        await trio.sleep(max(0.0, (t0 - time.monotonic_ns()) / 1e9))  # a loaded machine may be past t0 already
        cpu0 = time.process_time()
        await trio.sleep(seconds)
        cpu = time.process_time() - cpu0
        await trio.sleep(1.0)  # drain: frames due in the window still on their way
        report = json.loads(await server.ask("report"))
        stop.set()
    lag_in_p50, lag_in_p99 = report["lag_in_p50_ms"], report["lag_in_p99_ms"]
    lag_out_p50, lag_out_p99 = pct(window.lags_out, 0.5), pct(window.lags_out, 0.99)
    # A frame due in the window and not received by the end of the drain second is a drop, whatever the reason
    # (refused, expired, lost, or more than a second late).
    drops_in = window.expected() - report["frames_in"]
    drops_out = report["frames_out"] + report["out_dropped"] - len(window.lags_out)
    lags = (lag_in_p99, lag_out_p99)
    passed = (
        opened == count
        and drops_in == 0
        and drops_out == 0
        and all(lag is not None and lag <= LAG_GOAL_MS for lag in lags)
    )
    return Step(
        client=kind,
        conversations=count,
        seconds=seconds,
        opened=opened,
        passed=passed,
        cpu_per_conv_s_us=cpu / (count * seconds) * 1e6,
        client_cores=cpu / seconds,
        server_cores=report["cpu_s"] / report["wall_s"],
        lag_in_p50_ms=lag_in_p50,
        lag_in_p99_ms=lag_in_p99,
        lag_out_p50_ms=lag_out_p50,
        lag_out_p99_ms=lag_out_p99,
        drops_in=drops_in,
        drops_out=drops_out,
        frames_in=report["frames_in"],
        frames_out=len(window.lags_out),
        appends_in=report["appends_in"],
        engine_dropped=sum(dropped),
        engine_errors=sum(errors),
    )


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


@contextlib.asynccontextmanager
async def load_server() -> AsyncIterator[tuple[Server, str]]:
    """The load server process (:mod:`load_server`) and its ``ws://`` URL; it ends when its stdin closes, on the
    way out."""
    command = [sys.executable, os.path.join(HERE, "load_server.py")]
    async with trio.open_nursery() as nursery:
        run_server = functools.partial(
            trio.run_process, command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, check=False
        )
        process: trio.Process = await nursery.start(run_server)
        server = Server(process)
        try:
            yield server, await server.line()
        finally:
            assert process.stdin is not None
            await process.stdin.aclose()


async def run(steps: list[int], seconds: float, clients: list[str], keep_going: bool = False) -> list[Step]:
    results: list[Step] = []
    async with load_server() as (server, url):
        for kind in clients:
            for count in steps:
                result = await step(server, url, kind, count, seconds)
                results.append(result)
                print(row(result), flush=True)
                if not result.passed and not keep_going:
                    break
    return results


HEADER = (
    "| client | N | opened in 60 s | pass | CPU µs per conv-second | client cores | server cores | lag in p50/p99 ms "
    "| lag out p50/p99 ms | drops in/out | appends per frame | engine errors |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def row(s: Step) -> str:
    per = s.appends_in / s.frames_in if s.frames_in else 0.0
    return (
        f"| {s.client} | {s.conversations} | {s.opened} | {'yes' if s.passed else 'no'} | {s.cpu_per_conv_s_us:.0f} "
        f"| {s.client_cores:.2f} | {s.server_cores:.2f} | {fmt(s.lag_in_p50_ms)} / {fmt(s.lag_in_p99_ms)} "
        f"| {fmt(s.lag_out_p50_ms)} / {fmt(s.lag_out_p99_ms)} | {s.drops_in} / {s.drops_out} | {per:.2f} "
        f"| {s.engine_errors if s.client == 'rtengine' else '—'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="steps 25, 100 and 300, 2 s windows, every step (a check that it runs)"
    )
    parser.add_argument("--steps", help="comma-separated N (default 50,100,...,500)")
    parser.add_argument("--seconds", type=float, help="window per step (default 10)")
    parser.add_argument("--clients", default="trio-websocket,rtengine", help="which clients, in order")
    parser.add_argument("--keep-going", action="store_true", help="run every step, also after a failed one")
    parser.add_argument("--json", help="write the steps to this file")
    args = parser.parse_args()
    steps = [int(n) for n in args.steps.split(",")] if args.steps else ([25, 100, 300] if args.quick else
                                                                          list(range(50, 501, 50)))  # fmt: skip
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    clients = args.clients.split(",")
    print(f"python {platform.python_version()}; trio {trio.__version__}; {os.cpu_count()} cores; "
          f"{seconds:g} s windows; 50 frames/s each way per conversation")  # fmt: skip
    print(HEADER, flush=True)
    results = trio.run(run, steps, seconds, clients, args.keep_going or args.quick)
    knees = {kind: max((s.conversations for s in results if s.client == kind and s.passed), default=0)
             for kind in clients}  # fmt: skip
    print("knee (largest N passing):", ", ".join(f"{kind} {n}" for kind, n in knees.items()))
    failed = [s for s in results if s.client == "rtengine" and s.engine_errors]
    if failed:  # overload shows as lag, drops and slow opens; an error event or an abnormal end is a bug
        sys.exit(f"engine-side failures at N = {', '.join(str(s.conversations) for s in failed)}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"python": platform.python_version(), "cores": os.cpu_count(), "seconds": seconds,
                       "knees": knees, "steps": [asdict(s) for s in results]}, fh, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
