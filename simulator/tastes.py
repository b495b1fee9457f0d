"""Hidden tastes learned from real ratings: item factors for the whole catalogue, a user prior.

- Films rated in ML-1M get their factors and bias from a biased ALS fit on the real ratings.
- Every other catalogue film gets [factors, bias] predicted from its content (genres, year, log
  popularity, votes, runtime, optionally its MiniLM embedding) by a ridge regression fitted on
  the rated films, so the real popularity acts as the prior of its bias.
- Simulated users are drawn around real ML-1M users (see `users.py`): the prototypes keep the
  real joint distribution of factors, bias, activity (ratings per user) and demographics.

Everything here is pure (DataFrames and arrays in, arrays out); files live in `tastes_store.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from simulator.factorization import FactorModel, fit_als

DEFAULT_RUNTIME_MINUTES = 100


class TasteError(ValueError):
    """The inputs cannot produce a taste model (no overlap between ratings and catalogue, ...)."""


@dataclass(frozen=True)
class TasteParams:
    rank: int = 24
    reg: float = 0.05
    epochs: int = 8
    seed: int = 0
    # Share of the ridge residual's spread added back to content-predicted factors, so that
    # unrated films are not all "average" films (seeded, deterministic).
    residual_scale: float = 0.5
    popularity_sharpness: float = 5.0  # candidate-pool weight = exp(sharpness * popularity percentile)


@dataclass(frozen=True)
class Tastes:
    """Item side over the catalogue and the real user prototypes (all aligned numpy arrays)."""

    global_mean: float
    item_ids: np.ndarray  # (n_items,) catalogue slugs
    item_factors: np.ndarray  # (n_items, rank) float32
    item_bias: np.ndarray  # (n_items,) float32
    item_rated: np.ndarray  # (n_items,) bool: factors fitted from real ratings
    popularity_weight: np.ndarray  # (n_items,) float64, sums to 1
    runtime_minutes: np.ndarray  # (n_items,) int32
    prototype_factors: np.ndarray  # (n_real_users, rank) float32
    prototype_bias: np.ndarray  # (n_real_users,) float32
    prototype_activity: np.ndarray  # (n_real_users,) int32, real ratings per user
    prototype_gender: np.ndarray  # (n_real_users,) str
    prototype_age: np.ndarray  # (n_real_users,) int32
    prototype_occupation: np.ndarray  # (n_real_users,) str

    @property
    def rank(self) -> int:
        return int(self.item_factors.shape[1])

    @property
    def n_items(self) -> int:
        return int(len(self.item_ids))

    def index_of(self) -> dict[str, int]:
        """slug -> item index (build once and keep)."""
        return {slug: i for i, slug in enumerate(self.item_ids.tolist())}

    def utilities(self, factors: np.ndarray, bias: float, items: np.ndarray | None = None) -> np.ndarray:
        """Hidden utility (on the 1-5 rating scale, unclipped) of `items` (default all) for one user."""
        if items is None:
            return self.global_mean + bias + self.item_bias + self.item_factors @ factors
        return self.global_mean + bias + self.item_bias[items] + self.item_factors[items] @ factors


def content_features(catalog: pd.DataFrame, embeddings: np.ndarray | None = None) -> np.ndarray:
    """Standardised content features per catalogue row: genres, year, popularity, votes, runtime."""
    genres = catalog["genres"].fillna("").astype(str)
    vocabulary = sorted({g for text in genres for g in text.split("|") if g})
    multi_hot = np.zeros((len(catalog), len(vocabulary)))
    position = {g: j for j, g in enumerate(vocabulary)}
    for row, text in enumerate(genres):
        for g in text.split("|"):
            if g in position:
                multi_hot[row, position[g]] = 1.0

    def numeric(column: str) -> tuple[np.ndarray, np.ndarray]:
        values = pd.to_numeric(catalog.get(column), errors="coerce") if column in catalog else None
        if values is None:
            return np.zeros(len(catalog)), np.ones(len(catalog))
        array = values.to_numpy(dtype=np.float64)
        missing = np.isnan(array)
        fill = float(np.nanmean(array)) if (~missing).any() else 0.0
        return np.where(missing, fill, array), missing.astype(np.float64)

    year, year_missing = numeric("year")
    popularity, _ = numeric("popularity")
    votes, votes_missing = numeric("vote_count")
    average, average_missing = numeric("vote_average")
    runtime, runtime_missing = numeric("runtime")
    log_popularity = np.log1p(np.clip(popularity, 0, None))
    log_votes = np.log1p(np.clip(votes, 0, None))
    year_centred = (year - 1990.0) / 20.0
    columns = [
        multi_hot, year_centred[:, None], (year_centred**2)[:, None], year_missing[:, None],
        log_popularity[:, None], log_votes[:, None], votes_missing[:, None], average[:, None],
        average_missing[:, None], np.clip(runtime, 0, 400)[:, None] / 100.0, runtime_missing[:, None],
    ]
    if embeddings is not None:
        columns.append(np.asarray(embeddings, dtype=np.float64))
    features = np.hstack(columns)
    std = features.std(axis=0)
    return (features - features.mean(axis=0)) / np.where(std > 0, std, 1.0)


def fit_ridge(x: np.ndarray, y: np.ndarray, lambdas: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0),
              seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Ridge regression x -> y with lambda picked on a 20% holdout; returns (weights, intercept, lambda)."""
    rng = np.random.default_rng(seed)
    holdout = rng.random(len(x)) < 0.2
    if holdout.all() or not holdout.any():
        holdout = np.zeros(len(x), dtype=bool)

    def solve(rows: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
        x_mean, y_mean = x[rows].mean(axis=0), y[rows].mean(axis=0)
        xc, yc = x[rows] - x_mean, y[rows] - y_mean
        weights = np.linalg.solve(xc.T @ xc + lam * np.eye(x.shape[1]), xc.T @ yc)
        return weights, y_mean - x_mean @ weights

    best = lambdas[0]
    if holdout.any():
        errors = []
        for lam in lambdas:
            weights, intercept = solve(~holdout, lam)
            errors.append(float(np.mean((x[holdout] @ weights + intercept - y[holdout]) ** 2)))
        best = lambdas[int(np.argmin(errors))]
    weights, intercept = solve(np.ones(len(x), dtype=bool), best)
    return weights, intercept, best


def popularity_weights(popularity: np.ndarray, sharpness: float) -> np.ndarray:
    """Candidate-pool weights from popularity percentiles (robust to each source's scale)."""
    values = np.nan_to_num(np.asarray(popularity, dtype=np.float64), nan=0.0)
    percentile = rankdata(values) / len(values)
    weights = np.exp(sharpness * (percentile - 1.0))
    return weights / weights.sum()


def build_tastes(
    catalog: pd.DataFrame,
    ratings: pd.DataFrame,
    users: pd.DataFrame,
    params: TasteParams = TasteParams(),
    embeddings: np.ndarray | None = None,
) -> Tastes:
    """Fit ALS on `ratings` (user_id, movie_id slug, rating), extend to the catalogue by content."""
    item_ids = catalog["id"].astype(str).to_numpy()
    position = pd.Series(np.arange(len(item_ids)), index=item_ids)
    ratings = ratings[ratings["movie_id"].isin(position.index)]
    if ratings.empty:
        raise TasteError("no rating names a catalogue film")
    rated_items, item_codes = np.unique(position[ratings["movie_id"]].to_numpy(), return_inverse=True)
    user_ids, user_codes = np.unique(ratings["user_id"].to_numpy(), return_inverse=True)
    model: FactorModel = fit_als(
        user_codes, item_codes, ratings["rating"].to_numpy(dtype=np.float64),
        len(user_ids), len(rated_items), rank=params.rank, reg=params.reg, epochs=params.epochs, seed=params.seed,
    )

    n_items = len(item_ids)
    factors = np.zeros((n_items, params.rank))
    bias = np.zeros(n_items)
    rated = np.zeros(n_items, dtype=bool)
    factors[rated_items] = model.item_factors
    bias[rated_items] = model.item_bias
    rated[rated_items] = True
    if (~rated).any():
        x = content_features(catalog, embeddings)
        targets = np.hstack([model.item_factors, model.item_bias[:, None]])
        weights, intercept, _ = fit_ridge(x[rated], targets, seed=params.seed)
        residual_std = (x[rated] @ weights + intercept - targets).std(axis=0)
        rng = np.random.default_rng([params.seed, 1])
        noise = rng.standard_normal(((~rated).sum(), targets.shape[1])) * residual_std * params.residual_scale
        predicted = x[~rated] @ weights + intercept + noise
        factors[~rated] = predicted[:, : params.rank]
        bias[~rated] = predicted[:, params.rank]

    runtime = pd.to_numeric(catalog.get("runtime"), errors="coerce") if "runtime" in catalog else None
    runtime_minutes = (
        np.full(n_items, DEFAULT_RUNTIME_MINUTES)
        if runtime is None
        else runtime.fillna(DEFAULT_RUNTIME_MINUTES).clip(1, 400).to_numpy()
    )
    activity = np.bincount(user_codes, minlength=len(user_ids))
    demographics = users.set_index("user_id").reindex(user_ids)
    return Tastes(
        global_mean=model.global_mean,
        item_ids=item_ids.astype(str),
        item_factors=factors.astype(np.float32),
        item_bias=bias.astype(np.float32),
        item_rated=rated,
        popularity_weight=popularity_weights(
            catalog["popularity"].to_numpy() if "popularity" in catalog else np.zeros(n_items),
            params.popularity_sharpness,
        ),
        runtime_minutes=runtime_minutes.astype(np.int32),
        prototype_factors=model.user_factors.astype(np.float32),
        prototype_bias=model.user_bias.astype(np.float32),
        prototype_activity=activity.astype(np.int32),
        prototype_gender=demographics["gender"].fillna("").to_numpy(dtype=str),
        prototype_age=pd.to_numeric(demographics["age"], errors="coerce").fillna(0).astype(np.int32).to_numpy(),
        prototype_occupation=demographics["occupation"].fillna("").astype(str).to_numpy(dtype=str),
    )
