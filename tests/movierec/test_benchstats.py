"""The paired latency comparison of bench/lb.py (movierec.base.benchstats)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from movierec.base.benchstats import paired_percentile_difference


def _segments(rng: np.random.Generator, pairs: int, shift_ms: float, slow_pairs: set[int]) -> tuple[list, list]:
    a, b = [], []
    for i in range(pairs):
        slow = 3.0 if i in slow_pairs else 1.0  # a slow period of the host slows both segments of a pair
        a.append(rng.gamma(4.0, 0.5, 600) * slow)
        b.append(rng.gamma(4.0, 0.5, 600) * slow + shift_ms)
    return a, b


def test_a_constant_shift_is_found_with_an_interval_around_it() -> None:
    rng = np.random.default_rng(1)
    a, b = _segments(rng, 20, 1.5, set())
    result = paired_percentile_difference(a, b, q=99.0, resamples=500)
    assert result.pairs == 20
    assert result.added_ms == pytest.approx(1.5, abs=0.5)
    assert result.ci_low_ms < result.added_ms < result.ci_high_ms
    assert result.ci_low_ms > 0.5 and result.ci_high_ms < 2.5
    assert result.median_pair_added_ms == pytest.approx(1.5, abs=0.8)
    assert result.added_ms == pytest.approx(result.pooled_b_ms - result.pooled_a_ms)


def test_identical_arms_give_an_interval_that_holds_zero_despite_slow_periods() -> None:
    rng = np.random.default_rng(2)
    a, b = _segments(rng, 20, 0.0, slow_pairs={3, 11})
    result = paired_percentile_difference(a, b, q=99.0, resamples=500)
    assert result.ci_low_ms <= 0.0 <= result.ci_high_ms
    assert abs(result.median_pair_added_ms) < 1.0


def test_the_estimate_is_the_difference_of_pooled_percentiles() -> None:
    a = [[1.0, 2.0, 3.0], [4.0, 5.0]]
    b = [[2.0, 3.0, 4.0], [5.0, 6.0]]
    result = paired_percentile_difference(a, b, q=50.0, resamples=50)
    assert result.pooled_a_ms == 3.0 and result.pooled_b_ms == 4.0 and result.added_ms == 1.0
    assert result.median_pair_added_ms == 1.0
    assert result.ci_low_ms == result.ci_high_ms == 1.0  # every resample shifts by exactly 1


@pytest.mark.parametrize(("low", "high", "expected"), [(0.5, 1.9, "met"), (2.1, 9.0, "missed"),
                                                        (1.0, 3.0, "undecided"), (-30.0, 20.0, "undecided")])
def test_the_goal_is_judged_by_the_whole_interval(low: float, high: float, expected: str) -> None:
    result = paired_percentile_difference([[1.0]], [[2.0]], resamples=10)
    judged = dataclasses.replace(result, ci_low_ms=low, ci_high_ms=high, added_ms=(low + high) / 2)
    assert judged.verdict(2.0) == expected


@pytest.mark.parametrize(("a", "b"), [([], []), ([[1.0]], []), ([[1.0]], [[]])])
def test_malformed_segments_are_refused(a: list, b: list) -> None:
    with pytest.raises(ValueError):
        paired_percentile_difference(a, b)
