"""Loaded by Python at the start of every subprocess of the test suite (conftest.py puts this folder first on
``PYTHONPATH`` and sets ``RTENGINE_TEST_EVENTS_DIR``): every local server the process runs (``rtengine serve``,
``demo``, ``web``) records what it sends, and at exit the events are written to ``<dir>/<pid>.jsonl`` for the
suite-wide SDK validation fixture to check. Without the variable it does nothing."""

import atexit
import json
import os
import sys
from pathlib import Path

_DIR = os.environ.get("RTENGINE_TEST_EVENTS_DIR")


def _install(directory: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for server_events
    from server_events import sent_events

    from rtengine.server import ServerRecord

    records: list[ServerRecord] = []
    original_init = ServerRecord.__init__

    def recording_init(self: ServerRecord) -> None:
        original_init(self)
        records.append(self)

    ServerRecord.__init__ = recording_init  # type: ignore[method-assign]

    def dump() -> None:
        if not records:
            return
        with open(Path(directory) / f"{os.getpid()}.jsonl", "w", encoding="utf-8") as out:
            for record in records:
                for where, event in sent_events(record):
                    out.write(json.dumps({"where": where, "event": event}) + "\n")

    atexit.register(dump)


if _DIR:
    _install(_DIR)
