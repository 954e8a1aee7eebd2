"""OpenTelemetry for conversations: spans for the connection phases and a few metrics, read off the timeline.

Installed with the ``otel`` extra (``pip install 'rtengine[otel]'``, which brings ``opentelemetry-api``). rtengine
only uses the API, as a library should: the application installs an SDK and configures its providers
(``trace.set_tracer_provider``, ``metrics.set_meter_provider``) and exporters. Without the extra nothing is imported
and nothing runs per event; :func:`observe` returns ``None`` and the timeline has no observer.

Theory of operation: the engine records each phase of a conversation once in its :class:`~._timeline.Timeline`
(``answer``, ``sideband_joined``, ``session_updated``, ``ice_connected``, …). This module is that timeline's one
observer. It opens a ``rtengine.conversation`` span when the conversation is created (a child of whatever span is
current there), and each time a phase that ends an interval of :data:`SPANS` is recorded it adds that interval as a
child span with the phases' own times. The phases of a re-join (a session rotation, a reconnect, a sideband re-join)
recur, numbered (``rotated``, ``rotated_2`` …): each becomes an event on the conversation span (:data:`REJOIN_EVENTS`),
the interval from a loss to its re-join a child span (:data:`REJOIN_SPANS`), and a completed re-join a count. When the
``closed`` phase is recorded it records the metrics and ends the conversation span: an error status when the
conversation ended with an error or its start failed (``start_failed`` recorded: the call's creation or accept
refused, the websocket refused). Times come from trio's clock, mapped onto the wall clock once per conversation.

Attributes: ``rtengine.transport`` and, once known, ``rtengine.call_id``. The API key, the ephemeral keys, the SDP
and the session's instructions are never attributes (the observer sees phase names and counters only). Metrics carry
``rtengine.transport`` (and the close reason, drop or retry kind) but not the call id: one time series per call
would grow an exporter's memory without bound.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import trio

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from ._conversation import Conversation

__all__ = ["METRICS", "REJOIN_EVENTS", "REJOIN_SPANS", "SPANS", "observe"]

#: The child spans: ``(name, start phases, end phase)``. A span is added when its end phase is recorded and one of
#: its start phases (the first one recorded, in this order) is known; ``""`` is the conversation's start.
SPANS: Final[tuple[tuple[str, tuple[str, ...], str], ...]] = (
    ("rtengine.call.create", ("call_posted", ""), "answer"),
    ("rtengine.websocket.connect", ("",), "connected"),
    ("rtengine.sideband.join", ("answer",), "sideband_joined"),
    ("rtengine.session.update", ("session_update_sent",), "session_updated"),
    ("rtengine.ice", ("answer_applied",), "ice_connected"),
    ("rtengine.dtls", ("ice_connected",), "dtls_connected"),
    ("rtengine.first_audio", ("",), "first_audio_received"),
)

#: The recurring phases of a re-join (numbered from the second: ``rotated_2``) → the conversation span's event.
REJOIN_EVENTS: Final = {
    "session_rotated": "rtengine.session.rotated",  # websocket: a new session took over before the cap
    "rotating": "rtengine.call.rotating",  # WebRTC with rtengine as the peer: a new call is being made
    "rotated": "rtengine.call.rotated",  # ... and took over
    "connection_dropped": "rtengine.websocket.dropped",  # websocket: the connection was lost
    "session_restored": "rtengine.session.restored",  # ... and a new session was rebuilt from the history
    "sideband_lost": "rtengine.sideband.lost",  # WebRTC: the sideband was lost, the call living on
    "sideband_restored": "rtengine.sideband.restored",  # ... and was joined again
}

#: The re-join child spans: ``(name, start phase, end phase, rtengine.rejoin kind)``; a span runs from the latest
#: start to the end (either numbered), and each end counts one ``rtengine.conversation.rejoins`` of its kind.
REJOIN_SPANS: Final = (
    ("rtengine.session.rotate", "", "session_rotated", "rotation"),  # no start phase: counted, no span
    ("rtengine.call.rotate", "rotating", "rotated", "rotation"),
    ("rtengine.websocket.reconnect", "connection_dropped", "session_restored", "reconnect"),
    ("rtengine.sideband.rejoin", "sideband_lost", "sideband_restored", "sideband_rejoin"),
)

_NUMBERED: Final = re.compile(r"(.*?)(?:_(\d+))?")

#: The metric instruments' names (histograms in seconds; counters in items).
METRICS: Final = (
    "rtengine.conversation.time_to_answer",
    "rtengine.conversation.time_to_first_audio",
    "rtengine.conversation.dropped",
    "rtengine.conversation.retries",
    "rtengine.conversation.rejoins",
    "rtengine.conversations",
)


def observe(conv: Conversation) -> Callable[[str, float], None] | None:
    """The timeline observer for ``conv``, or ``None`` when there is nothing to report to: without OpenTelemetry
    (the ``otel`` extra), or with its API but no SDK configured (neither a tracer nor a meter provider set).

    Opens the conversation's span now (its start is ``conv.started_at``); it ends when ``closed`` is recorded.
    Synchronous and without checkpoints, so cancellation does not apply.
    """
    if not _installed():
        return None
    from opentelemetry import metrics, trace

    # the providers the application set, asked per conversation: one set after rtengine was imported is honoured
    tracer_provider, meter_provider = trace.get_tracer_provider(), metrics.get_meter_provider()
    if isinstance(tracer_provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider) and (
        isinstance(meter_provider, metrics.NoOpMeterProvider) or type(meter_provider).__name__ == "_ProxyMeterProvider"
    ):
        return None
    return _Observer(conv, _instruments(tracer_provider, meter_provider)).on_phase


@functools.cache
def _installed() -> bool:
    """Whether OpenTelemetry's API imports, asked once per process like the import itself (a failed import is not
    cached by Python and costs about 0.1 ms, which a conversation without the extra must not pay)."""
    try:
        import opentelemetry.metrics
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=4)
def _instruments(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> _Instruments:
    """The tracer and instruments of a pair of providers, made once: instruments are registered for the life of
    their meter (a proxy meter keeps each one it made), so one set per conversation would grow without bound."""
    return _Instruments(tracer_provider, meter_provider)


class _Instruments:
    """rtengine's tracer and metric instruments from one pair of providers."""

    def __init__(self, tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        self.tracer = tracer_provider.get_tracer("rtengine")
        meter = meter_provider.get_meter("rtengine")
        self.time_to_answer = meter.create_histogram(
            "rtengine.conversation.time_to_answer", unit="s", description="From the start to the SDP answer"
        )
        self.time_to_first_audio = meter.create_histogram(
            "rtengine.conversation.time_to_first_audio", unit="s", description="From the start to the first audio"
        )
        self.ended = meter.create_counter("rtengine.conversations", unit="{conversation}", description="Ended")
        self.dropped = meter.create_counter(
            "rtengine.conversation.dropped", unit="{item}", description="Audio frames and events dropped"
        )
        self.retries = meter.create_counter(
            "rtengine.conversation.retries", unit="{attempt}", description="Connection attempts beyond the first"
        )
        self.rejoins = meter.create_counter(
            "rtengine.conversation.rejoins",
            unit="{rejoin}",
            description="Session rotations, reconnects and sideband re-joins completed",
        )


class _Observer:
    """One conversation's spans and metrics."""

    __slots__ = ("_attributes", "_conv", "_done", "_made", "_offset_ns", "_rejoining", "_root")

    def __init__(self, conv: Conversation, made: _Instruments) -> None:
        self._conv = conv
        self._made = made
        self._offset_ns = time.time_ns() - int(trio.current_time() * 1e9)
        self._attributes: dict[str, str] = {"rtengine.transport": conv.transport}
        self._done: set[str] = set()
        #: The trio time of the latest start phase of each re-join (``rotating``, ``sideband_lost`` …).
        self._rejoining: dict[str, float] = {}
        self._root = made.tracer.start_span(
            "rtengine.conversation", start_time=self._ns(conv.started_at), attributes=self._attributes
        )

    def _ns(self, when: float) -> int:
        return self._offset_ns + int(when * 1e9)

    def on_phase(self, phase: str, when: float) -> None:
        """Called by the timeline for each phase recorded (first time only)."""
        call_id = self._conv._timeline.call_id
        if call_id is not None and "rtengine.call_id" not in self._attributes:
            self._attributes["rtengine.call_id"] = call_id
            self._root.set_attribute("rtengine.call_id", call_id)
        for name, starts, end in SPANS:
            if name not in self._done and (phase == end or phase in starts):
                self._maybe_span(name, starts, end)
        transport = {"rtengine.transport": self._conv.transport}
        if phase == "answer":
            self._made.time_to_answer.record(max(0.0, when - self._conv.started_at), transport)
        elif phase == "first_audio_received":
            self._made.time_to_first_audio.record(max(0.0, when - self._conv.started_at), transport)
        elif phase == "closed":
            self._close(when)
        else:
            numbered = _NUMBERED.fullmatch(phase)
            assert numbered is not None  # it matches every string
            base, number = numbered.groups()
            if base in REJOIN_EVENTS:
                self._rejoin(base, int(number or 1), when)

    def _rejoin(self, base: str, attempt: int, when: float) -> None:
        from opentelemetry import trace

        attributes: dict[str, str | int] = {"rtengine.attempt": attempt}
        if base == "rotated" and self._conv.call_id is not None:
            attributes["rtengine.call_id"] = self._conv.call_id  # the new call's
        self._root.add_event(REJOIN_EVENTS[base], attributes, timestamp=self._ns(when))
        for name, start, end, kind in REJOIN_SPANS:
            if base == start:
                self._rejoining[start] = when
            elif base == end:
                self._made.rejoins.add(1, {"rtengine.transport": self._conv.transport, "rtengine.rejoin": kind})
                began = self._rejoining.pop(start, None) if start else None
                if began is not None:
                    span = self._made.tracer.start_span(
                        name,
                        context=trace.set_span_in_context(self._root),
                        start_time=self._ns(began),
                        attributes={**self._attributes, "rtengine.attempt": attempt},
                    )
                    span.end(end_time=self._ns(when))

    def _maybe_span(self, name: str, starts: tuple[str, ...], end: str) -> None:
        from opentelemetry import trace

        phases = self._conv.timeline
        if end not in phases:
            return
        begin = next((phases[start] if start else 0.0 for start in starts if not start or start in phases), None)
        if begin is None:
            return
        self._done.add(name)
        if self._conv.transport == "sip" and name == "rtengine.call.create":
            name = "rtengine.call.accept"
        started = self._conv.started_at
        span = self._made.tracer.start_span(
            name,
            context=trace.set_span_in_context(self._root),
            start_time=self._ns(started + begin),
            attributes=self._attributes,
        )
        span.end(end_time=self._ns(started + phases[end]))

    def _close(self, when: float) -> None:
        from opentelemetry.trace import Status, StatusCode

        closing = self._conv._closing
        reason: str
        if closing is not None:
            reason = closing.reason
        else:  # it never ran (its start failed: an error; cancelled), or a restart replaced it
            reason = "error" if "start_failed" in self._conv._timeline else "none"
        stats = self._conv._stats
        transport = {"rtengine.transport": self._conv.transport}
        self._made.ended.add(1, {**transport, "rtengine.close_reason": reason})
        for kind, count in (("audio_frames", stats.audio_frames_dropped), ("events", stats.events_dropped)):
            if count:
                self._made.dropped.add(count, {**transport, "rtengine.dropped": kind})
        for kind, count in (
            ("sideband_join", max(0, stats.join_attempts - 1)),
            ("reconnect", stats.reconnect_attempts),
            ("sideband_rejoin", stats.sideband_rejoin_attempts),
        ):
            if count:
                self._made.retries.add(count, {**transport, "rtengine.retry": kind})
        self._root.set_attribute("rtengine.close_reason", reason)
        if reason == "error":
            failed = closing is None
            what = "the conversation's start failed" if failed else "the conversation ended with an error"
            self._root.set_status(Status(StatusCode.ERROR, what))
        self._root.end(end_time=self._ns(when))
