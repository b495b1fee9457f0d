"""Ranking strategies: pure functions from a user's profile (arrays) to the top-n catalogue rows.

A `UserProfile` holds, for each film of the user's history known to the neighbour table (a
"source"), its rating (NaN when only watched), its recency rank (0 = most recent) and its
precomputed neighbour lists. Every strategy excludes every film of the history and fills up
to n with the cold-start list (popular, well-rated films).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

DEFAULT_N = 20
UNRATED_SEED_RATING = 3.0


@dataclass(frozen=True, eq=False)
class UserProfile:
    """A user's history as arrays aligned on sources (rows of the neighbour table)."""

    watched: np.ndarray  # (W,) int rows of every history film known to the table: never recommended
    ratings: np.ndarray  # (S,) float, NaN = watched but not rated
    recency: np.ndarray  # (S,) int, 0 = most recent event
    content_idx: np.ndarray  # (S, K) int, -1 = none
    content_sim: np.ndarray  # (S, K) float
    cooc_idx: np.ndarray  # (S, Kc) int, -1 = none
    cooc_sim: np.ndarray  # (S, Kc) float

    @property
    def size(self) -> int:
        return len(self.ratings)


@dataclass(frozen=True, eq=False)
class Catalogue:
    """Per-film arrays a strategy may use (indexed by table row)."""

    popularity: np.ndarray  # (N,) float
    popular_order: np.ndarray  # (M,) int rows, cold-start list, best first
    allowed: np.ndarray | None = None  # (N,) bool: films that may be recommended (None = all)

    @cached_property
    def log_popularity(self) -> np.ndarray:
        """log1p(popularity) scaled to [0, 1] (the blend's prior), computed once."""
        logged = np.log1p(np.maximum(self.popularity, 0.0))
        top = float(logged.max()) if logged.size else 0.0
        return logged / top if top > 0 else logged


@dataclass(frozen=True)
class Ranked:
    """The answer: rows best first, their scores, and whether any of them came from the history."""

    rows: list[int]
    scores: list[float]
    personalised: bool


@dataclass(frozen=True)
class BlendParams:
    """Weights of the `blend` strategy (chosen on the tuning half of ML-1M users, see offline_eval)."""

    cooc_weight: float = 1.0
    content_weight: float = 0.5
    popularity_weight: float = 0.02
    rating_slope: float = 0.15  # weight = 1 + slope * (rating - 3); unrated films count as `unrated_weight`
    unrated_weight: float = 1.0  # ML-1M has no unrated films: not tunable offline; 1.0 = like a rating of 3
    recency_half_life: float = 3.0  # history events; weight halves every `half_life` films back
    min_relative_weight: float = 1e-3  # sources weighing less than this x the top source are skipped (speed)


def empty_profile() -> UserProfile:
    none_i = np.zeros((0, 0), dtype=np.int32)
    none_f = np.zeros((0, 0), dtype=np.float32)
    return UserProfile(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64),
                       none_i, none_f, none_i, none_f)


