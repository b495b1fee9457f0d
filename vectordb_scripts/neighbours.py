"""The neighbours of the table, computed at build time (`movierec index build`): exact nearest films by
content embedding, and co-rating neighbours over real ratings. The table's format is vectordb_scripts.table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

from vectordb_scripts.table import empty_neighbours


def exact_neighbours(embeddings: np.ndarray, k: int, block_rows: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows by cosine (rows must be L2-normalised), self excluded, best first.

    Ties break on the lower row number so the result is deterministic.
    """
    n = len(embeddings)
    k_eff = min(k, max(n - 1, 0))
    idx, sim = empty_neighbours(n, k)
    if k_eff == 0:
        return idx, sim
    matrix = np.ascontiguousarray(embeddings, dtype=np.float32)
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        scores = matrix[start:stop] @ matrix.T
        scores[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        top = _top_k_rows(scores, k_eff)
        idx[start:stop, :k_eff] = top
        sim[start:stop, :k_eff] = np.take_along_axis(scores, top, axis=1)
    return idx, sim


def _top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest values per row, sorted by (value desc, column asc)."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -values), axis=1)
    return np.take_along_axis(part, order, axis=1).astype(np.int32)


def cooccurrence_neighbours(
    user_codes: np.ndarray, item_rows: np.ndarray, n_items: int, k: int, block_rows: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Item-item co-rating cosine, |U_i & U_j| / sqrt(|U_i| |U_j|), top k per item (self excluded).

    `user_codes[t]` rated `item_rows[t]` (any rating counts). Items never rated get no neighbours.
    """
    idx, sim = empty_neighbours(n_items, k)
    if len(item_rows) == 0 or k == 0:
        return idx, sim
    active = np.unique(item_rows)
    local = np.searchsorted(active, item_rows)
    users = np.unique(user_codes, return_inverse=True)[1]
    matrix = sparse.csr_matrix(
        (np.ones(len(local), dtype=np.float32), (users, local)), shape=(users.max() + 1, len(active))
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0  # a (user, item) pair rated twice counts once
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    norms = np.sqrt(np.maximum(counts, 1.0))
    by_item = matrix.T.tocsr()
    k_eff = min(k, len(active) - 1)
    if k_eff <= 0:
        return idx, sim
    for start in range(0, len(active), block_rows):
        stop = min(start + block_rows, len(active))
        co = (by_item[start:stop] @ matrix).toarray()
        co /= norms[start:stop, None] * norms[None, :]
        co[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        top = _top_k_rows(co, k_eff)
        values = np.take_along_axis(co, top, axis=1)
        rows = active[start:stop]
        idx[rows, :k_eff] = np.where(values > 0, active[top], -1)
        sim[rows, :k_eff] = np.where(values > 0, values, 0.0)
    return idx, sim


def table_recall(
    reference_ids: Sequence[str], reference_idx: np.ndarray, ids: Sequence[str], idx: np.ndarray
) -> float | None:
    """Recall of neighbour lists against reference lists of the same films: |found & expected| / |expected|.

    Rows are matched by film id (the two tables may order films differently); -1 marks no neighbour.
    Films missing from either table are left out; None when nothing is left to compare.
    """
    row_of = {film: row for row, film in enumerate(ids)}
    hits = total = 0
    for ref_row, film in enumerate(reference_ids):
        row = row_of.get(film)
        if row is None:
            continue
        expected = {reference_ids[j] for j in reference_idx[ref_row] if j >= 0}
        found = {ids[j] for j in idx[row] if j >= 0}
        hits += len(expected & found)
        total += len(expected)
    return hits / total if total else None
