"""How long leaving a conversation's block takes, against a healthy server and one that never answers CLOSE.

Run: ``python benchmarks/close.py [--quick] [--json PATH]``.

The local realtime server runs as ``rtengine serve`` in its own process (twice: as is, and with
``--ignore-client-close``, a dead peer that never answers the client's CLOSE and keeps the TCP open), reached over
loopback. Each round opens a plain websocket conversation with default settings (``RealtimeClient`` entered with
``async with``, ``close_timeout`` 1 s), waits for ``session.updated``, then times leaving the
``open_conversation`` block. Reported per server: the median and p90 of leaving the block, and of leaving the
client's block afterwards (which waits for the close handshakes still pending, bounded by ``close_timeout``).

Target (issue #14): leaving the block ≤ 100 ms with default settings when the server never answers CLOSE, while a
healthy server still gets the whole handshake (its record shows the client's 1000 and the reply: see
``tests/engine/test_close_handoff.py``).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import trio
from time_to_answer import KEY, p90

import rtengine
from rtengine.events import SessionUpdated

SESSION = rtengine.SessionConfig(instructions="benchmark")


async def serve(ignore_close: bool, task_status: trio.TaskStatus[tuple[trio.Process, str]]) -> None:
    """``rtengine serve`` in its own process, until cancelled."""
    command = [sys.executable, "-m", "rtengine", "serve", "--port", "0", "--api-key", KEY, "--delta-interval", "0"]
    if ignore_close:
        command.append("--ignore-client-close")
    async with trio.open_nursery() as nursery:
        run_server = functools.partial(trio.run_process, command, stdout=subprocess.PIPE, check=False)
        process: trio.Process = await nursery.start(run_server)
        assert process.stdout is not None
        line = b""
        while not line.endswith(b"\n"):
            line += await process.stdout.receive_some(1)
        task_status.started((process, line.decode().strip()))


async def one_round(base_url: str) -> tuple[float, float]:
    """Leaving the conversation's block, then leaving the client's block (ms)."""
    async with rtengine.RealtimeClient(base_url, api_key=KEY) as client:
        async with rtengine.open_conversation(client, SESSION) as conv:
            async for event in conv.events:
                if isinstance(event, SessionUpdated):
                    break
            start = time.perf_counter()
        left = time.perf_counter() - start
        start = time.perf_counter()
    return left * 1000, (time.perf_counter() - start) * 1000


async def run(rounds: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name, ignore_close in (("healthy server", False), ("server never answers CLOSE", True)):
        async with trio.open_nursery() as nursery:
            process, base_url = await nursery.start(serve, ignore_close)
            await one_round(base_url)  # warm-up
            left, exits = [], []
            for _ in range(rounds):
                block, client = await one_round(base_url)
                left.append(block)
                exits.append(client)
            process.terminate()
        results[name] = {
            "leave_block_median_ms": statistics.median(left),
            "leave_block_p90_ms": p90(left),
            "leave_client_median_ms": statistics.median(exits),
            "leave_client_p90_ms": p90(exits),
            "n": rounds,
        }
        print(f"  {name} done", file=sys.stderr)
    return results


def table(results: dict[str, dict[str, float]]) -> str:
    lines = [
        f"python {sys.version.split()[0]}, rtengine defaults (close_timeout 1 s); medians and p90 of "
        f"{next(iter(results.values()))['n']} rounds",
        "",
        "| server | leaving the conversation block | then leaving the client block |",
        "|---|---|---|",
    ]
    for name, row in results.items():
        lines.append(
            f"| {name} | {row['leave_block_median_ms']:.1f} ms (p90 {row['leave_block_p90_ms']:.1f}) | "
            f"{row['leave_client_median_ms']:.1f} ms (p90 {row['leave_client_p90_ms']:.1f}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds per server")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    results = trio.run(run, args.rounds or (5 if args.quick else 20))
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
