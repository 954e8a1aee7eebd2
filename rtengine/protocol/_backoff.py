"""The sideband join backoff schedule, pure.

``backoff(base, n)``: n = 0 → base; n ≥ 1 → base × 2^(n−1) × jitter, jitter uniform in [0.9, 1.1). With the
default 4 retries and a 200 ms base the sleeps are ≈ 200, 400, 800, 1600 ms (≈ 3 s in total).
The random source is injected, so tests pin it and production uses :func:`random.random`.

Why not a retry library. ``stamina`` (on ``tenacity``) was weighed against the engine's rules and not taken:

* Its waits run on trio (``trio.sleep`` through sniffio), but its ``timeout`` is tenacity's ``stop_after_delay``,
  measured with :func:`time.monotonic` — wall time. The engine's deadlines (a call's ``call_timeout``, the re-join
  deadline from each loss) are ``trio.current_time()``, which the virtual-clock tests (``MockClock``) drive; a
  wall-clock stop would make those tests either slow or wrong.
* It is switched on and off (and put in test mode) through process-global configuration; the engine keeps no
  global state, and two clients in one process must not share retry behaviour.
* The decisions are not "retry on exception type": a 404 on a join means the call is over (no retry), a 5xx is
  retried, ``Retry-After`` sets the wait, and each attempt is counted in the conversation's stats and logged with
  its delay. Those decisions live here and in :mod:`~rtengine.protocol._reattach`, as data a hypothesis test can
  check; the engine's loop around them is a few lines per use, inside the conversation's cancel scope.
* The schedule is 20 lines of pure code; a library would add two dependencies for it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

__all__ = ["DEFAULT_BACKOFF_BASE", "DEFAULT_RETRIES", "backoff", "retry_delays"]

#: Retries after the first attempt (so 5 attempts in all).
DEFAULT_RETRIES: Final = 4
#: Base delay in seconds.
DEFAULT_BACKOFF_BASE: Final = 0.2


def backoff(base: float, n: int, rand: Callable[[], float] = random.random) -> float:
    """The delay before retry ``n`` (1-based) in seconds; ``rand`` returns floats in [0, 1)."""
    if n < 0:
        raise ValueError("n must be >= 0")
    if n == 0:
        return base
    jitter = 0.9 + 0.2 * rand()
    return float(base * 2 ** (n - 1) * jitter)


def retry_delays(
    retries: int = DEFAULT_RETRIES, base: float = DEFAULT_BACKOFF_BASE, rand: Callable[[], float] = random.random
) -> list[float]:
    """The sleeps between ``retries + 1`` attempts: ``[backoff(base, 1), …, backoff(base, retries)]``."""
    if not 0 <= retries <= 100:
        raise ValueError("retries must be within 0..100")
    return [backoff(base, attempt, rand) for attempt in range(1, retries + 1)]
