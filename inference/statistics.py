"""Evaluation statistics, pure, shared by the offline evaluation (inference.evaluation, the release
gate) and the online evaluation (load_balancer.release.online_eval, the router's hit-rate gauge).

Ranking metrics of a recommendation list: `hit`, `ndcg`, `coverage`. Offline, the relevant films are a
user's held-out ratings; online, a served recommendation is a *hit* when the user starts watching one
of the recommended films within the horizon after the request. Users are the experimental unit
(assignment is sticky per user), so the arms are compared on per-user hit rates.

The decision is sequential: at every scheduled look, the difference nightly - main gets an
always-valid confidence interval (the normal-mixture mSPRT of Johari et al., "Always valid
inference", 2017): its coverage holds at every look at once, so looking often and stopping early
costs no error rate. Promote when the interval's lower end clears -margin (non-inferior), roll
back when its upper end is below 0 (shown worse), else extend until the maximum window.
A Welch t-test and a two-proportion z-test are reported alongside (fixed-sample, for reading only).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from scipy import stats as scipy_stats


def hit(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    """1.0 when any of the first k recommendations is relevant, else 0.0."""
    return 1.0 if any(item in relevant for item in recommended[:k]) else 0.0


def ndcg(recommended: Sequence[str], relevant: set[str], k: int) -> float:
    """Binary-relevance NDCG@k: sum of 1/log2(rank+1) over hits, over the best possible sum."""
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(rank + 2) for rank, item in enumerate(recommended[:k]) if item in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(relevant), k)))
    return dcg / ideal


def coverage(lists: Iterable[Sequence[str]], catalogue_size: int) -> float:
    """Share of the catalogue that appears in at least one recommendation list."""
    seen: set[str] = set()
    for items in lists:
        seen.update(items)
    return len(seen) / catalogue_size if catalogue_size else 0.0


Decision = Literal["promote", "rollback", "extend"]


@dataclass(frozen=True, slots=True)
class ServedRecommendation:
    user_id: int
    requested_at: datetime
    model_version: str | None
    results: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WatchStart:
    user_id: int
    movie_id: str
    first_seen: datetime


@dataclass(frozen=True)
class ArmSummary:
    """One arm's outcome: request-level and per-user hit rates."""

    version: str
    requests: int
    hits: int
    user_hit_rates: tuple[float, ...] = field(repr=False)

    @property
    def users(self) -> int:
        return len(self.user_hit_rates)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.requests if self.requests else 0.0

    @property
    def mean_user_hit_rate(self) -> float:
        return sum(self.user_hit_rates) / len(self.user_hit_rates) if self.user_hit_rates else 0.0

    @property
    def variance_of_mean(self) -> float:
        """Squared standard error of the mean per-user hit rate (0 with fewer than two users)."""
        if self.users < 2:
            return 0.0
        return float(np.var(self.user_hit_rates, ddof=1)) / self.users

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "requests": self.requests, "hits": self.hits, "users": self.users,
                "hit_rate": round(self.hit_rate, 6), "mean_user_hit_rate": round(self.mean_user_hit_rate, 6)}


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str
    p_value: float | None = None  # always-valid p of the decisive hypothesis (non-inferiority, or "not worse")
    z_p_value: float | None = None
    estimate: float | None = None  # nightly - main, mean per-user hit rate
    lower: float | None = None  # always-valid interval of the estimate
    upper: float | None = None
    welch_p_value: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def msprt_p_value(estimate: float, variance: float, null: float, tau: float) -> float:
    """Always-valid p-value for H0 "theta = null" from an estimate ~ N(theta, variance), normal mixture N(null, tau^2).

    p = 1 / likelihood ratio of the mixture against the null, capped at 1 (Johari et al. 2017, eq. 11).
    """
    if variance <= 0.0:
        return 1.0 if estimate == null else 0.0
    total = variance + tau * tau
    log_ratio = 0.5 * math.log(variance / total) + tau * tau * (estimate - null) ** 2 / (2.0 * variance * total)
    return float(min(1.0, math.exp(-log_ratio)))


def always_valid_interval(estimate: float, variance: float, alpha: float, tau: float) -> tuple[float, float]:
    """The (1 - alpha) confidence sequence of the mean: every null outside it has msprt_p_value < alpha."""
    if variance <= 0.0:
        return estimate, estimate
    total = variance + tau * tau
    half = math.sqrt(variance * total / (tau * tau) * (math.log(total / variance) - 2.0 * math.log(alpha)))
    return estimate - half, estimate + half


def arm_interval(arm: ArmSummary, alpha: float, tau: float) -> tuple[float, float, float]:
    """(estimate, lower, upper) of one arm's mean per-user hit rate, always valid, clipped to [0, 1]."""
    lower, upper = always_valid_interval(arm.mean_user_hit_rate, arm.variance_of_mean, alpha, tau)
    return arm.mean_user_hit_rate, max(0.0, lower), min(1.0, upper)


def is_hit(rec: ServedRecommendation, watches: Iterable[WatchStart], horizon: timedelta) -> bool:
    """True when a recommended film was first watched within `horizon` after the request."""
    end = rec.requested_at + horizon
    watched = {w.movie_id for w in watches if rec.requested_at <= w.first_seen <= end}
    return hit(rec.results, watched, len(rec.results)) == 1.0


def settled(recs: Sequence[ServedRecommendation], horizon: timedelta) -> list[ServedRecommendation]:
    """The requests whose whole horizon lies before the newest logged request (stream time).

    Younger requests cannot have all their hits logged yet; counting them would count their
    future hits as misses."""
    if not recs:
        return []
    cutoff = max(rec.requested_at for rec in recs) - horizon
    return [rec for rec in recs if rec.requested_at <= cutoff]