def _accumulate(idx: np.ndarray, values: np.ndarray, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sum `values` per distinct non-negative row in `idx` -> (rows ascending, sums).

    With `size` (the catalogue's length) the sums are bins of a dense array (np.bincount), which is
    several times cheaper than sorting the rows (np.unique) for the few thousand neighbours of a
    request; both add each row's values in the same order, so the sums are bit-identical.
    """
    valid = idx >= 0
    rows = idx[valid]
    if rows.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    if size is None:
        unique, inverse = np.unique(rows, return_inverse=True)
        return unique, np.bincount(inverse, weights=values[valid], minlength=len(unique))
    sums = np.bincount(rows, weights=values[valid], minlength=size)
    reached = np.zeros(size, dtype=bool)
    reached[rows] = True
    unique = np.flatnonzero(reached)
    return unique, sums[unique]


def _finish(rows: np.ndarray, scores: np.ndarray, profile: UserProfile, catalogue: Catalogue, n: int) -> Ranked:
    """Drop watched/disallowed rows, sort by (score desc, popularity desc, row asc), fill from cold start."""
    if len(rows):
        watched = np.zeros(len(catalogue.popularity), dtype=bool)
        watched[profile.watched] = True
        keep = ~watched[rows]
        if catalogue.allowed is not None:
            keep &= catalogue.allowed[rows]
        rows, scores = rows[keep], scores[keep]
    if len(rows) > n:  # keep every row scoring at least the n-th best (ties included), then sort those
        threshold = np.partition(scores, len(scores) - n)[len(scores) - n]
        top = scores >= threshold
        rows, scores = rows[top], scores[top]
    order = np.lexsort((rows, -catalogue.popularity[rows], -scores))[:n]
    chosen = [int(r) for r in rows[order]]
    chosen_scores = [float(s) for s in scores[order]]
    personalised = bool(chosen)
    if len(chosen) < n:
        taken = set(chosen)
        taken.update(int(r) for r in profile.watched)
        for row in catalogue.popular_order:
            row = int(row)
            if row in taken or (catalogue.allowed is not None and not catalogue.allowed[row]):
                continue
            chosen.append(row)
            chosen_scores.append(0.0)
            taken.add(row)
            if len(chosen) == n:
                break
    return Ranked(chosen, chosen_scores, personalised)


def rank_popularity(profile: UserProfile, catalogue: Catalogue, n: int = DEFAULT_N) -> Ranked:
    """The cold-start list minus the user's films (not personalised)."""
    ranked = _finish(np.zeros(0, dtype=np.int64), np.zeros(0), profile, catalogue, n)
    return Ranked(ranked.rows, ranked.scores, False)


def rank_seed(profile: UserProfile, catalogue: Catalogue, n: int = DEFAULT_N) -> Ranked:
    """The original platform's logic.

    Sources are history films rated > 2 (unrated counts as 3); each contributes its 20 content
    neighbours; score(c) = sum over sources having c as neighbour of (source rating * popularity(c)).
    """
    ratings = np.where(np.isnan(profile.ratings), UNRATED_SEED_RATING, profile.ratings)
    qualifying = ratings > 2
    idx = profile.content_idx[qualifying]
    weights = np.broadcast_to(ratings[qualifying][:, None], idx.shape)
    rows, rating_sums = _accumulate(idx, weights, len(catalogue.popularity))
    return _finish(rows, rating_sums * catalogue.popularity[rows], profile, catalogue, n)


def source_weights(profile: UserProfile, params: BlendParams) -> np.ndarray:
    """Per-source weight: rating-centred (low ratings count less) times exponential recency decay."""
    rated = 1.0 + params.rating_slope * (profile.ratings - 3.0)
    weights = np.where(np.isnan(profile.ratings), params.unrated_weight, np.maximum(rated, 0.0))
    if params.recency_half_life > 0:
        weights = weights * np.power(0.5, profile.recency / params.recency_half_life)
    return weights


def rank_blend(profile: UserProfile, catalogue: Catalogue, n: int = DEFAULT_N,
               params: BlendParams = BlendParams()) -> Ranked:
    """Co-rating neighbours (learned from real ratings) + content neighbours + a popularity prior.

    score(c) = sum_s w_s * (a * cooc_sim(s, c) + b * content_sim(s, c)) / sum_s w_s + g * log-popularity(c),
    with w_s from `source_weights`. Films reachable from no source are not scored (cold-start fill).
    """
    weights = source_weights(profile, params)
    total = float(weights.sum())
    if total <= 0:
        return rank_popularity(profile, catalogue, n)
    used = weights >= weights.max() * params.min_relative_weight
    w = weights[used][:, None]
    parts_idx = [profile.cooc_idx[used].ravel(), profile.content_idx[used].ravel()]
    parts_val = [
        (params.cooc_weight * profile.cooc_sim[used] * w).ravel(),
        (params.content_weight * profile.content_sim[used] * w).ravel(),
    ]
    rows, sums = _accumulate(np.concatenate(parts_idx), np.concatenate(parts_val), len(catalogue.popularity))
    scores = sums / total + params.popularity_weight * catalogue.log_popularity[rows]
    return _finish(rows, scores, profile, catalogue, n)


def rank_itemknn(profile: UserProfile, catalogue: Catalogue, n: int = DEFAULT_N) -> Ranked:
    """Item-kNN baseline: sum of co-rating cosine similarities to every history film."""
    weights = np.ones(profile.size)
    rows, sums = _accumulate(profile.cooc_idx, profile.cooc_sim * weights[:, None], len(catalogue.popularity))
    return _finish(rows, sums, profile, catalogue, n)


Strategy = Callable[[UserProfile, Catalogue, int], Ranked]

STRATEGIES: dict[str, Strategy] = {
    "seed": rank_seed,
    "blend": rank_blend,
    "popularity": rank_popularity,
    "itemknn": rank_itemknn,
}
STRATEGY_VERSIONS: dict[str, str] = {"seed": "seed-v1", "blend": "blend-v1", "popularity": "popularity-v1",
                                     "itemknn": "itemknn-v1"}


class UnknownStrategy(ValueError):
    """The configured strategy name is not one of STRATEGIES."""


def strategy_named(name: str) -> Strategy:
    """The ranking function called `name`; raises UnknownStrategy with the valid names."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UnknownStrategy(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}") from None


def parse_strategies(text: str) -> Sequence[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        strategy_named(name)
    return names
