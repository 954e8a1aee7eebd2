"""The telemetry's cost per conversation: the observer's set-up plus a WebRTC call's phases, up to ``closed``.

Run: ``python benchmarks/otel_overhead.py [--quick]``.

Three set-ups, each timed over the same work — ``observe(conv)`` then the phases a media call records (as the
engine marks them) — in one trio run:

* ``absent`` — the ``otel`` extra not installed (its import fails; what :func:`observe` sees is simulated by
  blocking ``opentelemetry`` in ``sys.modules``): the cost is the one call that returns ``None``, plus one
  ``is not None`` test per phase;
* ``api only`` — ``opentelemetry-api`` installed, no SDK configured (its spans are non-recording);
* ``sdk`` — the SDK with an in-memory exporter and metric reader (what a real exporter costs comes on top).

The baseline is the same phases on a timeline without an observer. Numbers are µs per conversation (median of
rounds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field

import trio

from rtengine.engine import _otel
from rtengine.engine._timeline import Timeline
from rtengine.protocol._lifecycle import Closed, ConversationStats

PHASES = (
    "offer_created",
    "ice_gathered",
    "call_posted",
    "answer",
    "answer_applied",
    "ice_connected",
    "dtls_connected",
    "data_channel_open",
    "sideband_joined",
    "session_update_sent",
    "session_updated",
    "first_audio_sent",
    "first_audio_received",
    "first_response_done",
    "closed",
)


@dataclass
class _Conv:
    """What the observer reads of a conversation."""

    started_at: float
    transport: str = "webrtc"
    _stats: ConversationStats = field(default_factory=ConversationStats)
    _closing: Closed | None = field(default_factory=lambda: Closed("requested"))

    def __post_init__(self) -> None:
        self._timeline = Timeline(self.started_at)
        self._timeline.call_id = "rtc_bench"
        self.timeline = self._timeline.view


def _one(observed: bool) -> None:
    conv = _Conv(trio.current_time())
    if observed:
        conv._timeline.observer = _otel.observe(conv)  # type: ignore[arg-type]
    for phase in PHASES:
        conv._timeline.mark(phase)


def _time(observed: bool, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        _one(observed)
    return (time.perf_counter() - started) / n * 1e6


async def _measure(n: int, rounds: int) -> dict[str, float]:
    base = statistics.median(_time(False, n) for _ in range(rounds))
    results = {"no observer (baseline)": base}
    _otel._installed.cache_clear()
    blocked = sys.modules.get("opentelemetry")
    sys.modules["opentelemetry"] = None  # type: ignore[assignment]
    try:
        results["absent"] = statistics.median(_time(True, n) for _ in range(rounds))
    finally:
        _otel._installed.cache_clear()
        if blocked is not None:
            sys.modules["opentelemetry"] = blocked
        else:
            del sys.modules["opentelemetry"]
    results["api only"] = statistics.median(_time(True, n) for _ in range(rounds))
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    sdk = []
    for _ in range(rounds):
        sdk.append(_time(True, n))
        exporter.clear()
    results["sdk"] = statistics.median(sdk)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer conversations (a smoke run)")
    args = parser.parse_args()
    n, rounds = (200, 3) if args.quick else (2000, 7)
    results = trio.run(_measure, n, rounds)
    base = results["no observer (baseline)"]
    for name, us in results.items():
        print(f"{name:>24}: {us:8.2f} µs per conversation ({us - base:+.2f} µs)")


if __name__ == "__main__":
    main()
