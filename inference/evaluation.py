"""Offline-evaluation maths (pure): the per-user temporal split, the scores and the gate.

The ranking metrics (hit, NDCG, coverage) are inference.statistics, shared with the online evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from inference.statistics import coverage, hit, ndcg


def temporal_split(ratings: pd.DataFrame, holdout: int, min_train: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per user, the last `holdout` ratings (by timestamp, then input order) are the test set.

    Users with fewer than `holdout + min_train` ratings stay entirely in training.
    """
    ordered = ratings.reset_index(drop=True)
    ordered = ordered.assign(_pos=range(len(ordered))).sort_values(["user_id", "timestamp", "_pos"], kind="stable")
    from_end = ordered.groupby("user_id").cumcount(ascending=False)
    counts = ordered.groupby("user_id")["movie_id"].transform("size")
    is_test = (from_end < holdout) & (counts >= holdout + min_train)
    columns = [c for c in ordered.columns if c != "_pos"]
    return ordered.loc[~is_test, columns], ordered.loc[is_test, columns]


@dataclass(frozen=True)
class StrategyScore:
    strategy: str
    users: int
    hit_rate: float
    ndcg: float
    coverage: float
    hit_rate_liked: float
    ms_per_user: float


def score_lists(strategy: str, lists: dict[int, list[str]], relevant: dict[int, set[str]],
                liked: dict[int, set[str]], catalogue_size: int, k: int, seconds: float) -> StrategyScore:
    """Mean HR@k / NDCG@k over users, HR@k on liked films (users with any), and coverage."""
    users = sorted(lists)
    n = len(users)
    liked_users = [u for u in users if liked.get(u)]
    return StrategyScore(
        strategy=strategy,
        users=n,
        hit_rate=sum(hit(lists[u], relevant[u], k) for u in users) / n if n else 0.0,
        ndcg=sum(ndcg(lists[u], relevant[u], k) for u in users) / n if n else 0.0,
        coverage=coverage(lists.values(), catalogue_size),
        hit_rate_liked=(sum(hit(lists[u], liked[u], k) for u in liked_users) / len(liked_users)
                        if liked_users else 0.0),
        ms_per_user=1000.0 * seconds / n if n else 0.0,
    )


class GateFailed(RuntimeError):
    """The gated strategy is below the minimum hit rate or below the popularity baseline."""


def check_gate(scores: dict[str, StrategyScore], gate: str, min_hit_rate: float,
               baseline: str = "popularity") -> str:
    """A one-line verdict; raises GateFailed when `gate` is under `min_hit_rate` or under `baseline`."""
    gated = scores[gate]
    if gated.hit_rate < min_hit_rate:
        raise GateFailed(f"{gate} HR@20 {gated.hit_rate:.4f} < required {min_hit_rate:.4f}")
    if baseline in scores and gate != baseline and gated.hit_rate < scores[baseline].hit_rate:
        raise GateFailed(f"{gate} HR@20 {gated.hit_rate:.4f} < {baseline} {scores[baseline].hit_rate:.4f}")
    return f"gate passed: {gate} HR@20 {gated.hit_rate:.4f} >= {min_hit_rate:.4f} and >= {baseline}"
