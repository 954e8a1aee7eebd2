"""Sideband join: from the call created to ``session.updated`` in the app's hands, rtengine against bare
trio-websocket.

Run: ``python benchmarks/join.py [--quick] [--calls N] [--json PATH]``.

The local realtime server runs as ``rtengine serve`` in its own process, reached over loopback. Each call posts the
same offer (no ICE candidates, so no media traffic adds noise) and is measured in one of two modes, in pairs whose
order alternates:

* ``trio-websocket`` — a bare ``POST /v1/realtime/calls`` on the client's warm httpx client; from its answer:
  ``open_websocket_url`` (defaults) to the call's sideband, send ``session.update`` (the same payload rtengine
  sends), read until ``session.updated``;
* ``rtengine`` — ``open_conversation(client, session, offer_sdp=…)`` (background sideband); from the moment the
  block starts (the call is created) until ``SessionUpdated`` comes out of ``conv.events``.

The garbage collector is off inside each timed call; the call is hung up and its socket closed outside the timing.
The table gives medians and p90s, the ratio of medians and the median of the per-pair ratios. Target (issue #14):
≤ 1.10 × trio-websocket.
"""

from __future__ import annotations

import argparse
import gc
import json
import signal
import statistics
import sys
import time
from pathlib import Path

import trio
import trio_websocket
from time_to_answer import KEY, p90, serve, without_candidates

import rtengine
from rtengine.adapters._peer import open_peer_service
from rtengine.events import SessionUpdated
from rtengine.protocol import call_id_from_location, encode, multipart_body, session_update, sideband_url

SESSION = rtengine.SessionConfig(instructions="benchmark")
MODES = ("trio-websocket", "rtengine")


class Bench:
    def __init__(self, client: rtengine.RealtimeClient, offer: str) -> None:
        self.client = client
        self.http = client.http()
        self.body = multipart_body(offer, SESSION.call_session_json())
        self.headers = dict(client.auth_headers())
        self.offer = offer

    async def bare(self) -> tuple[float, str]:
        headers = {**self.headers, "content-type": self.body.content_type}
        response = await self.http.post(self.client.calls_url, content=self.body.content, headers=headers)
        call_id = call_id_from_location(response.headers["location"])
        created = time.perf_counter()
        url = sideband_url(self.client.realtime_base_url, call_id)
        ws_headers = [(k.encode(), v.encode()) for k, v in self.headers.items()]
        async with trio_websocket.open_websocket_url(url, extra_headers=ws_headers) as ws:
            await ws.send_message(encode(session_update(SESSION)))
            while json.loads(await ws.get_message())["type"] != "session.updated":
                pass
            took = time.perf_counter() - created
        return took * 1000, call_id

    async def rtengine(self) -> tuple[float, str]:
        async with rtengine.open_conversation(self.client, SESSION, offer_sdp=self.offer, hangup=False) as conv:
            created = time.perf_counter()
            async for event in conv.events:
                if isinstance(event, SessionUpdated):
                    break
            took = time.perf_counter() - created
            call_id = conv.call_id
        assert call_id is not None
        return took * 1000, call_id

    async def timed(self, mode: str) -> float:
        gc.collect()
        gc.disable()
        try:
            took, call_id = await (self.bare() if mode == "trio-websocket" else self.rtengine())
        finally:
            gc.enable()
        await self.http.post(f"{self.client.calls_url}/{call_id}/hangup", headers=self.headers)
        await trio.sleep(0.002)
        return took


async def run(calls: int, warmup: int) -> dict[str, object]:
    async with open_peer_service() as peers:
        offer_peer = await peers.create_offer()
        offer = without_candidates(offer_peer.local_sdp)
        await offer_peer.aclose()
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    pairs: list[float] = []
    async with trio.open_nursery() as nursery:
        process, base_url = await nursery.start(serve, 0.0)
        async with rtengine.RealtimeClient(base_url, api_key=KEY) as client:
            bench = Bench(client, offer)
            for i in range(warmup + calls):
                order = MODES if i % 2 == 0 else MODES[::-1]
                took = {mode: await bench.timed(mode) for mode in order}
                if i >= warmup:
                    for mode in MODES:
                        samples[mode].append(took[mode])
                    pairs.append(took["rtengine"] / took["trio-websocket"])
        process.send_signal(signal.SIGINT)
    rows = {mode: {"median_ms": statistics.median(v), "p90_ms": p90(v), "n": len(v)} for mode, v in samples.items()}
    return {
        "modes": rows,
        "ratio_of_medians": rows["rtengine"]["median_ms"] / rows["trio-websocket"]["median_ms"],
        "paired_ratio_median": statistics.median(pairs),
    }


def table(result: dict[str, object]) -> str:
    modes = result["modes"]
    assert isinstance(modes, dict)
    lines = [
        f"python {sys.version.split()[0]}, trio-websocket {trio_websocket.__version__}; call created → "
        "session.updated in the app's hands",
        "",
        "| client | median | p90 | n |",
        "|---|---|---|---|",
    ]
    for mode, row in modes.items():
        lines.append(f"| {mode} | {row['median_ms']:.2f} ms | {row['p90_ms']:.2f} ms | {row['n']} |")
    lines.append(
        f"\nrtengine / trio-websocket: {result['ratio_of_medians']:.3f} (ratio of medians), "
        f"{result['paired_ratio_median']:.3f} (median of paired ratios)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 pairs")
    parser.add_argument("--calls", type=int)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    calls = args.calls or (10 if args.quick else 60)
    result = trio.run(run, calls, 3)
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
