"""The sideband join backoff schedule, pure.

``backoff(base, n)``: n = 0 → base; n ≥ 1 → base × 2^(n−1) × jitter, jitter uniform in [0.9, 1.1). With the
default 4 retries and a 200 ms base the sleeps are ≈ 200, 400, 800, 1600 ms (≈ 3 s in total).
The random source is injected, so tests pin it and production uses :func:`random.random`.
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
