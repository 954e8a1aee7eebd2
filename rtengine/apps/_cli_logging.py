"""The ``rtengine`` command's logging: ``-v`` / ``-vv`` / ``-vvv``, and the secrets kept out of it.

* no flag: warnings and errors of every logger;
* ``-v``: rtengine's own loggers (``rtengine.*``) at INFO: the phases and decisions of a conversation;
* ``-vv``: rtengine's loggers at DEBUG;
* ``-vvv``: every logger at DEBUG, third-party ones included (httpx, httpcore, trio-websocket, aiortc, aioice).

Third-party loggers are never raised by ``-v``/``-vv``: httpcore's DEBUG lines carry raw response headers, and
aiortc's per-packet lines would drown rtengine's. Whatever the level, every line goes through a formatter that
scrubs the configured secrets (the API key, webhook secrets, secrets in URLs) and credential-shaped strings
(:class:`~rtengine.protocol.Scrubber`) from the formatted text, traceback included, before it reaches stderr.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Final, TextIO

from ..protocol import Scrubber

__all__ = ["ScrubbingFormatter", "configure_logging"]

#: rtengine's loggers: ``rtengine`` and its children (``rtengine.server``, ``rtengine.peer``, …).
RTENGINE_LOGGER: Final = "rtengine"


class ScrubbingFormatter(logging.Formatter):
    """A formatter whose output (message, arguments and traceback) has gone through a :class:`Scrubber`."""

    def __init__(self, scrub: Scrubber, fmt: str | None = None) -> None:
        super().__init__(fmt)
        self._scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        return self._scrub(super().format(record))


class _CommandHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The command's stderr handler (one per process: a new configuration replaces it)."""


def configure_logging(verbosity: int, secrets: Iterable[str | None] = (), stream: TextIO | None = None) -> None:
    """Route logging to ``stream`` (stderr) at ``verbosity`` (the count of ``-v``), scrubbing ``secrets``.

    Replaces the handler an earlier call installed (``main`` may run more than once in a process); other handlers
    of the root logger are left alone.
    """
    handler = _CommandHandler(stream if stream is not None else sys.stderr)
    scrub = Scrubber(secret for secret in secrets if secret)
    handler.setFormatter(ScrubbingFormatter(scrub, "%(levelname)s:%(name)s:%(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _CommandHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity >= 3 else logging.WARNING)
    own = logging.getLogger(RTENGINE_LOGGER)
    own.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))
