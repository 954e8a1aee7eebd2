"""OpenTelemetry (the ``otel`` extra): real conversations against the local server, read back through the SDK's
in-memory span exporter and metric reader.

Each test gets its own SDK providers: the API's accessors (``get_tracer_provider``/``get_meter_provider``, which
rtengine asks once per conversation) are pointed at them for the test, as ``set_tracer_provider`` would for a
whole process.
"""

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import trio
from engine_helpers import API_KEY, client_for, serving, until
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import rtengine
from rtengine import webrtc
from rtengine.adapters._peer import PeerService
from rtengine.engine import _otel
from rtengine.events import Closed, ResponseDone, SessionUpdated
from rtengine.server import Faults, LocalServer, ServerOptions

SESSION = rtengine.SessionConfig(instructions="test")
#: The local server of ``media_server`` (``tests/conftest.py``).
MEDIA_SERVER = ServerOptions(api_key=API_KEY, delta_interval=0.0, audio_ms=300, greeting_ms=300)


@dataclass
class Otel:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def finished(self) -> dict[str, ReadableSpan]:
        found = {span.name: span for span in self.spans.get_finished_spans()}
        assert len(found) == len(self.spans.get_finished_spans()), "one span per phase"
        return found

    def points(self) -> dict[tuple[str, tuple[tuple[str, object], ...]], Any]:
        """Every data point collected since the last call: (metric, sorted attributes) → the point."""
        data = self.reader.get_metrics_data()
        found: dict[tuple[str, tuple[tuple[str, object], ...]], Any] = {}
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        found[(metric.name, tuple(sorted((point.attributes or {}).items())))] = point
        return found


@pytest.fixture
def otel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Otel]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    delta = AggregationTemporality.DELTA
    reader = InMemoryMetricReader(preferred_temporality={Counter: delta, Histogram: delta})
    meter_provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: tracer_provider)
    monkeypatch.setattr(metrics, "get_meter_provider", lambda: meter_provider)
    yield Otel(exporter, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def _children_of(root: ReadableSpan, spans: dict[str, ReadableSpan]) -> set[str]:
    assert root.context is not None
    return {
        name
        for name, span in spans.items()
        if span.parent is not None
        and span.parent.span_id == root.context.span_id
        and span.context is not None
        and span.context.trace_id == root.context.trace_id
    }


def _dump(otel: Otel, spans: dict[str, ReadableSpan], points: object) -> str:
    return "\n".join([*(span.to_json() for span in spans.values()), repr(points)])


async def test_a_websocket_conversation_has_a_span_with_its_phases_and_metrics(peers: PeerService, otel: Otel) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with trio.open_nursery() as app:
                with trace.get_tracer_provider().get_tracer("app").start_as_current_span("the app's request"):
                    conv = await rtengine.start_conversation(client, SESSION, app)
                await until(conv, SessionUpdated)
                await conv.send_text("hello")
                await conv.request_response()
                await until(conv, ResponseDone)
                await conv.close()
    spans = otel.finished()
    root = spans["rtengine.conversation"]
    assert root.parent is not None
    assert root.parent.span_id == spans["the app's request"].context.span_id
    assert _children_of(root, spans) == {"rtengine.websocket.connect", "rtengine.session.update"}
    assert root.attributes == {"rtengine.transport": "websocket", "rtengine.close_reason": "requested"}
    assert root.start_time is not None
    assert root.end_time is not None
    for name in _children_of(root, spans):
        child = spans[name]
        assert child.start_time is not None
        assert child.end_time is not None
        assert root.start_time <= child.start_time <= child.end_time <= root.end_time
    points = otel.points()
    ended = ("rtengine.conversations", (("rtengine.close_reason", "requested"), ("rtengine.transport", "websocket")))
    assert points[ended].value == 1
    assert not any(name.startswith("rtengine.conversation.time_to") for name, _ in points)  # no answer, no audio
    assert API_KEY not in _dump(otel, spans, points)


async def test_a_webrtc_call_has_every_connection_phase_with_its_call_id(
    engine: webrtc.MediaEngine, media_server: LocalServer, otel: Otel
) -> None:
    media = webrtc.Media(engine, source=webrtc.tone_source(300, seconds=0.5), connect_timeout=5)
    async with client_for(media_server) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, media=media) as conv:
                assert conv.media is not None
                call_id = conv.call_id
                await until(conv, SessionUpdated)
                with trio.fail_after(10):
                    await conv.media.audio_out.receive()  # the greeting: first audio
                timeline = dict(conv.timeline)
    assert call_id is not None
    spans = otel.finished()
    root = spans["rtengine.conversation"]
    assert _children_of(root, spans) == {
        "rtengine.call.create",
        "rtengine.sideband.join",
        "rtengine.session.update",
        "rtengine.ice",
        "rtengine.dtls",
        "rtengine.first_audio",
    }
    for span in spans.values():
        assert span.attributes is not None
        assert span.attributes["rtengine.call_id"] == call_id
        assert span.attributes["rtengine.transport"] == "webrtc"
    create, dtls = spans["rtengine.call.create"], spans["rtengine.dtls"]
    assert create.end_time is not None
    assert root.start_time is not None
    # the span ends where the timeline says the answer came (the same clock, to the microsecond)
    assert abs((create.end_time - root.start_time) / 1e9 - timeline["answer"]) < 1e-5
    assert dtls.start_time == spans["rtengine.ice"].end_time
    points = otel.points()
    names = {name for name, _ in points}
    assert {"rtengine.conversation.time_to_answer", "rtengine.conversation.time_to_first_audio"} <= names
    answer = points[("rtengine.conversation.time_to_answer", (("rtengine.transport", "webrtc"),))]
    assert answer.count == 1
    assert answer.sum == pytest.approx(timeline["answer"])
    metric_attributes = {key for _, attributes in points for key, _ in attributes}
    assert "rtengine.call_id" not in metric_attributes  # one series per call would grow without bound
    assert API_KEY not in _dump(otel, spans, points)


