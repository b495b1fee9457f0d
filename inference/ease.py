"""The learned ranker's maths (pure numpy/scipy): EASE, recency weights and a sequence model.

EASE (Steck 2019): B = argmin ||X - XB||^2 + lambda ||B||^2 with diag(B) = 0, closed form
B = -P / diag(P), P = (X^T X + lambda I)^-1, over the items that have interactions; rows of X are
users' histories. The sequence model (SLIT, Choi et al. 2021) regresses the next films of a
sequence on its last films (recency-weighted), also in closed form. The ranker scores a user's
recency-weighted history with the blend of both matrices (ML-1M users rate in sessions: the next
films follow the last ones).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse


@dataclass(frozen=True)
class RankerParams:
    """Hyper-parameters of the learned ranker (chosen on even ML-1M user ids, see inference.model_tuning)."""

    l2: float = 2000.0  # EASE ridge lambda
    train_half_life: float = 0.0  # recency half-life of EASE's training rows (0 = every film weighs 1)
    seq_l2: float = 100.0  # sequence model ridge lambda
    seq_source_len: int = 20  # films before a position the sequence model sees
    seq_source_half_life: float = 3.0  # their recency half-life
    seq_targets: int = 10  # films after a position it learns to predict
    seq_stride: int = 2  # one training pair every `stride` positions of a sequence
    ease_share: float = 0.7  # score = share * EASE score + (1 - share) * sequence model score
    ease_half_life: float = 10.0  # recency half-life of the history EASE scores (films back; 0 = none)
    half_life: float = 3.0  # recency half-life of the history the sequence model and content neighbours score
    popularity_weight: float = 0.002  # x log(1 + interactions) / its maximum, added to every modelled film
    content_weight: float = 0.3  # films without interactions: weighted content similarity x this
    min_relative_weight: float = 1e-3  # history films weighing less than this x the newest are skipped


def recency_weights(positions: np.ndarray, half_life: float) -> np.ndarray:
    """0.5 ** (position / half_life) with position 0 = newest; all ones when half_life <= 0."""
    positions = np.asarray(positions, dtype=np.float64)
    if half_life <= 0:
        return np.ones_like(positions)
    return np.power(0.5, positions / half_life)


def positions_from_end(user_codes: np.ndarray) -> np.ndarray:
    """For rows sorted by (user, time): 0 for each user's newest row, 1 for the one before, ..."""
    user_codes = np.asarray(user_codes)
    n = len(user_codes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    is_last = np.ones(n, dtype=bool)
    is_last[:-1] = user_codes[1:] != user_codes[:-1]
    ends = np.flatnonzero(is_last)
    end_of_row = ends[np.searchsorted(ends, np.arange(n))]
    return end_of_row - np.arange(n)


def interaction_matrix(user_codes: np.ndarray, item_codes: np.ndarray, n_users: int, n_items: int,
                       weights: np.ndarray | None = None) -> sparse.csr_matrix:
    """Users x items, float32; a repeated (user, item) keeps its largest weight."""
    values = np.ones(len(item_codes), dtype=np.float32) if weights is None else weights.astype(np.float32)
    order = np.lexsort((-values, item_codes, user_codes))
    u, i, v = user_codes[order], item_codes[order], values[order]
    first = np.ones(len(u), dtype=bool)
    first[1:] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
    return sparse.csr_matrix((v[first], (u[first], i[first])), shape=(n_users, n_items), dtype=np.float32)


def fit_ease(matrix: sparse.spmatrix, l2: float) -> np.ndarray:
    """The EASE item-item weights (items x items, float32, zero diagonal) of a users x items matrix."""
    gram = np.asarray((matrix.T @ matrix).toarray(), dtype=np.float64)
    gram[np.diag_indices_from(gram)] += l2
    precision = linalg.inv(gram, overwrite_a=True, check_finite=False)
    del gram
    diagonal = np.diag(precision).copy()
    precision /= -diagonal[None, :]
    np.fill_diagonal(precision, 0.0)
    return np.ascontiguousarray(precision, dtype=np.float32)  # rows are gathered per request: C order


def sequence_pairs(user_codes: np.ndarray, item_codes: np.ndarray, n_items: int, source_len: int,
                   source_half_life: float, targets: int, stride: int) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """(sources, targets) matrices of the sequence model from rows sorted by (user, time).

    One pair per `stride`-th position t of each user's sequence (with a film after it): the source
    row holds the films t, t-1, ..., t-source_len+1 weighted 0.5 ** (lag / source_half_life), the
    target row the next `targets` films (weight 1).
    """
    user_codes, item_codes = np.asarray(user_codes), np.asarray(item_codes)
    n = len(user_codes)
    if n == 0:
        empty = sparse.csr_matrix((0, n_items), dtype=np.float32)
        return empty, empty
    starts = np.r_[0, np.flatnonzero(user_codes[1:] != user_codes[:-1]) + 1]
    seq_start = starts[np.searchsorted(starts, np.arange(n), side="right") - 1]
    t = np.flatnonzero((np.arange(n) - seq_start) % max(stride, 1) == 0)
    t = t[t + 1 < n]
    t = t[user_codes[t + 1] == user_codes[t]]
    pair = np.arange(len(t))
    s_rows, s_cols, s_vals, t_rows, t_cols = [], [], [], [], []
    for lag in range(source_len):
        ok = t - lag >= seq_start[t]
        s_rows.append(pair[ok])
        s_cols.append(item_codes[t[ok] - lag])
        s_vals.append(np.full(int(ok.sum()), recency_weights(np.array([lag]), source_half_life)[0], np.float32))
    for lead in range(1, targets + 1):
        ok = t + lead < n
        ok[ok] = user_codes[t[ok] + lead] == user_codes[t[ok]]
        t_rows.append(pair[ok])
        t_cols.append(item_codes[t[ok] + lead])
    shape = (len(t), n_items)
    sources = sparse.csr_matrix((np.concatenate(s_vals), (np.concatenate(s_rows), np.concatenate(s_cols))),
                                shape=shape, dtype=np.float32)
    rows = np.concatenate(t_rows)
    target = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, np.concatenate(t_cols))),
                               shape=shape, dtype=np.float32)
    return sources, target


