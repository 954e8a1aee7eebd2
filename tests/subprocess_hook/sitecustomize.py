"""Loaded by Python at the start of every subprocess of the test suite (conftest.py puts this folder first on
``PYTHONPATH`` and sets ``RTENGINE_TEST_EVENTS_DIR``): every local server the process runs (``rtengine serve``,
``demo``, ``web``) records what it sends, and at exit the events are written to ``<dir>/<pid>.jsonl`` for the
suite-wide SDK validation fixture to check. Without the variable it does nothing.

It imports nothing up front (a process that never loads the local server, such as the browser driver, is left
alone): a finder waits for ``rtengine.server._record`` to be imported and patches ``ServerRecord`` then."""

import atexit
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

_DIR = os.environ.get("RTENGINE_TEST_EVENTS_DIR")
_RECORD_MODULE = "rtengine.server._record"


def _record_servers(module: ModuleType, directory: str) -> None:
    server_record: Any = module.ServerRecord
    records: list[Any] = []
    original_init = server_record.__init__

    def recording_init(self: Any, limit: int | None = None) -> None:
        original_init(self, limit)
        records.append(self)

    server_record.__init__ = recording_init

    def dump() -> None:
        if not records:
            return
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for server_events
        from server_events import sent_events

        with open(Path(directory) / f"{os.getpid()}.jsonl", "w", encoding="utf-8") as out:
            for record in records:
                for where, event in sent_events(record):
                    out.write(json.dumps({"where": where, "event": event}) + "\n")

    atexit.register(dump)


class _RecordFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself; when the server's record module is imported, patches it right after it runs."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _RECORD_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader: Any = spec.loader
        exec_module = loader.exec_module
        directory = self.directory

        def exec_and_patch(module: ModuleType) -> None:
            exec_module(module)
            _record_servers(module, directory)

        loader.exec_module = exec_and_patch
        return spec


if _DIR:
    sys.meta_path.insert(0, _RecordFinder(_DIR))
