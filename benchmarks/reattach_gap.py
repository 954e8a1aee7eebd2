"""Sideband re-attach gap against the local server on loopback: sideband lost → restored, and a fresh join.

Run: ``python benchmarks/reattach_gap.py [--drops N] [--mode reset|eof|1011] [--json PATH]``. One WebRTC call (the
local server in this process, real sockets on 127.0.0.1); the server's ``drop_sideband`` fault drops its sideband
N times (each after the answer to one text, ``SPACING`` after the previous re-join is back). The gap is
``SidebandRestored.gap_ms``: from the moment the engine saw the loss until ``session.update`` was written on the
re-joined socket (the first re-join is immediate). A fresh join is the same span for the first join of N new calls
(``answer`` → ``session_update_sent``: handshake plus ``session.update``). Reported: median and p90 of each, and the
ratio of the medians, in one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

import trio

import rtengine
from rtengine.adapters._peer import open_peer_service
from rtengine.events import SessionUpdated, SidebandLost, SidebandRestored
from rtengine.server import Faults, ServerOptions, open_local_server

KEY = "sk-bench-reattach"
SESSION = rtengine.SessionConfig(instructions="benchmark")
#: Seconds between drops (and the re-join deadline of the client).
SPACING = 0.3


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


async def next_of(conv: rtengine.Conversation, kind: type) -> Any:
    async for event in conv.events:
        if isinstance(event, kind):
            return event
    raise RuntimeError(f"the conversation ended before {kind.__name__}")


async def measure(drops: int, mode: str) -> dict[str, Any]:
    options = ServerOptions(api_key=KEY, delta_interval=0.0)
    async with open_peer_service() as peers, open_local_server(options, peers=peers) as server:
        offerer = await peers.create_offer()
        offer = offerer.local_sdp
        await offerer.aclose()
        # A loss within sideband_rejoin_deadline of the last restore continues that streak's budget (and backoff):
        # the drops are spaced beyond it, so each one measures a first, immediate re-join.
        settings: dict[str, Any] = {"backoff_base": 0.05, "sideband_rejoin_deadline": SPACING}
        async with rtengine.RealtimeClient(server.base_url, api_key=KEY, **settings) as client:
            fresh: list[float] = []
            for _ in range(drops + 2):
                async with rtengine.open_conversation(client, SESSION, offer_sdp=offer) as conv:
                    await next_of(conv, SessionUpdated)
                    fresh.append((conv.timeline["session_update_sent"] - conv.timeline["answer"]) * 1000)
            fresh = fresh[2:]  # warm-up
            gaps: list[float] = []
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer) as conv:
                await next_of(conv, SessionUpdated)
                for n in range(1, drops + 1):
                    server.set_faults(Faults(drop_sideband=mode, drop_sideband_times=n))  # type: ignore[arg-type]
                    await conv.send_text(f"drop {n}")
                    await next_of(conv, SidebandLost)
                    restored = await next_of(conv, SidebandRestored)
                    gaps.append(restored.gap_ms)
                    await next_of(conv, SessionUpdated)
                    await trio.sleep(SPACING)
    return {
        "python": sys.version.split()[0],
        "mode": mode,
        "drops": drops,
        "gap_ms": {"median": statistics.median(gaps), "p90": p90(gaps)},
        "fresh_join_ms": {"median": statistics.median(fresh), "p90": p90(fresh)},
        "ratio_median": statistics.median(gaps) / statistics.median(fresh),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=30)
    parser.add_argument("--mode", choices=["reset", "eof", "1011"], default="reset")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    result = trio.run(measure, args.drops, args.mode)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
