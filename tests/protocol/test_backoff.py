"""The sideband join backoff schedule, with an injected random source."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtengine.protocol import DEFAULT_RETRIES, backoff, retry_delays


def test_default_schedule_is_four_doubling_sleeps_from_200ms() -> None:
    delays = retry_delays(rand=lambda: 0.5)  # jitter exactly 1.0
    assert DEFAULT_RETRIES == 4
    assert delays == pytest.approx([0.2, 0.4, 0.8, 1.6])
    assert sum(delays) == pytest.approx(3.0)


def test_jitter_bounds() -> None:
    assert backoff(0.2, 1, lambda: 0.0) == pytest.approx(0.18)
    assert backoff(0.2, 3, lambda: 0.999999) == pytest.approx(0.88, rel=1e-4)
    assert backoff(0.2, 0, lambda: 0.7) == 0.2


def test_no_retries_means_no_sleeps() -> None:
    assert retry_delays(0) == []


def test_random_source_is_consumed_once_per_retry() -> None:
    draws = itertools.count()
    values = iter([0.0, 0.25, 0.5])
    retry_delays(3, 0.1, lambda: (next(draws), next(values))[1])
    assert next(draws) == 3


@given(st.integers(1, 12), st.floats(0.0, 0.999999))
def test_every_delay_is_within_ten_percent(n: int, r: float) -> None:
    nominal = 0.2 * 2 ** (n - 1)
    assert 0.9 * nominal <= backoff(0.2, n, lambda: r) < 1.1 * nominal


def test_out_of_range_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="retries"):
        retry_delays(101)
    with pytest.raises(ValueError, match="n must"):
        backoff(0.2, -1)
