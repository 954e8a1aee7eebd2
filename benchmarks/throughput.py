"""Server → app events per second, and client CPU per event, for rtengine and bare websocket clients side by side.

Run: ``python benchmarks/throughput.py [--quick] [--rounds R] [--json PATH]``.

The server is ``benchmarks/blast_server.py`` in its own process: every frame is encoded once at start-up (audio
deltas of 960 bytes of PCM16, 1280 base64 characters), so it only writes bytes; its CPU share of each run is
reported (read from ``/proc``), which shows it is not the bottleneck. Two schedules:

* ``client-bound`` — N deltas written as fast as the socket takes them: events per second from the moment the
  client's connection is open to the moment ``response.done`` is in the app's hands;
* ``paced`` — P deltas at one per millisecond: the client's CPU (``time.process_time`` of this process; the server
  is another process) per event, over the whole run.

Clients, each measured once per round in a rotating order (ratios are paired per round, then the median taken):

* ``rtengine`` — ``open_conversation(client, session)`` (a plain websocket conversation), reading ``conv.events``;
* ``trio-websocket`` — ``open_websocket_url`` with its defaults, ``json.loads`` per message;
* ``trio-websocket tuned`` — the same with 64 KiB reads (``receive_buffer_size``), ``max_message_size`` 16 MiB and
  ``message_queue_size=64``;
* ``websockets`` — the asyncio ``websockets`` library, ``json.loads`` per message (when installed);
* ``openai SDK`` — ``AsyncOpenAI().realtime.connect`` (asyncio, pydantic event models; when installed);
* ``openai-agents`` — the Agents SDK's realtime transport, ``OpenAIRealtimeWebSocketModel`` with a listener (asyncio
  ``websockets``; when installed).

Targets (issue #14): rtengine ≥ 0.85 × tuned trio-websocket events/s; paced CPU per event ≤ 1.05 × trio-websocket.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
import trio_websocket

import rtengine
from rtengine.events import AudioOut, ResponseDone

KEY = "sk-benchmark"
SESSION = rtengine.SessionConfig(instructions="benchmark")
_TICK = os.sysconf("SC_CLK_TCK")


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class Meter:
    """The clock and CPU readings of one run: when the connection was open, at the first delta, at the end."""

    def __init__(self) -> None:
        self.count = 0
        self.opened = self.first_wall = self.first_cpu = self.end_wall = self.end_cpu = 0.0

    def open(self) -> None:
        self.opened = time.perf_counter()

    def delta(self) -> None:
        if self.count == 0:
            self.first_wall, self.first_cpu = time.perf_counter(), time.process_time()
        self.count += 1

    def done(self) -> None:
        self.end_wall, self.end_cpu = time.perf_counter(), time.process_time()


# --- the clients: each feeds a Meter ---------------------------------------------------------------------------------


async def run_rtengine(base: str, meter: Meter) -> None:
    async with (
        rtengine.RealtimeClient(base, api_key=KEY) as client,
        rtengine.open_conversation(client, SESSION) as conv,
    ):
        meter.open()
        async for event in conv.events:
            if isinstance(event, AudioOut):
                meter.delta()
            elif isinstance(event, ResponseDone):
                meter.done()
                break


async def _trio_websocket(base: str, meter: Meter, **options: Any) -> None:
    url = base.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
    headers = [(b"authorization", f"Bearer {KEY}".encode())]
    async with trio_websocket.open_websocket_url(url, extra_headers=headers, **options) as ws:
        meter.open()
        while True:
            event = json.loads(await ws.get_message())
            kind = event["type"]
            if kind == "response.output_audio.delta":
                meter.delta()
            elif kind == "response.done":
                meter.done()
                return


async def run_trio_websocket(base: str, meter: Meter) -> None:
    await _trio_websocket(base, meter)


async def run_trio_websocket_tuned(base: str, meter: Meter) -> None:
    await _trio_websocket(base, meter, receive_buffer_size=65536, max_message_size=16 << 20, message_queue_size=64)


async def run_websockets(base: str, meter: Meter) -> None:
    import websockets

    url = base.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
    async with websockets.connect(url, additional_headers={"authorization": f"Bearer {KEY}"}, max_size=None) as ws:
        meter.open()
        async for message in ws:
            event = json.loads(message)
            kind = event["type"]
            if kind == "response.output_audio.delta":
                meter.delta()
            elif kind == "response.done":
                meter.done()
                return


async def run_openai(base: str, meter: Meter) -> None:
    import openai

    client = openai.AsyncOpenAI(api_key=KEY, websocket_base_url=base.replace("http://", "ws://"))
    async with client.realtime.connect(model="gpt-realtime") as conn:
        meter.open()
        async for event in conn:
            if event.type == "response.output_audio.delta":
                meter.delta()
            elif event.type == "response.done":
                meter.done()
                break
    await client.close()


async def run_agents(base: str, meter: Meter) -> None:
    """openai-agents' realtime transport (``OpenAIRealtimeWebSocketModel``: asyncio ``websockets``, every server event
    validated into the SDK's models, then turned into the transport's own events for its listeners)."""
    import asyncio

    from agents.realtime.model import RealtimeModelListener
    from agents.realtime.model_events import RealtimeModelEvent
    from agents.realtime.openai_realtime import OpenAIRealtimeWebSocketModel

    done = asyncio.Event()

    class Listener(RealtimeModelListener):
        async def on_event(self, event: RealtimeModelEvent) -> None:
            if event.type == "audio":
                meter.delta()
            elif event.type == "turn_ended":
                meter.done()
                done.set()

    model = OpenAIRealtimeWebSocketModel()
    model.add_listener(Listener())
    url = base.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
    await model.connect({"api_key": KEY, "url": url})
    meter.open()
    try:
        await done.wait()
    finally:
        await model.close()


@dataclass(frozen=True)
class Client:
    name: str
    run: Callable[[str, Meter], Coroutine[Any, Any, None]]
    loop: str  # "trio" or "asyncio"


def clients(include_sdk: bool) -> list[Client]:
    found = [
        Client("rtengine", run_rtengine, "trio"),
        Client("trio-websocket", run_trio_websocket, "trio"),
        Client("trio-websocket tuned", run_trio_websocket_tuned, "trio"),
    ]
    try:
        import websockets  # noqa: F401

        found.append(Client("websockets", run_websockets, "asyncio"))
    except ImportError:
        print("websockets is not installed: its column is skipped", file=sys.stderr)
    if include_sdk:
        try:
            import openai  # noqa: F401

            found.append(Client("openai SDK", run_openai, "asyncio"))
        except ImportError:
            print("openai is not installed: its column is skipped", file=sys.stderr)
        try:
            import agents  # noqa: F401

            found.append(Client("openai-agents", run_agents, "asyncio"))
        except ImportError:
            print("openai-agents is not installed: its column is skipped", file=sys.stderr)
    return found


@dataclass
class Sample:
    #: From the connection open to ``response.done`` in the app's hands.
    wall: float
    #: Client CPU from the first delta to ``response.done`` (per event: divided by the deltas after the first).
    cpu: float
    #: Client and server CPU over the whole run (connect to close).
    run_cpu: float
    server_cpu: float
    events: int


def measure(client: Client, base: str, server_pid: int) -> Sample:
    gc.collect()
    meter = Meter()
    cpu0, server0 = time.process_time(), server_cpu(server_pid)
    if client.loop == "trio":
        trio.run(client.run, base, meter)
    else:
        asyncio.run(client.run(base, meter))
    run_cpu = time.process_time() - cpu0
    cpu = (meter.end_cpu - meter.first_cpu) / max(meter.count - 1, 1)
    return Sample(meter.end_wall - meter.opened, cpu, run_cpu, server_cpu(server_pid) - server0, meter.count)


def run(rounds: int, events: int, paced: int, include_sdk: bool, only: list[str] | None = None) -> dict[str, Any]:
    here = Path(__file__).parent
    command = [sys.executable, str(here / "blast_server.py"), "--events", str(events), "--paced", str(paced)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        base = server.stdout.readline().strip()
        found = [c for c in clients(include_sdk) if not only or c.name in only or c.name == "trio-websocket tuned"]
        samples: dict[str, dict[str, list[Sample]]] = {"blast": {}, "paced": {}}
        for schedule, expected in (("blast", events), ("paced", paced)):
            url = f"{base}/{schedule}/v1"
            for client in found:  # warm-up: imports, first connections
                measure(client, url, server.pid)
            for r in range(rounds):
                shift = r % len(found)
                for client in found[shift:] + found[:shift]:
                    sample = measure(client, url, server.pid)
                    if sample.events != expected:
                        raise RuntimeError(f"{client.name} got {sample.events} of {expected} events")
                    samples[schedule].setdefault(client.name, []).append(sample)
            print(f"  {schedule} done", file=sys.stderr)
    finally:
        server.terminate()
        server.wait()
    return summarize(samples, events, paced)


def summarize(samples: dict[str, dict[str, list[Sample]]], events: int, paced: int) -> dict[str, Any]:
    blast, paced_samples = samples["blast"], samples["paced"]
    rows: dict[str, dict[str, float]] = {}
    for name, runs in blast.items():
        tuned = blast["trio-websocket tuned"]
        bare = paced_samples.get("trio-websocket", paced_samples["trio-websocket tuned"])
        rows[name] = {
            "events_per_s": statistics.median(events / s.wall for s in runs),
            "vs_tuned_paired": statistics.median(
                (events / s.wall) / (events / t.wall) for s, t in zip(runs, tuned, strict=True)
            ),
            "cpu_us_per_event": statistics.median(s.cpu * 1e6 for s in runs),
            "server_cpu_share": statistics.median(s.server_cpu / (s.server_cpu + s.run_cpu) for s in runs),
            "paced_cpu_us_per_event": statistics.median(s.cpu * 1e6 for s in paced_samples[name]),
            "paced_cpu_vs_bare_paired": statistics.median(
                s.cpu / b.cpu for s, b in zip(paced_samples[name], bare, strict=True)
            ),
        }
    rounds = len(next(iter(blast.values())))
    return {"events": events, "paced": paced, "rounds": rounds, "clients": rows}


def table(result: dict[str, Any]) -> str:
    lines = [
        f"python {sys.version.split()[0]}, trio {trio.__version__}, trio-websocket {trio_websocket.__version__}; "
        f"{result['events']} deltas client-bound, {result['paced']} paced at 1/ms; medians of {result['rounds']} "
        "rounds, ratios paired per round",
        "",
        "| client | events/s (client-bound) | × tuned trio-websocket | CPU/event (client-bound) | server CPU share | "
        "paced CPU/event | × trio-websocket (paced CPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in result["clients"].items():
        lines.append(
            f"| {name} | {row['events_per_s'] / 1000:.1f}k | {row['vs_tuned_paired']:.2f} | "
            f"{row['cpu_us_per_event']:.1f} µs | {row['server_cpu_share'] * 100:.0f} % | "
            f"{row['paced_cpu_us_per_event']:.1f} µs | "
            f"{row['paced_cpu_vs_bare_paired']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 5000 deltas (paced: 500)")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--no-sdk", action="store_true", help="skip the openai SDK and openai-agents columns")
    parser.add_argument("--only", action="append", help="measure only this client (repeatable; tuned is kept)")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    rounds, events, paced = (3, 5000, 500) if args.quick else (12, 20000, 2000)
    result = run(args.rounds or rounds, events, paced, not args.no_sdk, args.only)
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
