"""Time to SDP answer: rtengine's background sideband against the bare POST (the floor) and the inline join.

Run: ``python benchmarks/time_to_answer.py [--quick] [--json PATH]``.

The local realtime server runs as ``rtengine serve`` in its own process (the provider is remote in real life; in one
process its aiortc work and the client would share a CPU and a cache), reached over loopback. The modes run side by
side in one run, interleaved call by call so that machine noise hits every mode alike:

* ``floor`` — a bare ``POST /v1/realtime/calls`` of the same multipart bytes on the same warm httpx client;
* ``background`` — ``open_conversation(..., sideband="background")`` until the block starts (answer in hand);
* ``inline`` — ``open_conversation(..., sideband="inline")``: the pre-#20715 behaviour, join before the answer.

Then rtengine as the media peer (``media=``): ``native floor`` (a bare POST of an offer made beforehand), ``native
cold`` (create and gather the offer, then POST) and ``native prewarmed`` (a spare peer from the
:class:`~rtengine.webrtc.PrewarmPool`, then POST), in an order that rotates every round. Target: pre-warmed
answer − bare POST ≤ 1 ms (median).

Like ``timeit``, the garbage collector is off inside each timed call; between calls the call is hung up and a
collection runs, so no call pays for the previous one's garbage.

Per round: fifteen floor/background pairs, then one inline call (inline costs up to 3 s, the others ~10 ms), so
floor and background get fifteen times the samples. They need them: the local server's answer time (real aiortc
work) spreads over ≈4 ms (p10 ≈ 6.5 ms, p90 ≈ 10.5 ms), so the median of 90 calls moves by ≈2 % between runs,
as much as the overhead being measured; with 450 it moves by ≈1 %. Inside a pair the order alternates: a
call's latency depends measurably on its position and on the call before it (up to ≈0.8 ms here), so a fixed
order would bias the ratio. Besides the ratio of medians, the table gives the median of the per-pair ratios
(each background call divided by the floor call of its pair), which cancels slow drift.

At sideband accept delays of 0, 250, 1000 and 3000 ms (one server process per delay). Each call is hung up after it
is measured (outside the timing) so answering peers do not pile up. Targets: background/floor ≤ 1.05 at every delay;
background/inline ≤ 0.05 at 1000 ms. Ratios, not absolute numbers, are what to read on a shared machine.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import trio

import rtengine
from rtengine import webrtc
from rtengine.adapters._peer import open_peer_service
from rtengine.protocol import call_id_from_location, multipart_body

KEY = "sk-benchmark"
MODES = ("floor", "background", "inline")
NATIVE_MODES = ("native floor", "native cold", "native prewarmed")
#: floor/background pairs measured per inline call (they cost ~10 ms, an inline call up to 3 s).
FAST_REPEATS = 15
#: media-peer calls per mode, per inline call of the main run.
NATIVE_REPEATS = 3


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


async def timed(measure: Callable[[], Awaitable[tuple[float, str]]], settle: Callable[[str], Awaitable[None]]) -> float:
    """One timed call (GC off inside it, as timeit does), then the settling outside the timing."""
    gc.disable()
    try:
        took, call_id = await measure()
    finally:
        gc.enable()
    await settle(call_id)
    return took


def without_candidates(sdp: str) -> str:
    """The offer without ICE candidates (valid: the API is ICE-lite). Answering peers then have nothing to check,
    so no background ICE traffic adds noise to the next measurement. Every mode posts the same bytes."""
    lines = sdp.split("\r\n")
    return "\r\n".join(line for line in lines if not line.startswith(("a=candidate", "a=end-of-candidates")))


async def serve(delay: float, task_status: trio.TaskStatus[tuple[trio.Process, str]]) -> None:
    """``rtengine serve`` in its own process (the provider is remote in real life), until cancelled."""
    command = [
        sys.executable,
        "-m",
        "rtengine",
        "serve",
        "--port",
        "0",
        "--api-key",
        KEY,
        "--delta-interval",
        "0",
        "--sideband-accept-delay",
        str(delay),
    ]
    async with trio.open_nursery() as nursery:
        run_server = functools.partial(trio.run_process, command, stdout=subprocess.PIPE, check=False)
        process: trio.Process = await nursery.start(run_server)
        assert process.stdout is not None
        line = b""
        while not line.endswith(b"\n"):
            line += await process.stdout.receive_some(1)
        task_status.started((process, line.decode().strip()))


async def run_native(calls: int, warmup: int) -> list[dict[str, object]]:
    """rtengine as the media peer: the floor (a bare POST of an offer made beforehand), a cold offer (create, gather,
    POST), and a pre-warmed offer (a spare peer from the pool, POST), interleaved."""
    session = rtengine.SessionConfig(instructions="benchmark")
    samples: dict[str, list[float]] = {mode: [] for mode in NATIVE_MODES}
    async with webrtc.open_media_engine() as engine, trio.open_nursery() as nursery:
        process, base_url = await nursery.start(serve, 0.0)
        async with rtengine.RealtimeClient(base_url, api_key=KEY) as client:
            http = client.http()
            headers = dict(client.auth_headers())
            async with webrtc.open_prewarm_pool(engine, client=client, max_age=60) as pool:
                cold = webrtc.Media(engine)
                warm = webrtc.Media(engine, pool=pool)

                async def native(media: webrtc.Media) -> tuple[float, str]:
                    start = time.perf_counter_ns()
                    async with rtengine.open_conversation(client, session, media=media) as conv:
                        took = (time.perf_counter_ns() - start) / 1e6
                        call_id = conv.call_id
                    assert call_id is not None
                    return took, call_id

                async def floor() -> tuple[float, str]:
                    peer = await engine.create_offer()  # made before the clock starts
                    body = multipart_body(peer.local_sdp, session.call_session_json())
                    post_headers = {**headers, "content-type": body.content_type}
                    start = time.perf_counter_ns()
                    response = await http.post(client.calls_url, content=body.content, headers=post_headers)
                    took = (time.perf_counter_ns() - start) / 1e6
                    await peer.aclose()
                    return took, call_id_from_location(response.headers["location"])

                measures: dict[str, Callable[[], Awaitable[tuple[float, str]]]] = {
                    "native floor": floor,
                    "native cold": lambda: native(cold),
                    "native prewarmed": lambda: native(warm),
                }
                for i in range(warmup + calls):
                    # Rotate the order every round: a call's latency depends on the call before it.
                    shift = i % len(NATIVE_MODES)
                    for mode in NATIVE_MODES[shift:] + NATIVE_MODES[:shift]:
                        await pool.wait_ready()
                        gc.collect()
                        gc.disable()
                        try:
                            took, call_id = await measures[mode]()
                        finally:
                            gc.enable()
                        await http.post(f"{client.calls_url}/{call_id}/hangup", headers=headers)
                        await trio.sleep(0.002)
                        if i >= warmup:
                            samples[mode].append(took)
        process.send_signal(signal.SIGINT)
    return [
        {
            "mode": mode,
            "sideband_delay_ms": 0,
            "median_ms": statistics.median(samples[mode]),
            "p90_ms": p90(samples[mode]),
            "n": len(samples[mode]),
        }
        for mode in NATIVE_MODES
    ]


async def run(delays: list[float], calls: int, warmup: int) -> list[dict[str, object]]:
    results = []
    async with open_peer_service() as peers:
        offer_peer = await peers.create_offer()
        offer = without_candidates(offer_peer.local_sdp)
        await offer_peer.aclose()
        for delay in delays:
            async with trio.open_nursery() as nursery:
                process, base_url = await nursery.start(serve, delay)
                results.extend(await measure_delay(base_url, offer, delay, calls, warmup))
                process.send_signal(signal.SIGINT)
            print(f"  sideband delay {delay * 1000:.0f} ms done", file=sys.stderr)
    return results


async def measure_delay(base_url: str, offer: str, delay: float, calls: int, warmup: int) -> list[dict[str, object]]:
    session = rtengine.SessionConfig(instructions="benchmark")
    async with rtengine.RealtimeClient(base_url, api_key=KEY) as client:
        body = multipart_body(offer, session.call_session_json())
        floor_headers = {**client.auth_headers(), "content-type": body.content_type}
        http = client.http()

        async def floor() -> tuple[float, str]:
            start = time.perf_counter_ns()
            response = await http.post(client.calls_url, content=body.content, headers=floor_headers)
            took = (time.perf_counter_ns() - start) / 1e6
            assert response.status_code == 201, response.text
            return took, call_id_from_location(response.headers["location"])

        def conversation(mode: str) -> Callable[[], Awaitable[tuple[float, str]]]:
            async def measure() -> tuple[float, str]:
                start = time.perf_counter_ns()
                async with rtengine.open_conversation(client, session, offer_sdp=offer, sideband=mode) as conv:  # type: ignore[arg-type]
                    took = (time.perf_counter_ns() - start) / 1e6
                    call_id = conv.call_id
                assert call_id is not None
                return took, call_id

            return measure

        async def settle(call_id: str) -> None:
            """Outside the timing: hang the call up, let things go idle, collect garbage."""
            response = await http.post(f"{client.calls_url}/{call_id}/hangup", headers=floor_headers)
            assert response.status_code in (200, 404), response.text
            await trio.sleep(0.002)
            gc.collect()

        measures = {"floor": floor, "background": conversation("background"), "inline": conversation("inline")}
        samples: dict[str, list[float]] = {mode: [] for mode in MODES}
        pairs: list[float] = []
        for i in range(warmup + calls):
            # floor and background are cheap: many pairs per round, then inline once. The order inside a pair
            # alternates (floor first, then background first, …): a call's latency depends measurably on its
            # position and on the call before it, so a fixed order would bias the comparison.
            for pair in range(FAST_REPEATS):
                order = ("floor", "background") if (i + pair) % 2 == 0 else ("background", "floor")
                took_in_pair: dict[str, float] = {}
                for mode in order:
                    took_in_pair[mode] = await timed(measures[mode], settle)
                if i >= warmup:
                    for mode, took in took_in_pair.items():
                        samples[mode].append(took)
                    pairs.append(took_in_pair["background"] / took_in_pair["floor"])
            took = await timed(measures["inline"], settle)
            if i >= warmup:
                samples["inline"].append(took)
    results: list[dict[str, object]] = [
        {
            "mode": mode,
            "sideband_delay_ms": round(delay * 1000),
            "median_ms": statistics.median(samples[mode]),
            "p90_ms": p90(samples[mode]),
            "n": len(samples[mode]),
        }
        for mode in MODES
    ]
    results.append(
        {
            "mode": "background/floor paired",
            "sideband_delay_ms": round(delay * 1000),
            "median_ratio": statistics.median(pairs),
            "n": len(pairs),
        }
    )
    return results


def table(results: list[dict[str, object]]) -> tuple[str, dict[str, float]]:
    by = {(r["mode"], r["sideband_delay_ms"]): r for r in results}
    delays = sorted({int(str(r["sideband_delay_ms"])) for r in results})
    lines = [
        "| sideband delay | floor median / p90 | background median / p90 | inline median / p90 "
        "| background/floor | paired background/floor | background/inline |",
        "|---|---|---|---|---|---|---|",
    ]
    ratios: dict[str, float] = {}
    for delay in delays:
        cells = []
        for mode in MODES:
            r = by[(mode, delay)]
            cells.append(f"{float(str(r['median_ms'])):.2f} / {float(str(r['p90_ms'])):.2f} ms")
        floor = float(str(by[("floor", delay)]["median_ms"]))
        background = float(str(by[("background", delay)]["median_ms"]))
        inline = float(str(by[("inline", delay)]["median_ms"]))
        ratios[f"background/floor@{delay}"] = background / floor
        ratios[f"background/inline@{delay}"] = background / inline
        paired = float(str(by[("background/floor paired", delay)]["median_ratio"]))
        ratios[f"paired background/floor@{delay}"] = paired
        row = f"| {delay} ms | {' | '.join(cells)} | {background / floor:.3f} | {paired:.3f} "
        lines.append(row + f"| {background / inline:.3f} |")
    return "\n".join(lines), ratios


def print_native(native: list[dict[str, object]]) -> float:
    """Print the media-peer table; return pre-warmed answer minus bare POST (medians, ms)."""
    by_mode = {str(r["mode"]): r for r in native}
    print("\n| rtengine as the media peer | median / p90 |\n|---|---|")
    for mode in NATIVE_MODES:
        median, p90_ms = float(str(by_mode[mode]["median_ms"])), float(str(by_mode[mode]["p90_ms"]))
        print(f"| {mode} | {median:.2f} / {p90_ms:.2f} ms |")
    gap = float(str(by_mode["native prewarmed"]["median_ms"])) - float(str(by_mode["native floor"]["median_ms"]))
    print(f"\npre-warmed answer - bare POST: {gap:.2f} ms (target <= 1 ms)")
    return gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="5 inline calls and 75 floor/background pairs per delay, 1 warm-up"
    )
    parser.add_argument(
        "--calls",
        type=int,
        default=30,
        help="measured inline calls per delay (default 30; floor and background get 15 times as many)",
    )
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--native-only", action="store_true", help="only the media-peer modes")
    args = parser.parse_args()
    calls, warmup = (5, 1) if args.quick else (args.calls, 3)
    delays = [0.0, 0.25, 1.0, 3.0]
    native = trio.run(run_native, calls * NATIVE_REPEATS, warmup)
    if args.native_only:
        print_native(native)
        return
    results = trio.run(run, delays, calls, warmup)
    text, ratios = table(results)
    print(
        f"python {sys.version.split()[0]}; per delay: {calls} inline calls and {calls * FAST_REPEATS} floor and "
        f"background calls, after {warmup} warm-up rounds"
    )
    print(text)
    worst = max(v for k, v in ratios.items() if k.startswith("background/floor"))
    at_1000 = ratios["background/inline@1000"]
    print(
        f"\nworst background/floor: {worst:.3f} (target <= 1.05); background/inline at 1000 ms: {at_1000:.3f} "
        "(target <= 0.05)"
    )
    ratios["native prewarmed - floor (ms)"] = print_native(native)
    if args.json:
        with open(args.json, "w") as fh:
            record = {"python": sys.version.split()[0], "calls": calls, "results": results + native, "ratios": ratios}
            json.dump(record, fh, indent=2)


if __name__ == "__main__":
    main()
