"""Online evaluation statistics on tiny, hand-made logs."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from scipy import stats as scipy_stats

from inference.statistics import (
    ArmSummary,
    ServedRecommendation,
    WatchStart,
    always_valid_interval,
    arm_interval,
    decide,
    is_hit,
    msprt_p_value,
    serve_share,
    settled,
    summarise_arm,
    two_proportion_noninferiority,
    welch_noninferiority,
)

T0 = datetime(2024, 1, 1, 12, 0, 0)
HORIZON = timedelta(minutes=30)


def rec(user: int, minutes: float, version: str, *films: str) -> ServedRecommendation:
    return ServedRecommendation(user, T0 + timedelta(minutes=minutes), version, films)


def test_a_hit_is_a_recommended_film_started_within_the_horizon() -> None:
    r = rec(1, 0, "v", "a", "b")
    assert is_hit(r, [WatchStart(1, "b", T0 + timedelta(minutes=5))], HORIZON)
    assert not is_hit(r, [WatchStart(1, "b", T0 + timedelta(minutes=31))], HORIZON)  # too late
    assert not is_hit(r, [WatchStart(1, "b", T0 - timedelta(minutes=1))], HORIZON)  # watched before
    assert not is_hit(r, [WatchStart(1, "c", T0 + timedelta(minutes=1))], HORIZON)  # not recommended


def test_summary_per_user_and_per_request() -> None:
    recs = [rec(1, 0, "m", "a"), rec(1, 10, "m", "b"), rec(2, 0, "m", "c"), rec(3, 0, "n", "a")]
    watches = [WatchStart(1, "a", T0 + timedelta(minutes=1)), WatchStart(3, "a", T0 + timedelta(minutes=2))]
    main = summarise_arm("m", recs, watches, HORIZON)
    assert (main.requests, main.hits, main.users) == (3, 1, 2)
    assert main.user_hit_rates == (0.5, 0.0)
    assert main.mean_user_hit_rate == 0.25
    nightly = summarise_arm("n", recs, watches, HORIZON)
    assert (nightly.requests, nightly.hits, nightly.hit_rate) == (1, 1, 1.0)


def arm(version: str, rates: list[float], per_user_requests: int = 4) -> ArmSummary:
    hits = sum(round(r * per_user_requests) for r in rates)
    return ArmSummary(version, len(rates) * per_user_requests, hits, tuple(rates))


def test_clearly_better_nightly_is_promoted() -> None:
    main = arm("m", [0.0, 0.25] * 40)
    nightly = arm("n", [0.5, 0.75] * 40)
    verdict = decide(main, nightly, alpha=0.05, margin=0.02, tau=0.05, min_users_per_arm=30)
    assert verdict.decision == "promote" and verdict.p_value is not None and verdict.p_value < 0.05


def test_clearly_worse_nightly_is_rolled_back() -> None:
    main = arm("m", [0.5, 0.75] * 40)
    nightly = arm("n", [0.0, 0.25] * 40)
    verdict = decide(main, nightly, alpha=0.05, margin=0.02, tau=0.05, min_users_per_arm=30, final=False)
    assert verdict.decision == "rollback" and verdict.p_value is not None and verdict.p_value < 0.05
    assert verdict.reason.startswith("nightly worse") and verdict.upper < 0


def test_too_few_users_extends_until_the_maximum_window() -> None:
    few = (arm("m", [0.5] * 50), arm("n", [0.5] * 10))
    assert decide(*few, alpha=0.05, margin=0.02, tau=0.05, min_users_per_arm=30, final=False).decision == "extend"
    verdict = decide(*few, alpha=0.05, margin=0.02, tau=0.05, min_users_per_arm=30, final=True)
    assert verdict.decision == "rollback" and "too few users" in verdict.reason


def test_an_undecided_look_extends_and_the_last_look_rolls_back() -> None:
    main = arm("m", [0.0, 1.0] * 40, per_user_requests=1)
    nightly = arm("n", [0.0, 1.0] * 40, per_user_requests=1)  # identical, but 80 users cannot show it
    look = decide(main, nightly, alpha=0.05, margin=0.05, tau=0.05, min_users_per_arm=30, final=False)
    assert look.decision == "extend" and look.lower < -0.05 < 0 < look.upper and look.estimate == 0.0
    assert "undecided" in look.reason and "[" in look.reason and "p=" in look.reason
    last = decide(main, nightly, alpha=0.05, margin=0.05, tau=0.05, min_users_per_arm=30, final=True)
    assert last.decision == "rollback" and "maximum window" in last.reason


def test_identical_arms_with_enough_users_are_non_inferior() -> None:
    same = [0.0, 1.0] * 2000
    verdict = decide(arm("m", same, 1), arm("n", same, 1), alpha=0.05, margin=0.05, tau=0.05, min_users_per_arm=30,
                     final=False)
    assert verdict.decision == "promote" and verdict.lower > -0.05 and verdict.p_value < 0.05


def test_msprt_p_value_and_interval_agree() -> None:
    estimate, variance, tau, alpha = 0.03, 0.0004, 0.05, 0.05
    lower, upper = always_valid_interval(estimate, variance, alpha, tau)
    assert msprt_p_value(estimate, variance, lower, tau) == pytest.approx(alpha)
    assert msprt_p_value(estimate, variance, upper, tau) == pytest.approx(alpha)
    assert msprt_p_value(estimate, variance, estimate, tau) == 1.0
    # Always valid costs width: wider than the fixed-sample interval, and it shrinks with more data.
    fixed = scipy_stats.norm.ppf(1 - alpha / 2) * variance ** 0.5
    assert upper - estimate > fixed
    assert always_valid_interval(estimate, variance / 4, alpha, tau)[1] < upper
    assert always_valid_interval(0.2, 0.0, alpha, tau) == (0.2, 0.2)


def test_looking_after_every_user_keeps_the_error_rate() -> None:
    # 2000 A/A experiments of 0/1 outcomes (p = 0.6), looked at every 20 users up to 2000 per arm:
    # the always-valid interval excludes the true difference 0 at some look in at most alpha of them,
    # where the fixed-sample interval looked at as often would be wrong far more often.
    rng = np.random.default_rng(7)
    a = (rng.random((2000, 2000)) < 0.6).cumsum(axis=1)
    b = (rng.random((2000, 2000)) < 0.6).cumsum(axis=1)
    n = np.arange(20, 2001, 20)
    p_a, p_b = a[:, n - 1] / n, b[:, n - 1] / n
    variance = (p_a * (1 - p_a) + p_b * (1 - p_b)) / n
    total = variance + 0.05**2
    half = np.sqrt(variance * total / 0.05**2 * (np.log(total / variance) - 2 * np.log(0.05)))
    assert half[0, 0] == pytest.approx(always_valid_interval(0.0, variance[0, 0], 0.05, 0.05)[1])
    sequential_errors = (np.abs(p_a - p_b) > half).any(axis=1).mean()
    naive_errors = (np.abs(p_a - p_b) > 1.96 * np.sqrt(variance)).any(axis=1).mean()
    assert sequential_errors <= 0.05 and naive_errors > 0.2


def test_arm_interval_contains_the_mean_and_stays_in_0_1() -> None:
    estimate, lower, upper = arm_interval(arm("m", [1.0, 1.0, 0.0] * 20, 1), alpha=0.05, tau=0.05)
    assert estimate == pytest.approx(2 / 3) and lower < estimate < upper <= 1.0
    assert arm_interval(arm("m", [1.0] * 40, 1), alpha=0.05, tau=0.05) == (1.0, 1.0, 1.0)


def test_a_nightly_that_rarely_answers_is_rolled_back_whatever_its_hits() -> None:
    verdict = decide(arm("m", [0.2] * 50), arm("n", [1.0] * 50), alpha=0.05, margin=0.02, tau=0.05,
                     min_users_per_arm=30, nightly_share=0.1, nightly_assigned_requests=200)
    assert verdict.decision == "rollback" and "answered only" in verdict.reason


def test_serve_share_counts_nightly_users_served_by_nightly() -> None:
    recs = [rec(1, 0, "n"), rec(1, 1, "m"), rec(2, 0, "m"), rec(3, 0, "n")]
    assert serve_share(recs, {1: True, 2: False, 3: True}, "n") == (3, 2 / 3)
    assert serve_share(recs, {}, "n") == (0, None)


def test_noninferiority_tests_respect_the_margin() -> None:
    same = [0.3, 0.4, 0.5, 0.6] * 30
    # Identical arms: non-inferior once the margin is large enough, not with a zero margin.
    assert welch_noninferiority(same, same, margin=0.2) < 0.05
    assert welch_noninferiority(same, same, margin=0.0) > 0.4
    assert two_proportion_noninferiority(300, 1000, 300, 1000, margin=0.05) < 0.05
    assert two_proportion_noninferiority(200, 1000, 300, 1000, margin=0.05) > 0.95
    assert two_proportion_noninferiority(0, 0, 1, 10, 0.05) == 1.0


def test_a_worse_nightly_with_zero_one_user_rates_is_not_called_non_inferior() -> None:
    # Most users make one or two requests: their hit rates are 0 or 1. A rank test on values
    # shifted by the margin counted every tie as a nightly win and promoted this nightly (p=1e-6).
    main = arm("m", [1.0] * 105 + [0.0] * 45, per_user_requests=1)  # 0.70
    nightly = arm("n", [1.0] * 75 + [0.0] * 75, per_user_requests=1)  # 0.50
    verdict = decide(main, nightly, alpha=0.05, margin=0.02, tau=0.05, min_users_per_arm=30)
    assert verdict.decision == "rollback" and verdict.p_value > 0.99
    same = [1.0] * 70 + [0.0] * 30
    assert 0.3 < welch_noninferiority(same, same, margin=0.0) < 0.7
    assert welch_noninferiority([1.0] * 75 + [0.0] * 75, [1.0] * 45 + [0.0] * 105, margin=0.02) < 1e-3
    assert welch_noninferiority([1.0] * 5, [1.0] * 5, margin=0.02) == 0.0  # no spread, exact difference
    assert welch_noninferiority([0.5], [0.5, 0.6], margin=0.02) == 1.0  # too few users to test


def test_only_requests_whose_horizon_has_passed_count() -> None:
    recs = [rec(1, 0, "m"), rec(2, 30, "m"), rec(3, 31, "n"), rec(4, 60, "n")]
    assert [r.user_id for r in settled(recs, HORIZON)] == [1, 2]
    assert settled([], HORIZON) == []


def test_a_clear_lift_on_a_hundred_users_per_arm_is_promoted_with_the_default_spread() -> None:
    # CI's release test: 0.630 vs 0.418 on 141 vs 120 users (variance of the difference 0.0017), Welch
    # p = 1e-7. With the mixture's spread equal to the margin (0.02, far below the standard error 0.04)
    # the always-valid interval was [-0.047, +0.471] and a nightly 21 points ahead was rolled back.
    rng = np.random.default_rng(3)
    main = arm("m", list(rng.binomial(2, 0.418, 120) / 2), per_user_requests=2)
    nightly = arm("n", list(rng.binomial(2, 0.630, 141) / 2), per_user_requests=2)
    assert nightly.mean_user_hit_rate - main.mean_user_hit_rate > 0.15
    assert 0.001 < main.variance_of_mean + nightly.variance_of_mean < 0.0025
    narrow = decide(main, nightly, alpha=0.05, margin=0.02, tau=0.02, min_users_per_arm=30)
    assert narrow.decision == "rollback" and narrow.lower < -0.02  # the old spread: undecided at the last look
    default = decide(main, nightly, alpha=0.05, margin=0.02, tau=0.05, min_users_per_arm=30)
    assert default.decision == "promote" and default.lower > 0.0
