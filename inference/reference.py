"""Strategies the offline evaluation fits on the protocol's training part: EASE, recency-weighted
EASE, ALS (from `implicit`) as reference rows, and `ranker`, the learned ranker's recipe.

Each is fitted once per evaluation on the training ratings only (held-out ratings never reach it)
and returns an ordinary strategy (profile, catalogue, n) -> Ranked.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from inference.ease import RankerParams
from inference.model import ModelRanker, fit_model
from inference.ranking import Catalogue, Ranked, UserProfile, _finish, rank_popularity
from vectordb_scripts.table import NeighbourTable

FittedStrategy = Callable[[UserProfile, Catalogue, int], Ranked]

# The reference rows: EASE at lambda 500 on whole histories; EASE with the history weighted
# 0.5 ** (position / 3) at lambda 2000; ALS with 64 factors, alpha 2, regularisation 20.
EASE_PARAMS = RankerParams(l2=500.0, ease_share=1.0, ease_half_life=0.0, content_weight=0.0, popularity_weight=0.0)
EASE_RECENCY_PARAMS = RankerParams(l2=2000.0, ease_share=1.0, ease_half_life=3.0, content_weight=0.0,
                                   popularity_weight=0.0)
ALS_FACTORS, ALS_ALPHA, ALS_REGULARIZATION, ALS_ITERATIONS = 64, 2.0, 20.0, 15
FITTED = ("ease", "ease-recency", "als", "ranker")


def _interactions(train: pd.DataFrame) -> pd.DataFrame:
    return train.rename(columns={"user_id": "user"})[["user", "movie_id", "timestamp"]]


def fit_reference(name: str, train: pd.DataFrame, table: NeighbourTable) -> FittedStrategy:
    """The strategy `name` (one of FITTED) fitted on `train` (user_id, movie_id, timestamp rows)."""
    if name == "als":
        return fit_als(train, table)
    params = {"ease": EASE_PARAMS, "ease-recency": EASE_RECENCY_PARAMS, "ranker": RankerParams()}[name]
    return ModelRanker(fit_model(_interactions(train), params, max_items=0, version=name), table)


class AlsRanker:
    """ALS item factors from `implicit`; a user's factors are solved from their history (one ALS
    user step, the same confidence weighting), so any history can be ranked."""

    def __init__(self, item_factors: np.ndarray, rows: np.ndarray, table_size: int, regularization: float,
                 alpha: float) -> None:
        self.items = item_factors.astype(np.float64)
        self.rows = rows
        self.code_of_row = np.full(table_size, -1, dtype=np.int64)
        self.code_of_row[rows] = np.arange(len(rows))
        self.gram = self.items.T @ self.items + regularization * np.eye(self.items.shape[1])
        self.alpha = alpha

    def __call__(self, profile: UserProfile, catalogue: Catalogue, n: int = 20) -> Ranked:
        codes = self.code_of_row[profile.watched]
        codes = codes[codes >= 0]
        if not len(codes):
            return rank_popularity(profile, catalogue, n)
        y = self.items[codes]
        confidence = self.alpha
        a = self.gram + (confidence - 1.0) * (y.T @ y)
        user = np.linalg.solve(a, confidence * y.sum(axis=0))
        return _finish(self.rows, self.items @ user, profile, catalogue, n)


def fit_als(train: pd.DataFrame, table: NeighbourTable) -> AlsRanker:
    """implicit's AlternatingLeastSquares on the binary user x film matrix of `train`."""
    from implicit.als import AlternatingLeastSquares
    from scipy import sparse
    from threadpoolctl import threadpool_limits

    rows = train["movie_id"].map(table.row_of).to_numpy(dtype=np.int64)
    films, codes = np.unique(rows, return_inverse=True)
    users = pd.factorize(train["user_id"].to_numpy())[0]
    matrix = sparse.csr_matrix((np.ones(len(codes), np.float32), (users, codes)),
                               shape=(int(users.max()) + 1, len(films)))
    matrix.data[:] = 1.0
    with threadpool_limits(1, "blas"):  # implicit parallelises itself; nested BLAS threads only slow it
        model = AlternatingLeastSquares(factors=ALS_FACTORS, regularization=ALS_REGULARIZATION, alpha=ALS_ALPHA,
                                        iterations=ALS_ITERATIONS, random_state=0, use_gpu=False)
        model.fit(matrix, show_progress=False)
    return AlsRanker(np.asarray(model.item_factors), films, len(table), ALS_REGULARIZATION, ALS_ALPHA)
