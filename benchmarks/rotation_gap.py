"""Websocket rotation and reconnect gaps against the local server on loopback.

Run: ``python benchmarks/rotation_gap.py [--rotations N] [--drops N] [--json PATH]``. The local server runs in this
process, real sockets on 127.0.0.1.

* **Rotation.** The server caps sessions at ``CAP`` seconds; the conversation (``rotate_margin=MARGIN``) requests
  responses back to back, each streaming ``AUDIO_MS`` of audio, the server pausing ``--delta`` s (default ``DELTA``)
  between streamed events (each audio delta carries 50 ms), so audio
  is always flowing or about to. The gap around a rotation is the time with no audio delivered to the app: from the
  last ``AudioOut`` before ``SessionRotated`` to the first one after it. The baseline is the same span between two
  consecutive responses without a rotation in between (the app's own request/response turnaround). Also reported:
  ``SessionRotated.gap_ms`` (no input could be written: old session stopped → new one took over).
* **Reconnect.** ``reconnect=True``; the server drops the socket (a reset) after the answer to a text, N times, the
  history growing each time. The gap is ``SessionRestored.gap_ms``: from the drop until the replay was accepted by
  the new session and the queued inputs could go out.

Reported: median and p90 of each, in one run; the goal is a rotation audio gap under 250 ms.
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
from rtengine.events import AudioOut, ConnectionDropped, ResponseDone, SessionRestored, SessionRotated, Started
from rtengine.server import Faults, ServerOptions, open_local_server

KEY = "sk-bench-rotation"
SESSION = rtengine.SessionConfig(instructions="benchmark", turn_detection="disabled")
CAP = 4.0
MARGIN = 1.5
DELTA = 0.02
AUDIO_MS = 300


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "p90": round(p90(values), 2), "n": len(values)}


async def rotations(count: int, delta: float) -> dict[str, Any]:
    options = ServerOptions(api_key=KEY, delta_interval=delta, audio_ms=AUDIO_MS, session_max_seconds=CAP)
    audio_gaps: list[float] = []
    baseline: list[float] = []
    input_gaps: list[float] = []
    async with (
        open_peer_service() as peers,
        open_local_server(options, peers=peers) as server,
        rtengine.RealtimeClient(server.base_url, api_key=KEY) as client,
        rtengine.open_conversation(client, SESSION, rotate_margin=MARGIN) as conv,
    ):
        last_audio: float | None = None
        rotated = False
        async for event in conv.events:
            now = trio.current_time()
            if isinstance(event, Started | ResponseDone):
                await conv.request_response()
            elif isinstance(event, SessionRotated):
                rotated = True
                input_gaps.append(event.gap_ms)
            elif isinstance(event, AudioOut):
                if last_audio is not None and now - last_audio > delta * 2.5:  # between two responses
                    (audio_gaps if rotated else baseline).append((now - last_audio) * 1000)
                    rotated = False
                    if len(audio_gaps) >= count:
                        break
                last_audio = now
        await conv.close()
    return {
        "audio_gap_ms": summary(audio_gaps),
        "baseline_between_responses_ms": summary(baseline),
        "input_gap_ms": summary(input_gaps),
    }


async def reconnects(count: int) -> dict[str, Any]:
    options = ServerOptions(api_key=KEY, delta_interval=0.0)
    gaps: list[float] = []
    items: list[int] = []
    settings: dict[str, Any] = {"backoff_base": 0.05, "sideband_rejoin_deadline": 0.3}
    async with (
        open_peer_service() as peers,
        open_local_server(options, peers=peers) as server,
        rtengine.RealtimeClient(server.base_url, api_key=KEY, **settings) as client,
        rtengine.open_conversation(client, SESSION, reconnect=True) as conv,
    ):
        for n in range(count):
            await conv.send_text(f"turn {n}")
            await conv.request_response()
            await next_of(conv, ResponseDone)
            sent = len(server.record.directs()[-1].frames_out)
            server.set_faults(Faults(close_after_events=sent + 1, close_mode="abrupt"))
            await conv.send_text(f"drop {n}")
            await next_of(conv, ConnectionDropped)
            server.set_faults(Faults())
            restored = await next_of(conv, SessionRestored)
            gaps.append(restored.gap_ms)
            items.append(restored.items_replayed)
            await trio.sleep(0.35)  # beyond the budget's streak: each drop is a first reconnect
    return {"gap_ms": summary(gaps), "items_replayed_last": items[-1] if items else 0}


async def next_of(conv: rtengine.Conversation, kind: type) -> Any:
    async for event in conv.events:
        if isinstance(event, kind):
            return event
    raise RuntimeError(f"the conversation ended before {kind.__name__}")


async def measure(rotation_count: int, drops: int, delta: float) -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "cap_s": CAP,
        "rotate_margin_s": MARGIN,
        "server_delta_interval_s": delta,
        "rotation": await rotations(rotation_count, delta),
        "reconnect": await reconnects(drops),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rotations", type=int, default=20)
    parser.add_argument("--drops", type=int, default=20)
    parser.add_argument("--delta", type=float, default=DELTA, help="the server's pause between streamed events")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    result = trio.run(measure, args.rotations, args.drops, args.delta)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