def summarise_arm(
    version: str, recs: Iterable[ServedRecommendation], watches: Iterable[WatchStart], horizon: timedelta
) -> ArmSummary:
    """Hits of `version`'s served recommendations, overall and per user."""
    by_user: dict[int, list[WatchStart]] = defaultdict(list)
    for watch in watches:
        by_user[watch.user_id].append(watch)
    per_user: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    requests = hits = 0
    for rec in recs:
        if rec.model_version != version:
            continue
        hit = is_hit(rec, by_user.get(rec.user_id, ()), horizon)
        requests += 1
        hits += hit
        per_user[rec.user_id][0] += hit
        per_user[rec.user_id][1] += 1
    rates = tuple(h / n for h, n in (per_user[u] for u in sorted(per_user)))
    return ArmSummary(version, requests, hits, rates)


def welch_noninferiority(nightly: Sequence[float], main: Sequence[float], margin: float) -> float:
    """One-sided Welch t-test p-value for H1 "mean(nightly) > mean(main) - margin" (per-user hit rates)."""
    if len(nightly) < 2 or len(main) < 2:
        return 1.0
    diff = float(np.mean(nightly)) - float(np.mean(main)) + margin
    if np.var(nightly) == 0.0 and np.var(main) == 0.0:
        return 0.0 if diff > 0 else 1.0  # no spread: the difference is exact
    p_value = scipy_stats.ttest_ind([v + margin for v in nightly], main, equal_var=False,
                                    alternative="greater").pvalue
    return float(p_value)


def two_proportion_noninferiority(hits_n: int, n_n: int, hits_m: int, n_m: int, margin: float) -> float:
    """One-sided z-test p-value for H1 "p_nightly > p_main - margin" (unpooled standard error)."""
    if n_n == 0 or n_m == 0:
        return 1.0
    p_n, p_m = hits_n / n_n, hits_m / n_m
    se = math.sqrt(p_n * (1 - p_n) / n_n + p_m * (1 - p_m) / n_m)
    diff = p_n - p_m + margin
    if se == 0.0:
        return 0.0 if diff > 0 else 1.0
    return float(scipy_stats.norm.sf(diff / se))


def serve_share(
    recs: Iterable[ServedRecommendation], assigned_to_nightly: Mapping[int, bool], nightly_version: str
) -> tuple[int, float | None]:
    """How many requests of nightly-assigned users there were, and the share nightly answered itself.

    The router retries a failed nightly request on main, so a low share means a failing nightly.
    """
    total = served = 0
    for rec in recs:
        if assigned_to_nightly.get(rec.user_id):
            total += 1
            served += rec.model_version == nightly_version
    return total, (served / total if total else None)


def decide(
    main: ArmSummary,
    nightly: ArmSummary,
    *,
    alpha: float,
    margin: float,
    tau: float,
    min_users_per_arm: int,
    final: bool = True,
    nightly_share: float | None = None,
    nightly_assigned_requests: int = 0,
    min_serve_share: float = 0.95,
) -> Verdict:
    """One look of the sequential test (see the module docstring); `final` = the maximum window is reached,
    so an undecided look rolls back instead of extending. `tau` is the spread of the mixture over the
    difference: the size of effect the test reaches a decision on fastest (any tau keeps the error rate)."""
    if nightly_share is not None and nightly_assigned_requests >= min_users_per_arm and nightly_share < min_serve_share:
        return Verdict("rollback", f"nightly answered only {nightly_share:.1%} of its users' requests "
                                   f"(minimum {min_serve_share:.0%}); the router retried the rest on main")
    if main.users < min_users_per_arm or nightly.users < min_users_per_arm:
        reason = f"too few users: main {main.users}, nightly {nightly.users} (minimum {min_users_per_arm} per arm)"
        return Verdict("rollback" if final else "extend",
                       f"{reason} at the end of the maximum window" if final else reason)
    estimate = nightly.mean_user_hit_rate - main.mean_user_hit_rate
    variance = nightly.variance_of_mean + main.variance_of_mean
    lower, upper = always_valid_interval(estimate, variance, alpha, tau)
    p_noninferior = msprt_p_value(estimate, variance, -margin, tau) if estimate > -margin else 1.0
    p_worse = msprt_p_value(estimate, variance, 0.0, tau) if estimate < 0 else 1.0
    welch_p = welch_noninferiority(nightly.user_hit_rates, main.user_hit_rates, margin)
    z_p = two_proportion_noninferiority(nightly.hits, nightly.requests, main.hits, main.requests, margin)
    summary = (f"per-user hit rate nightly {nightly.mean_user_hit_rate:.3f} vs main {main.mean_user_hit_rate:.3f} "
               f"({nightly.users} vs {main.users} users): difference {estimate:+.3f}, "
               f"{1 - alpha:.0%} always-valid interval [{lower:+.3f}, {upper:+.3f}]")
    figures = {"z_p_value": z_p, "estimate": estimate, "lower": lower, "upper": upper, "welch_p_value": welch_p}
    if lower > -margin:
        return Verdict("promote", f"nightly non-inferior (margin {margin}): {summary}, p={p_noninferior:.3g}",
                       p_noninferior, **figures)
    if upper < 0:
        return Verdict("rollback", f"nightly worse: {summary}, p={p_worse:.3g}", p_worse, **figures)
    if final:
        return Verdict("rollback", f"not shown non-inferior within the maximum window: {summary}, "
                                   f"p={p_noninferior:.3g}", p_noninferior, **figures)
    return Verdict("extend", f"undecided: {summary}, p={p_noninferior:.3g}", p_noninferior, **figures)
