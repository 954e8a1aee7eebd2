"""Re-dial rotation gap against the local server on loopback: rtengine as the media peer, a prewarmed offer.

Run: ``python benchmarks/redial_gap.py [--rotations N] [--cap SECONDS] [--no-pool] [--json PATH]``. One WebRTC
conversation (the local server in this process, real ICE/DTLS/RTP and websockets on 127.0.0.1) whose session is
capped at ``--cap`` seconds, so the engine re-dials it N times (``rotate_margin`` = 40 % of the cap). The app's
sink stamps every 20 ms frame it receives. Reported, median and p90 over the rotations:

* ``audio_gap_ms``: the longest time with no audio frame delivered to the app within ±1 s of each rotation (the
  new call is connected before the old one is let go, so this is the jitter of the switch);
* ``steady_gap_ms``: the same measure in windows away from any rotation (the floor: RTP's own jitter here);
* ``input_gap_ms``: ``SessionRotated.gap_ms``, how long no input could be written (old sideband stopped → the
  history replayed on the new one and its loop running);
* ``redial_ms``: the whole re-dial, from the timeline (``rotating`` → ``rotated``): offer, POST, connect, join,
  handoff.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from typing import Any

import trio

import rtengine
from rtengine import webrtc
from rtengine.events import Closed, Error, SessionRotated
from rtengine.server import ServerOptions, open_local_server

KEY = "sk-bench-redial"
SESSION = rtengine.SessionConfig(instructions="benchmark", turn_detection="disabled")
#: Half-width of the window around a rotation in which the audio gap is measured.
WINDOW = 1.0


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "p90": round(p90(values), 1), "max": round(max(values), 1)}


def longest_gap(stamps: list[float], start: float, end: float) -> float:
    near = [t for t in stamps if start <= t <= end]
    return max((b - a for a, b in itertools.pairwise(near)), default=end - start) * 1000


async def measure(rotations: int, cap: float, use_pool: bool) -> dict[str, Any]:
    stamps: list[float] = []

    def sink(pcm16: bytes) -> None:
        stamps.append(trio.current_time())

    options = ServerOptions(api_key=KEY, delta_interval=0.0, greeting_ms=0, session_max_seconds=cap)
    async with (
        webrtc.open_media_engine(loopback=True) as engine,
        open_local_server(options, peers=engine) as server,
        rtengine.RealtimeClient(server.base_url, api_key=KEY) as client,
        webrtc.open_prewarm_pool(engine, client=client) as pool,
    ):
        source = webrtc.tone_source(440.0, seconds=cap * (rotations + 3))
        media = webrtc.Media(engine, source=source, sink=sink, pool=pool if use_pool else None)
        rotated: list[tuple[float, SessionRotated]] = []
        async with rtengine.open_conversation(client, SESSION, media=media, rotate_margin=cap * 0.4) as conv:
            async for event in conv.events:
                if isinstance(event, Error | Closed):
                    raise RuntimeError(f"the conversation did not go on: {event}")
                if isinstance(event, SessionRotated):
                    rotated.append((trio.current_time(), event))
                    if len(rotated) == rotations:
                        break
            await trio.sleep(WINDOW + 0.2)
            timeline = dict(conv.timeline)
            started_at = conv.started_at
            handed_out = pool.handed_out
    at = [started_at + timeline["rotated" if k == 0 else f"rotated_{k + 1}"] for k in range(rotations)]
    audio = [longest_gap(stamps, t - WINDOW, t + WINDOW) for t in at]
    quiet = [(a + b) / 2 for a, b in itertools.pairwise(at)]  # midway between two rotations
    steady = [longest_gap(stamps, t - WINDOW / 2, t + WINDOW / 2) for t in quiet]
    names = ["" if k == 0 else f"_{k + 1}" for k in range(rotations)]
    redial = [(timeline[f"rotated{n}"] - timeline[f"rotating{n}"]) * 1000 for n in names]
    return {
        "python": sys.version.split()[0],
        "rotations": rotations,
        "cap_s": cap,
        "prewarmed": use_pool,
        "pool_spares_used": handed_out,
        "audio_gap_ms": summary(audio),
        "steady_gap_ms": summary(steady),
        "input_gap_ms": summary([event.gap_ms for _, event in rotated]),
        "redial_ms": summary(redial),
        "goal_ms": 500,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rotations", type=int, default=10)
    parser.add_argument("--cap", type=float, default=5.0)
    parser.add_argument("--no-pool", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    result = trio.run(measure, args.rotations, args.cap, not args.no_pool)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
