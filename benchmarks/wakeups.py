"""Scheduler passes, task steps and Python calls per message, for rtengine and bare trio-websocket side by side.

Run: ``python benchmarks/wakeups.py [--quick] [--calls] [--json PATH]``.

CPU per event on a shared machine is noisy; these counts are not. One message at a time, each its own read or
write (``blast_server.py``'s ``/stepped/`` schedule: a 960-byte audio delta every ``--step-ms``; ``/quiet/``: no
server events while the client sends), so what is counted is what one message costs when the process sleeps
between messages — the paced case of ``throughput.py`` and the load of ``load.py``:

* **read** — from the first delta to ``response.done`` in the app's hands: trio run-loop passes
  (``before_io_wait``), task steps (``before_task_step``), and with ``--calls`` Python function calls
  (``sys.setprofile``; a resumed coroutine counts as a call), each per delta;
* **send** — the app sends a stamped 20 ms PCM16 frame every ``--step-ms``: rtengine ``conv.send_audio``; bare
  trio-websocket, as in ``load.py``, base64 + ``json.dumps`` + ``send_message``; the same counts per frame
  (the app's own sleep between frames included, for both).

The clients are those of ``throughput.py`` (rtengine: ``open_conversation`` on a plain websocket; trio-websocket
with its defaults and tuned). The counter's own calls are not counted.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

import trio
import trio_websocket
from throughput import KEY, SESSION, Meter, run_rtengine, run_trio_websocket, run_trio_websocket_tuned

import rtengine

FRAME = bytes(960)
#: The counter's own code, and trio's dispatch to instruments: not counted.
_OWN = (__file__, str(Path(trio.__file__).parent / "_core" / "_instrumentation.py"))


class Counter(trio.abc.Instrument):
    """Passes, steps and (optionally) Python calls while ``on``."""

    def __init__(self, calls: bool) -> None:
        self.passes = self.steps = self.calls = 0
        self.count_calls = calls
        self.on = False

    def start(self) -> None:
        self.on = True
        if self.count_calls:
            sys.setprofile(self._profile)

    def stop(self) -> None:
        self.on = False
        sys.setprofile(None)

    def _profile(self, frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and not frame.f_code.co_filename.startswith(_OWN):
            self.calls += 1

    def before_io_wait(self, timeout: float) -> None:
        self.passes += self.on

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps += self.on


class CountingMeter(Meter):
    """Counts from the first delta to ``response.done``."""

    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self.counter = counter

    def delta(self) -> None:
        if self.count == 0:
            self.counter.start()
        super().delta()

    def done(self) -> None:
        self.counter.stop()
        super().done()


Reader = Callable[[str, Meter], Awaitable[None]]
READERS: dict[str, Reader] = {
    "rtengine": run_rtengine,
    "trio-websocket": run_trio_websocket,
    "trio-websocket tuned": run_trio_websocket_tuned,
}


async def send_rtengine(base: str, counter: Counter, frames: int, step: float) -> None:
    async with (
        rtengine.RealtimeClient(base, api_key=KEY) as client,
        rtengine.open_conversation(client, SESSION) as conv,
    ):
        await trio.sleep(0.05)
        counter.start()
        for _ in range(frames):
            conv.send_audio(FRAME)
            await trio.sleep(step)
        counter.stop()


async def _send_bare(base: str, counter: Counter, frames: int, step: float, **options: Any) -> None:
    url = base.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
    headers = [(b"authorization", f"Bearer {KEY}".encode())]
    async with trio_websocket.open_websocket_url(url, extra_headers=headers, **options) as ws:
        await ws.send_message(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        await trio.sleep(0.05)
        counter.start()
        for _ in range(frames):
            audio = base64.b64encode(FRAME).decode("ascii")
            await ws.send_message(
                json.dumps({"type": "input_audio_buffer.append", "audio": audio}, separators=(",", ":"))
            )
            await trio.sleep(step)
        counter.stop()


async def send_trio_websocket_tuned(base: str, counter: Counter, frames: int, step: float) -> None:
    await _send_bare(base, counter, frames, step, receive_buffer_size=65536, message_queue_size=64)


Sender = Callable[[str, Counter, int, float], Awaitable[None]]
SENDERS: dict[str, Sender] = {
    "rtengine": send_rtengine,
    "trio-websocket": _send_bare,
    "trio-websocket tuned": send_trio_websocket_tuned,
}


def per(counter: Counter, n: int) -> dict[str, float]:
    row = {"passes": counter.passes / n, "steps": counter.steps / n}
    if counter.count_calls:
        row["calls"] = counter.calls / n
    return row


def run(messages: int, step: float, calls: bool) -> dict[str, dict[str, dict[str, float]]]:
    here = Path(__file__).parent
    command = [sys.executable, str(here / "blast_server.py"), "--events", "10", "--paced", str(messages)]
    server = subprocess.Popen([*command, "--step-ms", str(step * 1000)], stdout=subprocess.PIPE, text=True)
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        assert server.stdout is not None
        base = server.stdout.readline().strip()
        for name, reader in READERS.items():
            trio.run(reader, f"{base}/stepped/v1", Meter())  # warm-up: imports, first connection
            counter = Counter(calls)
            meter = CountingMeter(counter)
            trio.run(reader, f"{base}/stepped/v1", meter, instruments=[counter])
            if meter.count != messages:
                raise RuntimeError(f"{name} got {meter.count} of {messages} deltas")
            results[name] = {"read": per(counter, messages - 1)}
            counter = Counter(calls)
            trio.run(SENDERS[name], f"{base}/quiet/v1", counter, messages, step, instruments=[counter])
            results[name]["send"] = per(counter, messages)
            print(f"  {name} done", file=sys.stderr)
    finally:
        server.terminate()
        server.wait()
    return results


def table(results: dict[str, dict[str, dict[str, float]]], messages: int, step: float) -> str:
    calls = "calls" in next(iter(results.values()))["read"]
    keys = ["passes", "steps", *(["calls"] if calls else [])]
    head = " | ".join(f"{way} {key}" for way in ("read", "send") for key in keys)
    lines = [
        f"python {sys.version.split()[0]}, trio {trio.__version__}, trio-websocket {trio_websocket.__version__}; "
        f"{messages} messages each way, one per {step * 1000:g} ms; per message",
        "",
        f"| client | {head} |",
        "|---|" + "---|" * (2 * len(keys)),
    ]
    for name, row in results.items():
        cells = " | ".join(f"{row[way][key]:.2f}" for way in ("read", "send") for key in keys)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 messages each way (default 400)")
    parser.add_argument("--step-ms", type=float, default=5.0, help="between two messages (default 5)")
    parser.add_argument("--calls", action="store_true", help="also count Python calls (sys.setprofile; slower)")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    messages = 100 if args.quick else 400
    results = run(messages, args.step_ms / 1000, args.calls)
    print(table(results, messages, args.step_ms / 1000))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
