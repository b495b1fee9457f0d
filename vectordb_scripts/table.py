"""The precomputed neighbour table inference loads once per worker: its format, reading, writing, cold-start list.

One compact `.npz` file holds, for every catalogue film (row i):
- its 20 nearest films by MiniLM cosine similarity (`content_idx[i]`, `content_sim[i]`),
- its nearest films by co-rating cosine over real MovieLens-1M ratings (`cooc_idx`, `cooc_sim`; -1 pads),
- its popularity, and the cold-start list (popular, well-rated films, best first),
plus the catalogue/model hash it was built from. Inference therefore needs no ChromaDB round trip
per watched film. The neighbours themselves are computed at build time (vectordb_scripts.neighbours,
vectordb_scripts.index); this module, read at request time, imports none of that.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

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