def fit_sequence_model(chunks: Iterable[tuple[sparse.spmatrix, sparse.spmatrix]], n_items: int,
                       l2: float) -> np.ndarray:
    """Ridge regression from recent films to the next films (SLIT, Choi et al. 2021):
    B = (S^T S + lambda I)^-1 S^T T, items x items float32. S and T come in row chunks (pairs of
    some users each) whose products are summed, so memory stays at two items x items matrices."""
    # Fortran order lets LAPACK solve in place (C-ordered inputs would be copied: 2 x 8 x items^2 bytes more).
    gram = np.zeros((n_items, n_items), dtype=np.float64, order="F")
    cross = np.zeros((n_items, n_items), dtype=np.float64, order="F")
    for sources, targets in chunks:
        gram += (sources.T @ sources).toarray()
        cross += (sources.T @ targets).toarray()
    gram[np.diag_indices_from(gram)] += l2
    weights = linalg.solve(gram, cross, assume_a="pos", overwrite_a=True, overwrite_b=True, check_finite=False)
    return np.ascontiguousarray(weights, dtype=np.float32)


def user_chunks(user_codes: np.ndarray, rows_per_chunk: int) -> list[tuple[int, int]]:
    """(start, stop) row ranges of about `rows_per_chunk` rows that never split a user's rows."""
    n = len(user_codes)
    bounds = [0]
    while bounds[-1] < n:
        stop = min(bounds[-1] + rows_per_chunk, n)
        while 0 < stop < n and user_codes[stop] == user_codes[stop - 1]:
            stop += 1
        bounds.append(stop)
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def score_items(weights_matrix: np.ndarray, history: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Scores over the model's items for one history (model item codes, any order):
    sum_h weights[h] * B[history[h]] / sum(weights)."""
    if len(history) == 0:
        return np.zeros(weights_matrix.shape[1], dtype=np.float32)
    scores = weights.astype(np.float32) @ weights_matrix[history]
    total = float(weights.sum())
    return scores / total if total > 0 else scores
