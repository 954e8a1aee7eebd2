"""How much the typed event model costs on top of ``json.loads``, and how msgspec would compare.

Run: ``python benchmarks/parse_events.py [--json PATH]``. Three decoders over the same frames, side by side in one
run (ratios, not absolute numbers, are what to read on a shared machine):

* ``json.loads`` alone (the floor);
* ``rtengine.protocol.parse_server_event`` (json + frozen slotted dataclasses);
* msgspec ``Struct`` decoding of the same shapes, when msgspec is installed (it is in the ``dev`` extras, not a
  dependency of rtengine).

Frames: 1.5 KB audio deltas, transcript deltas and ``response.done`` events, as the local server sends them.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from rtengine.protocol import parse_server_event
from rtengine.protocol._audio import tone


def frames() -> list[str]:
    audio = base64.b64encode(tone(440, 32)).decode()  # 1536 bytes of PCM16
    out = []
    for i in range(1000):
        out.append(
            json.dumps(
                {
                    "type": "response.output_audio.delta",
                    "event_id": f"event_{i}",
                    "response_id": "r",
                    "item_id": "item_1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": audio,
                }
            )
        )
        out.append(
            json.dumps(
                {
                    "type": "response.output_audio_transcript.delta",
                    "event_id": f"e{i}",
                    "response_id": "r",
                    "item_id": "item_1",
                    "delta": "word ",
                }
            )
        )
    out.append(
        json.dumps(
            {"type": "response.done", "event_id": "e", "response": {"id": "r", "status": "completed", "output": []}}
        )
    )
    return out


def msgspec_decoder() -> Callable[[str], Any] | None:
    try:
        import msgspec
    except ImportError:
        return None

    class AudioDelta(msgspec.Struct, tag="response.output_audio.delta", tag_field="type", frozen=True):
        delta: str
        event_id: str | None = None
        item_id: str | None = None
        response_id: str | None = None

    class TranscriptDelta(msgspec.Struct, tag="response.output_audio_transcript.delta", tag_field="type", frozen=True):
        delta: str
        event_id: str | None = None
        item_id: str | None = None
        response_id: str | None = None

    class Done(msgspec.Struct, tag="response.done", tag_field="type", frozen=True):
        response: dict[str, Any]
        event_id: str | None = None

    decoder = msgspec.json.Decoder(AudioDelta | TranscriptDelta | Done)
    return decoder.decode


def measure(decode: Callable[[str], Any], data: list[str], rounds: int) -> float:
    """Median seconds per frame over ``rounds`` passes."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for frame in data:
            decode(frame)
        samples.append((time.perf_counter_ns() - start) / 1e9 / len(data))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    data = frames()
    decoders: dict[str, Callable[[str], Any]] = {"json.loads": json.loads, "rtengine": parse_server_event}
    if (ms := msgspec_decoder()) is not None:
        decoders["msgspec"] = ms
    for decode in decoders.values():  # warm-up
        measure(decode, data[:200], 1)
    results = {name: measure(decode, data, args.rounds) for name, decode in decoders.items()}
    floor = results["json.loads"]
    print(f"python {sys.version.split()[0]}, {len(data)} frames, median of {args.rounds} rounds")
    print(f"{'decoder':<12} {'µs/frame':>9} {'frames/s':>10} {'× json.loads':>13}")
    for name, seconds in results.items():
        print(f"{name:<12} {seconds * 1e6:9.2f} {1 / seconds:10.0f} {seconds / floor:13.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {name: {"us_per_frame": s * 1e6, "ratio_to_json_loads": s / floor} for name, s in results.items()},
                fh,
                indent=2,
            )


if __name__ == "__main__":
    main()
