"""The precomputed neighbour table inference loads once per worker, and the pure maths behind it.

One compact `.npz` file holds, for every catalogue film (row i):
- its 20 nearest films by MiniLM cosine similarity (`content_idx[i]`, `content_sim[i]`),
- its nearest films by co-rating cosine over real MovieLens-1M ratings (`cooc_idx`, `cooc_sim`; -1 pads),
- its popularity, and the cold-start list (popular, well-rated films, best first),
plus the catalogue/model hash it was built from. Inference therefore needs no ChromaDB round trip
per watched film.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy import sparse

FORMAT_VERSION = 1
NEIGHBOURS_FILE = "neighbours.npz"
COLD_START_SIZE = 1000


class IndexMissing(FileNotFoundError):
    """The neighbour table has not been built (run `movierec index build`)."""


class IndexFormatError(ValueError):
    """The neighbour table file exists but cannot be read as this format."""


@dataclass(frozen=True, eq=False)
class NeighbourTable:
    """Everything the recommender needs about the catalogue, as arrays indexed by film row."""

    ids: tuple[str, ...]
    popularity: np.ndarray  # (N,) float32
    popular_order: np.ndarray  # (M,) int32, cold-start list, best first
    content_idx: np.ndarray  # (N, K) int32, -1 = none
    content_sim: np.ndarray  # (N, K) float32
    cooc_idx: np.ndarray  # (N, Kc) int32, -1 = none
    cooc_sim: np.ndarray  # (N, Kc) float32
    catalog_hash: str = ""
    model: str = ""
    built_at: str = ""
    row_of: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.row_of:
            self.row_of.update({movie_id: row for row, movie_id in enumerate(self.ids)})

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def has_content(self) -> bool:
        return self.content_idx.shape[1] > 0 and bool((self.content_idx >= 0).any())

    @cached_property
    def has_cooccurrence(self) -> bool:
        return self.cooc_idx.shape[1] > 0 and bool((self.cooc_idx >= 0).any())


def empty_neighbours(n: int, k: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n, k), -1, dtype=np.int32), np.zeros((n, k), dtype=np.float32)


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


def _percentile_rank(values: np.ndarray) -> np.ndarray:
    order = np.argsort(np.argsort(values, kind="stable"), kind="stable")
    return order / max(len(values) - 1, 1)


def popular_good_order(
    popularity: np.ndarray,
    vote_average: np.ndarray | None = None,
    vote_count: np.ndarray | None = None,
    limit: int = COLD_START_SIZE,
    quality_weight: float = 0.25,
    prior_votes: float = 200.0,
) -> np.ndarray:
    """Cold-start list: popularity rank, nudged by a Bayesian-averaged vote (films watched and liked).

    score = pct_rank(popularity) + quality_weight * pct_rank(bayes_vote); missing votes take the mean.
    """
    pop = np.nan_to_num(np.asarray(popularity, dtype=np.float64), nan=0.0)
    score = _percentile_rank(pop)
    if vote_average is not None and quality_weight:
        avg = np.asarray(vote_average, dtype=np.float64)
        count = (
            np.nan_to_num(np.asarray(vote_count, dtype=np.float64), nan=0.0)
            if vote_count is not None
            else np.zeros_like(avg)
        )
        known = ~np.isnan(avg)
        mean = float(avg[known].mean()) if known.any() else 0.0
        avg = np.where(known, avg, mean)
        bayes = (count * avg + prior_votes * mean) / (count + prior_votes)
        score = score + quality_weight * _percentile_rank(bayes)
    order = np.lexsort((np.arange(len(score)), -score))
    return order[:limit].astype(np.int32)


def save_table(path: Path, table: NeighbourTable) -> None:
    """Write the table atomically (a running worker never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT_VERSION,
        "catalog_hash": table.catalog_hash,
        "model": table.model,
        "built_at": table.built_at,
    }
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        ids=np.frombuffer("\n".join(table.ids).encode(), dtype=np.uint8),
        popularity=table.popularity.astype(np.float32),
        popular_order=table.popular_order.astype(np.int32),
        content_idx=table.content_idx.astype(np.int32),
        content_sim=table.content_sim.astype(np.float32),
        cooc_idx=table.cooc_idx.astype(np.int32),
        cooc_sim=table.cooc_sim.astype(np.float32),
    )
    os.replace(tmp, path)


def read_meta(path: Path) -> dict[str, str]:
    """The table's metadata (format, catalogue hash, model) without loading the arrays."""
    if not path.is_file():
        raise IndexMissing(f"no neighbour table at {path}; run `movierec index build`")
    try:
        with np.load(path, allow_pickle=False) as data:
            return json.loads(data["meta"].tobytes().decode())
    except (OSError, ValueError, KeyError) as exc:
        raise IndexFormatError(f"{path} is not a neighbour table: {exc}") from exc


def load_table(path: Path) -> NeighbourTable:
    """Load the table written by `save_table`; raises IndexMissing or IndexFormatError."""
    meta = read_meta(path)
    if meta.get("format") != FORMAT_VERSION:
        raise IndexFormatError(f"{path} has format {meta.get('format')}, expected {FORMAT_VERSION}; rebuild it")
    with np.load(path, allow_pickle=False) as data:
        raw_ids = data["ids"].tobytes().decode()
        ids = tuple(raw_ids.split("\n")) if raw_ids else ()
        return NeighbourTable(
            ids=ids,
            popularity=data["popularity"],
            popular_order=data["popular_order"],
            content_idx=data["content_idx"],
            content_sim=data["content_sim"],
            cooc_idx=data["cooc_idx"],
            cooc_sim=data["cooc_sim"],
            catalog_hash=meta.get("catalog_hash", ""),
            model=meta.get("model", ""),
            built_at=meta.get("built_at", ""),
        )
