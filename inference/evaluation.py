"""Offline-evaluation maths (pure): the per-user temporal split and the ranking metrics."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd


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
