"""The recommendation engine of one worker: neighbour table + strategy (+ ChromaDB for table misses).

Loaded once per worker. A request costs one dictionary lookup per history film and a few numpy
operations; ChromaDB is consulted (one batched query) only for history films the table lacks.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from db_utils.queries import HistoryItem
from inference.breaker import CircuitBreaker
from inference.ranking import Catalogue, Ranked, Strategy, UserProfile, empty_profile, rank_popularity
from vectordb_scripts.table import NeighbourTable

log = logging.getLogger(__name__)

Neighbours = tuple[np.ndarray, np.ndarray]  # (rows, similarities) of one film


class VectorIndexDown(RuntimeError):
    """Neighbours were needed and neither the table nor ChromaDB could provide them."""


@dataclass(frozen=True)
class Recommendation:
    movie_ids: list[str]
    scores: list[float]
    kind: str  # personalised | cold_start | fallback
    fallback_reason: str | None = None


class ChromaNeighbours:
    """Content neighbours from ChromaDB for films missing from the table: one batched query per request.

    Results (and films Chroma does not know) are cached per worker, so a film costs at most one lookup.
    The client opens on first use (embedded: ~1 s and ~110 MB once per worker); after a failure
    Chroma is skipped for `retry_seconds` so a dead server cannot slow every request down.
    """

    def __init__(self, chroma_url: str, chroma_path: Path, collection: str, row_of: dict[str, int],
                 k: int = 20, cache_size: int = 10000, retry_seconds: float = 30.0) -> None:
        self._url, self._path, self._name = chroma_url, chroma_path, collection
        self._row_of, self._k, self._cache_size = row_of, k, cache_size
        self.breaker = CircuitBreaker(retry_seconds)
        self._collection: Any = None
        self._cache: OrderedDict[str, Neighbours | None] = OrderedDict()
        self._lock = threading.Lock()
        self._open_lock = threading.Lock()  # one client per worker: threads must not open it side by side

    def _open(self) -> Any:
        from vectordb_scripts import chroma

        with self._open_lock:
            if self._collection is None:
                client = chroma.open_client(self._url, self._path, create=False)
                self._collection = chroma.open_collection(client, self._name, create=False)
            return self._collection

    def lookup(self, movie_ids: Sequence[str]) -> dict[str, Neighbours]:
        """Neighbours of the films Chroma holds; raises VectorIndexDown when Chroma cannot answer."""
        from vectordb_scripts import chroma

        if self._cache_size:
            with self._lock:
                cached = {m: self._cache[m] for m in movie_ids if m in self._cache}
        else:
            cached = {}
        missing = [m for m in movie_ids if m not in cached]
        if missing:
            if not self.breaker.allow():
                raise VectorIndexDown("ChromaDB marked down; retrying after the breaker delay")
            try:
                collection = self._open()
                found, embeddings = chroma.fetch_embeddings(collection, missing)
                ids, sims = chroma.query_neighbours(collection, embeddings, self._k + 1)
            except Exception as exc:  # Chroma raises many types (HTTP, sqlite, value errors)
                self._collection = None
                self.breaker.failure()
                raise VectorIndexDown(f"ChromaDB lookup failed: {exc}") from exc
            self.breaker.success()
            fresh: dict[str, Neighbours | None] = dict.fromkeys(missing)
            for movie_id, row_ids, row_sims in zip(found, ids, sims, strict=True):
                pairs = [(self._row_of[i], s) for i, s in zip(row_ids, row_sims, strict=True)
                         if i != movie_id and i in self._row_of][: self._k]
                fresh[movie_id] = (np.array([p[0] for p in pairs], dtype=np.int64),
                                   np.array([p[1] for p in pairs], dtype=np.float32))
            if self._cache_size:
                with self._lock:
                    for movie_id, value in fresh.items():
                        self._cache[movie_id] = value
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
            cached.update(fresh)
        return {m: v for m, v in cached.items() if v is not None}


def _pad(lists: list[Neighbours], width: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.full((len(lists), width), -1, dtype=np.int64)
    val = np.zeros((len(lists), width), dtype=np.float32)
    for i, (rows, sims) in enumerate(lists):
        idx[i, : len(rows)] = rows[:width]
        val[i, : len(sims)] = sims[:width]
    return idx, val


def build_profile(table: NeighbourTable, history: Sequence[HistoryItem],
                  extra: dict[str, Neighbours] | None = None) -> UserProfile:
    """Arrays for the ranking functions, one source per history film with known neighbours.

    Content neighbours come from `extra` (ChromaDB answers) when given for a film, else from the
    table; co-rating neighbours always from the table. Every history film the table knows is excluded.
    """
    extra = extra or {}
    row_of = table.row_of
    all_rows = np.fromiter((row_of.get(item.movie_id, -1) for item in history), dtype=np.int64, count=len(history))
    all_ratings = np.fromiter((np.nan if item.rating is None else item.rating for item in history),
                              dtype=np.float64, count=len(history))
    in_table = all_rows >= 0
    watched = all_rows[in_table]
    if extra:
        in_extra = np.fromiter((item.movie_id in extra for item in history), dtype=bool, count=len(history))
        is_source = in_table | in_extra
        from_extra = [extra.get(item.movie_id) for item, ok in zip(history, is_source, strict=True) if ok]
    else:
        is_source = in_table
        from_extra = []
    rows = all_rows[is_source]
    ratings = all_ratings[is_source]
    recency = np.flatnonzero(is_source).astype(np.float64)
    source_rows = rows
    known = source_rows >= 0
    safe = np.where(known, source_rows, 0)
    content_idx = table.content_idx[safe].astype(np.int64)
    content_sim = table.content_sim[safe].astype(np.float32)
    cooc_idx = np.where(known[:, None], table.cooc_idx[safe], -1).astype(np.int64)
    cooc_sim = np.where(known[:, None], table.cooc_sim[safe], 0.0).astype(np.float32)
    if any(e is not None for e in from_extra):
        lists = [(content_idx[i][content_idx[i] >= 0], content_sim[i][content_idx[i] >= 0]) if e is None else e
                 for i, e in enumerate(from_extra)]
        content_idx, content_sim = _pad(lists, max(len(r) for r, _ in lists))
    return UserProfile(watched=watched, ratings=ratings, recency=recency, content_idx=content_idx,
                       content_sim=content_sim, cooc_idx=cooc_idx, cooc_sim=cooc_sim)


class Recommender:
    """A worker's engine: the loaded table, the chosen strategy, and the ChromaDB fallback.

    With `live_chroma` every request takes the content neighbours of all its history films from
    ChromaDB (give it a ChromaNeighbours without a cache): the original design, kept to measure.
    """

    def __init__(self, table: NeighbourTable, strategy: Strategy, chroma: ChromaNeighbours | None = None,
                 n: int = 20, live_chroma: bool = False,
                 on_chroma_failure: Callable[[], None] | None = None) -> None:
        self.table = table
        self.strategy = strategy
        self.chroma = chroma
        self.n = n
        self.live_chroma = live_chroma and chroma is not None
        self.on_chroma_failure = on_chroma_failure  # counts lookups the table (or the fallback list) answered
        self.catalogue = Catalogue(popularity=table.popularity.astype(np.float64), popular_order=table.popular_order)

    def _ids(self, ranked: Ranked) -> tuple[list[str], list[float]]:
        return [self.table.ids[r] for r in ranked.rows], ranked.scores

    def popular(self, history: Sequence[HistoryItem] = (), reason: str | None = None) -> Recommendation:
        """The cold-start list minus the user's films; a fallback when `reason` is given."""
        profile = build_profile(self.table, history) if history else empty_profile()
        ids, scores = self._ids(rank_popularity(profile, self.catalogue, self.n))
        return Recommendation(ids, scores, "fallback" if reason else "cold_start", reason)

    def recommend(self, history: Sequence[HistoryItem]) -> Recommendation:
        """Top-n for this history; raises VectorIndexDown when neighbours are needed but unavailable."""
        if not history:
            return self.popular()
        table = self.table
        if self.live_chroma:
            missing = [h.movie_id for h in history]
        else:  # films whose content neighbours the table lacks (catalogue newer than the table, or no table)
            missing = [h.movie_id for h in history if not table.has_content or h.movie_id not in table.row_of]
        extra: dict[str, Neighbours] = {}
        if missing:
            if self.chroma is None:
                if not table.has_content:
                    raise VectorIndexDown("no neighbour table and no ChromaDB configured")
            else:
                try:
                    extra = self.chroma.lookup(missing)
                except VectorIndexDown as exc:
                    if self.on_chroma_failure is not None:
                        self.on_chroma_failure()
                    if not table.has_content:
                        raise
                    log.warning("ChromaDB unavailable for %d films (the table answers): %s", len(missing), exc)
        profile = build_profile(table, history, extra)
        ranked = self.strategy(profile, self.catalogue, self.n)
        ids, scores = self._ids(ranked)
        return Recommendation(ids, scores, "personalised" if ranked.personalised else "cold_start")
