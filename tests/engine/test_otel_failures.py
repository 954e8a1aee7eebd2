"""Telemetry of the conversations that do not go to plan: a start that fails ends its span as an error, and a
re-join (a session rotation, a reconnect) shows on the conversation's span and in a counter."""

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import trio
from engine_helpers import API_KEY, client_for, serving, until
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import StatusCode

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import (
    ConnectionDropped,
    SessionRestored,
    SessionRotated,
    SessionUpdated,
    SidebandLost,
    SidebandRestored,
)
from rtengine.server import Faults

SESSION = rtengine.SessionConfig(instructions="test")


@dataclass
class Telemetry(SpanProcessor):
    """The spans started and not yet ended, the ended ones, and the metrics."""

    reader: InMemoryMetricReader
    live: dict[int, str] = field(default_factory=dict)
    ended: list[ReadableSpan] = field(default_factory=list)

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        assert span.context is not None
        self.live[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        self.live.pop(span.context.span_id, None)
        self.ended.append(span)

    def root(self) -> ReadableSpan:
        [root] = [span for span in self.ended if span.name == "rtengine.conversation"]
        return root

    def counted(self, metric: str) -> dict[tuple[tuple[str, object], ...], float]:
        """The sums of a counter, by sorted attributes."""
        data = self.reader.get_metrics_data()
        assert data is not None
        return {
            tuple(sorted((point.attributes or {}).items())): point.value
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for found in scope.metrics
            if found.name == metric
            for point in found.data.data_points
            if isinstance(point, NumberDataPoint)
        }

    def assert_no_key(self) -> None:
        for span in self.ended:
            texts = [str(v) for v in (span.attributes or {}).values()] + [span.status.description or ""]
            texts += [str(v) for event in span.events for v in (event.attributes or {}).values()]
            assert not any(API_KEY in text for text in texts), span.to_json()


@pytest.fixture
def telemetry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Telemetry]:
    found = Telemetry(InMemoryMetricReader())
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(found)
    meter_provider = MeterProvider(metric_readers=[found.reader])
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: tracer_provider)
    monkeypatch.setattr(metrics, "get_meter_provider", lambda: meter_provider)
    yield found
    tracer_provider.shutdown()
    meter_provider.shutdown()


def _assert_failed_start(telemetry: Telemetry, transport: str) -> None:
    assert telemetry.live == {}  # every span started has ended
    assert [span.name for span in telemetry.ended if span.status.status_code is not StatusCode.ERROR] == []
    root = telemetry.root()
    assert root.status.description == "the conversation's start failed"
    assert root.attributes is not None
    assert root.attributes["rtengine.close_reason"] == "error"
    ended = (("rtengine.close_reason", "error"), ("rtengine.transport", transport))
    assert telemetry.counted("rtengine.conversations") == {ended: 1}
    telemetry.assert_no_key()


async def test_a_refused_websocket_start_ends_its_span_as_an_error(peers: PeerService, telemetry: Telemetry) -> None:
    async with serving(peers) as server, client_for(server) as client:
        server.set_faults(Faults(websocket_status=401))
        with trio.fail_after(10), pytest.raises(rtengine.RealtimeError):
            async with rtengine.open_conversation(client, SESSION):
                pass  # pragma: no cover - the start fails
    _assert_failed_start(telemetry, "websocket")


async def test_a_refused_call_creation_ends_its_span_as_an_error(
    peers: PeerService, offer_sdp: str, telemetry: Telemetry
) -> None:
    async with serving(peers) as server, client_for(server) as client:
        server.set_faults(Faults(call_status=401))
        with trio.fail_after(10), pytest.raises(rtengine.RealtimeError):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp):
                pass  # pragma: no cover - the start fails
    _assert_failed_start(telemetry, "webrtc")


async def test_a_rotation_is_an_event_of_the_conversation_and_a_rejoin(
    peers: PeerService, telemetry: Telemetry
) -> None:
    async with serving(peers, session_max_seconds=3.0) as server, client_for(server) as client:
        with trio.fail_after(30):
            async with rtengine.open_conversation(client, SESSION, rotate_margin=2.0) as conv:
                await until(conv, SessionRotated)
                await conv.close()
    assert conv.stats.rotations == 1
    [rotated] = [event for event in telemetry.root().events if event.name == "rtengine.session.rotated"]
    assert rotated.attributes == {"rtengine.attempt": 1}
    rotation = (("rtengine.rejoin", "rotation"), ("rtengine.transport", "websocket"))
    assert telemetry.counted("rtengine.conversation.rejoins") == {rotation: 1}
    assert telemetry.root().status.status_code is StatusCode.UNSET  # a rotation is no error
    telemetry.assert_no_key()


async def test_a_reconnect_is_a_span_from_the_drop_to_the_restored_session(
    peers: PeerService, telemetry: Telemetry
) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, reconnect=True) as conv:
                await until(conv, SessionUpdated)
                await server.drop_sideband(mode="reset")  # the direct websocket, as a TCP reset
                await until(conv, ConnectionDropped)
                await until(conv, SessionRestored)
                await conv.close()
    root = telemetry.root()
    events = [(event.name, dict(event.attributes or {})) for event in root.events]
    assert events == [
        ("rtengine.websocket.dropped", {"rtengine.attempt": 1}),
        ("rtengine.session.restored", {"rtengine.attempt": 1}),
    ]
    [reconnect] = [span for span in telemetry.ended if span.name == "rtengine.websocket.reconnect"]
    assert reconnect.parent is not None
    assert root.context is not None
    assert reconnect.parent.span_id == root.context.span_id
    assert reconnect.start_time == events_time(root, "rtengine.websocket.dropped")
    assert reconnect.end_time == events_time(root, "rtengine.session.restored")
    reconnects = (("rtengine.rejoin", "reconnect"), ("rtengine.transport", "websocket"))
    assert telemetry.counted("rtengine.conversation.rejoins") == {reconnects: 1}
    telemetry.assert_no_key()


async def test_a_sideband_rejoin_is_a_span_with_the_call_id(
    peers: PeerService, offer_sdp: str, telemetry: Telemetry
) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                await until(conv, SessionUpdated)
                assert await server.drop_sideband(conv.call_id, mode="reset") == 1
                await until(conv, SidebandLost)
                await until(conv, SidebandRestored)
                await conv.close()
    root = telemetry.root()
    assert [event.name for event in root.events] == ["rtengine.sideband.lost", "rtengine.sideband.restored"]
    [rejoin] = [span for span in telemetry.ended if span.name == "rtengine.sideband.rejoin"]
    assert rejoin.attributes == {
        "rtengine.transport": "webrtc",
        "rtengine.call_id": conv.call_id,
        "rtengine.attempt": 1,
    }
    assert rejoin.start_time == events_time(root, "rtengine.sideband.lost")
    rejoins = (("rtengine.rejoin", "sideband_rejoin"), ("rtengine.transport", "webrtc"))
    assert telemetry.counted("rtengine.conversation.rejoins") == {rejoins: 1}
    telemetry.assert_no_key()


def events_time(span: ReadableSpan, name: str) -> int:
    [when] = [event.timestamp for event in span.events if event.name == name]
    return when
