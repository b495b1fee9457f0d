"""What a simulated user does, as pure functions of its hidden utilities and a random generator.

Choosing from a shown list: the user scans it top down; film r appeals with probability
`position_weight(r) * appeal(utility_r)` and the first appealing film is picked. So the chance of
picking anything from a list (a "hit") is 1 - prod(1 - w_r * a(u_r)), which is highest for the
user's true top utilities shown best first: that is the best achievable hit rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.tastes import Tastes


@dataclass(frozen=True)
class BehaviourParams:
    appeal_max: float = 0.3  # chance that an ideal film in first position is picked
    appeal_threshold: float = 4.0  # utility at which appeal is half of appeal_max
    appeal_scale: float = 0.25  # softness of the appeal curve (rating points)
    pool_size: int = 200  # popularity-weighted candidates when choosing by own taste
    taste_temperature: float = 0.3  # softmax temperature over utilities in that pool
    stop_threshold: float = 3.2  # utility at which half of the viewers stop early
    stop_scale: float = 0.3
    rate_probability: float = 0.35  # chance to rate a film watched to the end
    rate_probability_stopped: float = 0.15  # chance to rate a film stopped early
    rating_noise: float = 0.6  # std of the rating around the utility
    top_n: int = 20  # length of a recommendation list (and of the oracle list)


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def position_weights(n: int) -> np.ndarray:
    """Attention paid to positions 0..n-1 of a list (DCG-style decay, 1 at the top)."""
    return 1.0 / np.log2(np.arange(n) + 2.0)


def pick_probabilities(utilities: np.ndarray, params: BehaviourParams) -> np.ndarray:
    """Per-position probability that the film appeals (NaN utility = unknown or seen film = 0)."""
    utilities = np.asarray(utilities, dtype=np.float64)
    appeal = params.appeal_max * _sigmoid((utilities - params.appeal_threshold) / params.appeal_scale)
    appeal = np.where(np.isnan(utilities), 0.0, appeal)
    return appeal * position_weights(len(utilities))


def hit_probability(utilities: np.ndarray, params: BehaviourParams) -> float:
    """Chance that the user picks some film of a list whose films have these utilities, in order."""
    if len(utilities) == 0:
        return 0.0
    return float(1.0 - np.prod(1.0 - pick_probabilities(utilities, params)))


def choose_from_list(utilities: np.ndarray, rng: np.random.Generator, params: BehaviourParams) -> int | None:
    """Index of the film picked from a shown list, or None when nothing appeals."""
    if len(utilities) == 0:
        return None
    appealing = rng.random(len(utilities)) < pick_probabilities(utilities, params)
    return int(np.argmax(appealing)) if appealing.any() else None


def choose_by_taste(
    tastes: Tastes,
    factors: np.ndarray,
    bias: float,
    seen: set[int],
    rng: np.random.Generator,
    params: BehaviourParams,
    cumulative_popularity: np.ndarray,
) -> int:
    """An item index from a popularity-weighted pool, by a softmax over the user's utilities."""
    pool = np.searchsorted(cumulative_popularity, rng.random(params.pool_size) * cumulative_popularity[-1])
    pool = np.unique(np.minimum(pool, tastes.n_items - 1))
    if seen:  # a set lookup per candidate: far cheaper than np.isin's sort for a few hundred
        fresh = pool[np.fromiter((item not in seen for item in pool.tolist()), dtype=bool, count=len(pool))]
        pool = fresh if len(fresh) else pool
    utilities = tastes.utilities(factors, bias, pool).astype(np.float64)
    logits = (utilities - utilities.max()) / params.taste_temperature
    weights = np.exp(logits)
    return int(pool[rng.choice(len(pool), p=weights / weights.sum())])


def minutes_watched(utility: float, runtime_minutes: int, rng: np.random.Generator, params: BehaviourParams) -> int:
    """The last minute streamed (0-based); films the user dislikes are more often stopped early."""
    runtime = max(int(runtime_minutes), 1)
    stop_probability = float(_sigmoid((params.stop_threshold - utility) / params.stop_scale))
    if runtime > 1 and rng.random() < stop_probability:
        return int(rng.integers(0, runtime - 1))
    return runtime - 1


def maybe_rating(utility: float, completed: bool, rng: np.random.Generator, params: BehaviourParams) -> int | None:
    """A 1-5 rating (utility plus noise, rounded) or None when the user does not rate."""
    chance = params.rate_probability if completed else params.rate_probability_stopped
    if rng.random() >= chance:
        return None
    return int(np.clip(np.rint(utility + rng.normal(0.0, params.rating_noise)), 1, 5))


def oracle_list(tastes: Tastes, factors: np.ndarray, bias: float, seen: set[int], n: int) -> np.ndarray:
    """The user's n best unseen films by true utility, best first (the best possible list)."""
    utilities = tastes.utilities(factors, bias).astype(np.float64)
    if seen:
        utilities[np.fromiter(seen, dtype=np.int64, count=len(seen))] = -np.inf
    n = min(n, len(utilities))
    top = np.argpartition(-utilities, n - 1)[:n]
    return top[np.argsort(-utilities[top], kind="stable")]
