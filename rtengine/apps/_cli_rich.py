"""The terminal report of ``rtengine demo`` / ``rtengine call``: events as they come above a live progress line,
then the summary as rich tables (:class:`RichReport`, chosen when stdout is a terminal)."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ._cli_report import EXIT_OK, Summary

__all__ = ["RichReport"]


class RichReport:
    """Rich output on a terminal. The progress line is transient: it is replaced by the summary."""

    def __init__(self, out: TextIO) -> None:
        self._console = Console(file=out, highlight=False)
        self._live = Live(Text(""), console=self._console, transient=True, auto_refresh=False)
        self._live.start()

    def note(self, text: str) -> None:
        self._console.print(Text(text))

    def event(self, ms: float, name: str, detail: str) -> None:
        line = Text(f"{ms:9.1f} ms  ", style="dim")
        line.append(name, style="cyan" if not name.startswith("rtengine.") else "magenta")
        if detail:
            line.append(f"  {detail}")
        self._console.print(line)

    def progress(self, text: str) -> None:
        self._live.update(Text(text, style="bold"), refresh=True)

    def finish(self, summary: Summary) -> None:
        self._live.stop()
        timeline = Table(title="timeline", title_justify="left")
        timeline.add_column("phase")
        timeline.add_column("ms since start", justify="right")
        for phase, ms in sorted(summary.timeline_ms.items(), key=lambda item: item[1]):
            timeline.add_row(phase, f"{ms:.1f}")
        counters = Table(title="counters", title_justify="left")
        counters.add_column("counter")
        counters.add_column("value", justify="right")
        for name, value in summary.counters.items():
            counters.add_row(name.replace("_", " "), str(value))
        if summary.audio is not None:
            for name in ("frames_sent", "frames_received", "frames_dropped"):
                counters.add_row(f"audio {name.replace('_', ' ')}", str(summary.audio[name]))
        self._console.print(timeline, counters)
        if summary.audio is not None and summary.audio.get("wav_out"):
            self._console.print(f"received audio written to {summary.audio['wav_out']}")
        style = "bold green" if summary.status == EXIT_OK else "bold red"
        self._console.print(
            Text(f"result: {summary.result}" + (f": {summary.reason}" if summary.reason else ""), style)
        )
