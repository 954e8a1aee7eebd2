"""The soak: many conversations one after another and many at once, on both transports; nothing may pile up.

Run: ``python benchmarks/soak.py [--quick] [--json PATH]`` (default ``benchmarks/results/soak.json``). The local
server runs as ``rtengine serve`` in its own process, reached over loopback. For each transport (websocket, WebRTC
with a background sideband) two phases run, each conversation one good turn (a text, a response read to
``response.done``) then ``close()``:

* ``sequential`` — N conversations one after another (300; 30 with ``--quick``);
* ``concurrent`` — M conversations at once (50; 10 with ``--quick``).

Measured per phase: the client's traced bytes still allocated after the phase (``tracemalloc``, after a full
collection; per conversation), the client's and the server's open file descriptors before and after (the server's
must be back to their baseline once it settled; the client's pooled HTTP connections live as long as the client, so
its process is checked once the client is closed), the server's resident memory before and after (per conversation:
what the server keeps of an ended conversation — its record is a ring, ended calls are forgotten), and the wall
time. The process exits 1 when a phase leaves file descriptors behind.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import trio
from time_to_answer import KEY, serve, without_candidates

import rtengine
from rtengine.adapters._peer import open_peer_service
from rtengine.events import ResponseDone, SessionUpdated

SESSION = rtengine.SessionConfig(instructions="soak")
RESULTS = Path(__file__).parent / "results" / "soak.json"


def fds(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def turn(client: rtengine.RealtimeClient, offer: str | None) -> None:
    async with rtengine.open_conversation(client, SESSION, offer_sdp=offer) as conv:
        async for event in conv.events:
            if isinstance(event, SessionUpdated):
                break
        await conv.send_text("hello")
        await conv.request_response()
        async for event in conv.events:
            if isinstance(event, ResponseDone):
                break


async def settle(pid: int, baseline: int) -> int:
    """The server's descriptors once back to ``baseline`` (or after 10 s)."""
    for _ in range(1000):
        if fds(pid) <= baseline:
            break
        await trio.sleep(0.01)
    return fds(pid)


async def phase(client: rtengine.RealtimeClient, offer: str | None, pid: int, kind: str, count: int) -> dict[str, Any]:
    await turn(client, offer)  # warm-up: the pooled connection, first-use caches
    server_fds, client_fds = await settle(pid, 0), fds()
    server_rss, before = rss_kib(pid), traced()
    start = trio.current_time()
    if kind == "sequential":
        for _ in range(count):
            await turn(client, offer)
    else:
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(turn, client, offer)
    elapsed = trio.current_time() - start
    after_fds = await settle(pid, server_fds)
    return {
        "conversations": count,
        "seconds": round(elapsed, 2),
        "client_retained_bytes_per_conversation": (traced() - before) // count,
        "client_fds": [client_fds, fds()],
        "server_fds": [server_fds, after_fds],
        "server_rss_kib": [server_rss, rss_kib(pid)],
        "server_rss_bytes_per_conversation": max(0, rss_kib(pid) - server_rss) * 1024 // count,
    }


async def run(sequential: int, concurrent: int) -> dict[str, Any]:
    async with open_peer_service() as peers:
        offer_peer = await peers.create_offer()
        offer = without_candidates(offer_peer.local_sdp)
        await offer_peer.aclose()
    results: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        process, base_url = await nursery.start(serve, 0.0)
        async with rtengine.RealtimeClient(base_url, api_key=KEY) as client:  # first use: lazily opened descriptors
            await turn(client, None)
            await turn(client, offer)
        process_fds = fds()
        async with rtengine.RealtimeClient(base_url, api_key=KEY) as client:
            tracemalloc.start()
            try:
                for transport, sdp in (("websocket", None), ("webrtc", offer)):
                    for kind, count in (("sequential", sequential), ("concurrent", concurrent)):
                        results[f"{transport} {kind}"] = await phase(client, sdp, process.pid, kind, count)
            finally:
                tracemalloc.stop()
        # The client's pooled HTTP connections live as long as the client: its descriptors count once it is closed.
        results["client process fds"] = {"before the client": process_fds, "after it closed": fds()}
        process.send_signal(signal.SIGINT)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 in sequence, 10 at once")
    parser.add_argument("--json", default=str(RESULTS), help=f"write the results here (default: {RESULTS})")
    args = parser.parse_args()
    sequential, concurrent = (30, 10) if args.quick else (300, 50)
    results = trio.run(run, sequential, concurrent)
    print(f"python {sys.version.split()[0]}; {sequential} conversations in sequence, {concurrent} at once")
    print("| phase | s | client retained B/conv | client fds | server fds | server RSS KiB | server B/conv |")
    print("|---|---|---|---|---|---|---|")
    process_fds = results.pop("client process fds")
    leaked = process_fds["after it closed"] > process_fds["before the client"]
    for name, row in results.items():
        (c0, c1), (s0, s1), (r0, r1) = row["client_fds"], row["server_fds"], row["server_rss_kib"]
        leaked |= s1 > s0
        print(
            f"| {name} | {row['seconds']} | {row['client_retained_bytes_per_conversation']} | {c0} → {c1} |"
            f" {s0} → {s1} | {r0} → {r1} | {row['server_rss_bytes_per_conversation']} |"
        )
    before, after = process_fds["before the client"], process_fds["after it closed"]
    print(f"client process fds: {before} before the client, {after} after it closed")
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"python": sys.version.split()[0], **results, "client process fds": process_fds}
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return 1 if leaked else 0


if __name__ == "__main__":
    sys.exit(main())
