"""What ``rtengine demo`` / ``rtengine call`` print: a :class:`Report` receives the run as it goes (notes, events,
a live progress line) and its :class:`Summary` at the end (the result, the timeline, the counters, the audio).

Three reports, chosen by :func:`open_report`: ``--json`` prints one JSON document at the end and nothing else on
stdout; a terminal gets rich tables and a live progress line (:mod:`rtengine.apps._cli_rich`); anything else (a
pipe, a file) gets plain text, one line per note and event, and the summary as aligned text. The summary is
printed on every ending: success, failure, timeout and Ctrl-C.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TextIO

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "JsonReport",
    "PlainReport",
    "Report",
    "Summary",
    "open_report",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


@dataclass(slots=True)
class Summary:
    """The end of a run. ``status``: the exit status; ``reason``: why it is not 0 (one line)."""

    command: str
    transport: str
    status: int = EXIT_FAILED
    reason: str | None = None
    server: str | None = None
    call_id: str | None = None
    timeline_ms: dict[str, float] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    audio: dict[str, Any] | None = None

    @property
    def result(self) -> str:
        """``ok``, ``failed``, ``interrupted`` (SIGINT) or ``terminated`` (SIGTERM)."""
        return {EXIT_OK: "ok", EXIT_INTERRUPTED: "interrupted", EXIT_TERMINATED: "terminated"}.get(
            self.status, "failed"
        )


class Report(Protocol):
    """Where a run is told. Every method returns at once (no I/O waits beyond writing to stdout)."""

    def note(self, text: str) -> None:
        """A step of the run, in words (the server's URL, the call id, the text sent)."""

    def event(self, ms: float, name: str, detail: str) -> None:
        """An event of the conversation, ``ms`` after it started."""

    def progress(self, text: str) -> None:
        """The live progress line (shown only on a terminal)."""

    def finish(self, summary: Summary) -> None:
        """The summary; nothing is printed after it."""


class PlainReport:
    """Plain text for pipes and files (no progress line)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def _line(self, text: str = "") -> None:
        print(text, file=self._out, flush=True)

    def note(self, text: str) -> None:
        self._line(text)

    def event(self, ms: float, name: str, detail: str) -> None:
        self._line(f"  {ms:8.1f} ms  {name}{'  ' + detail if detail else ''}")

    def progress(self, text: str) -> None:
        pass

    def finish(self, summary: Summary) -> None:
        self._line()
        self._line("phase                  ms since start")
        for phase, ms in sorted(summary.timeline_ms.items(), key=lambda item: item[1]):
            self._line(f"{phase:<22} {ms:10.1f}")
        self._line()
        self._line("counters: " + ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in summary.counters.items()))
        if summary.audio is not None:
            audio = summary.audio
            written = f"; received audio written to {audio['wav_out']}" if audio.get("wav_out") else ""
            self._line(
                f"audio: frames sent {audio['frames_sent']}, frames received {audio['frames_received']}, "
                f"dropped {audio['frames_dropped']}{written}"
            )
        self._line(f"result: {summary.result}" + (f": {summary.reason}" if summary.reason else ""))


class JsonReport:
    """One JSON document on stdout at the end (notes and events included); nothing before it."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._notes: list[str] = []
        self._events: list[dict[str, Any]] = []

    def note(self, text: str) -> None:
        self._notes.append(text)

    def event(self, ms: float, name: str, detail: str) -> None:
        self._events.append({"ms": round(ms, 3), "type": name, "detail": detail})

    def progress(self, text: str) -> None:
        pass

    def finish(self, summary: Summary) -> None:
        document = {"result": summary.result, **asdict(summary), "notes": self._notes, "events": self._events}
        document["timeline_ms"] = {phase: round(ms, 3) for phase, ms in summary.timeline_ms.items()}
        print(json.dumps(document), file=self._out, flush=True)


def open_report(*, as_json: bool, out: TextIO | None = None) -> Report:
    """The report for this process's stdout (or ``out``): JSON, rich on a terminal, else plain text."""
    stream = out if out is not None else sys.stdout
    if as_json:
        return JsonReport(stream)
    if stream.isatty():
        from ._cli_rich import RichReport  # rich is imported only when a terminal will show it

        return RichReport(stream)
    return PlainReport(stream)