async def test_a_failed_call_span_is_an_error_and_its_retries_are_counted(
    peers: PeerService, offer_sdp: str, otel: Otel
) -> None:
    """The browser shape (the offer comes from elsewhere): the sideband is refused on every try, so the
    conversation ends with an error after one retry."""
    async with serving(peers) as server, client_for(server, sideband_retries=1) as client:
        server.set_faults(Faults(refuse_sideband_joins=5))
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                events = [event async for event in conv.events]
                call_id = conv.call_id
    assert isinstance(events[-1], Closed)
    assert events[-1].reason == "error"
    spans = otel.finished()
    root = spans["rtengine.conversation"]
    assert _children_of(root, spans) == {"rtengine.call.create"}  # answered; never joined
    assert root.attributes == {
        "rtengine.transport": "webrtc",
        "rtengine.call_id": call_id,
        "rtengine.close_reason": "error",
    }
    assert root.status.status_code is StatusCode.ERROR
    points = otel.points()
    webrtc_ = ("rtengine.transport", "webrtc")
    assert points[("rtengine.conversations", (("rtengine.close_reason", "error"), webrtc_))].value == 1
    retried = points[("rtengine.conversation.retries", (("rtengine.retry", "sideband_join"), webrtc_))]
    assert retried.value == conv.stats.join_attempts - 1 == 1
    assert API_KEY not in _dump(otel, spans, points)


def test_without_opentelemetry_nothing_is_imported_and_a_conversation_runs() -> None:
    """The extra absent (its import fails): rtengine imports nothing of it, and a conversation runs as usual."""
    script = """
import sys
sys.modules["opentelemetry"] = None  # what an environment without the otel extra looks like to an import
import trio, rtengine
from rtengine.adapters._peer import open_peer_service
from rtengine.server import ServerOptions, open_local_server

async def main():
    async with open_peer_service() as peers, open_local_server(ServerOptions(), peers=peers) as server:
        async with rtengine.RealtimeClient(server.base_url, api_key="sk-x") as client:
            with trio.fail_after(20):
                async with rtengine.open_conversation(client, rtengine.SessionConfig()) as conv:
                    async for event in conv.events:
                        if type(event).__name__ == "SessionUpdated":
                            break
    print(conv.timeline["closed"] >= 0, sorted(m for m in sys.modules if m.startswith("opentelemetry")))

trio.run(main)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "True ['opentelemetry']", done.stdout  # only the blocked entry itself


def test_observe_returns_none_without_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    _otel._installed.cache_clear()
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    try:
        assert _otel._installed() is False
    finally:
        _otel._installed.cache_clear()
    assert json.dumps(_otel.METRICS)  # the documented names exist


async def test_with_the_api_but_no_sdk_configured_a_conversation_has_no_observer(peers: PeerService) -> None:
    """Nothing would record its spans (the API's default, non-recording providers): no per-phase work at all."""
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                assert conv._timeline.observer is None
