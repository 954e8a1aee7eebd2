"""A quiet start for the ``rtengine`` command: a Ctrl-C while the command is still importing (aiortc, PyAV, httpx:
1-3 s) exits with status 130 and one line, not a ``KeyboardInterrupt`` traceback.

Only when this process *is* the command (``python -m rtengine …``, or the ``rtengine`` console script) does
importing :mod:`rtengine` (which imports this module first) install a SIGINT handler (:func:`quiet_start`); the
command's ``main`` takes SIGINT back
(:func:`started`) before it runs anything. A library import anywhere else leaves every signal alone.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
from types import FrameType

__all__ = ["EXIT_INTERRUPTED", "quiet_start", "started"]

#: 128 + SIGINT, as shells report a Ctrl-C.
EXIT_INTERRUPTED = 130


def _is_the_command() -> bool:
    """From the interpreter's own command line (``sys.orig_argv``): ``python -m rtengine …`` or ``python
    …/bin/rtengine …`` (the console script). A worker process the command spawns (``multiprocessing``: ``python -c
    …``) is not the command, whatever its ``sys.argv``."""
    argv = list(getattr(sys, "orig_argv", ()))
    as_module = any(a == "-m" and b == "rtengine" for a, b in itertools.pairwise(argv))
    return as_module or (len(argv) > 1 and os.path.basename(argv[1]) == "rtengine")


def _interrupted(signum: int, frame: FrameType | None) -> None:
    print("rtengine: interrupted (Ctrl-C) while starting", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_INTERRUPTED)  # unwinds the imports; no traceback for SystemExit


def quiet_start() -> None:
    """Install the start-up SIGINT handler if this process is the ``rtengine`` command (see the module
    docstring); otherwise do nothing."""
    if _is_the_command() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupted)


def started() -> None:
    """The command is running: SIGINT is Python's own again (``KeyboardInterrupt``, which ``main`` handles)."""
    if signal.getsignal(signal.SIGINT) is _interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)


quiet_start()
