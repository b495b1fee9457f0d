"""One worker's recommendation service: loads the table, the database edge and the strategy once,
and turns a user id into an answer that is always a list (fallbacks are counted, never raised).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import Counter, Histogram

from db_utils.ids import InvalidUserId, parse_user_id
from inference.history import DatabaseUnavailable, HistoryStore, history_engine
from inference.ranking import strategy_named
from inference.recommender import ChromaNeighbours, Recommendation, Recommender, VectorIndexDown
from inference.settings import MODEL_STRATEGY, InferenceSettings
from movierec.base.metrics import LATENCY_BUCKETS_SECONDS
from vectordb_scripts.table import (
    IndexFormatError,
    IndexMissing,
    NeighbourTable,
    empty_neighbours,
    load_table,
    popular_good_order,
)

log = logging.getLogger(__name__)

RECOMMENDATIONS = Counter("movierec_recommendations_total", "Recommendation lists served", ["version", "kind"])
FALLBACKS = Counter("movierec_recommend_fallbacks_total", "Answers degraded to the fallback list",
                    ["version", "reason"])
CHROMA_FAILURES = Counter("movierec_chroma_failures_total",
                          "ChromaDB lookups that failed (the neighbour table or the fallback list answered)",
                          ["version"])
RECOMMEND_DURATION = Histogram("movierec_recommend_duration_seconds", "Time to compute one recommendation list",
                               ["version"], buckets=LATENCY_BUCKETS_SECONDS)

__all__ = ["InvalidUserId", "NoCatalogue", "RecommendationService", "parse_user_id"]


class NoCatalogue(RuntimeError):
    """Neither a neighbour table nor a catalogue could be loaded: nothing can be recommended."""


def catalogue_only_table(data_dir: Any) -> NeighbourTable:
    """Popularity and cold-start list from the catalogue file, without neighbours (index missing)."""
    try:
        from vectordb_scripts.catalog_io import load_catalog
    except ImportError as exc:
        raise NoCatalogue(f"catalogue reader unavailable: {exc}") from exc
    try:
        catalog = load_catalog(data_dir)
    except (FileNotFoundError, OSError) as exc:
        raise NoCatalogue(f"no catalogue in {data_dir}: {exc}") from exc
    import pandas as pd

    def column(name: str) -> np.ndarray | None:
        return pd.to_numeric(catalog[name], errors="coerce").to_numpy(dtype=np.float64) \
            if name in catalog.columns else None

    popularity = np.nan_to_num(column("popularity") if "popularity" in catalog.columns
                               else np.zeros(len(catalog)), nan=0.0)
    idx, sim = empty_neighbours(len(catalog), 0)
    return NeighbourTable(
        ids=tuple(str(i) for i in catalog["id"]), popularity=popularity.astype(np.float32),
        popular_order=popular_good_order(popularity, column("vote_average"), column("vote_count")),
        content_idx=idx, content_sim=sim, cooc_idx=idx, cooc_sim=sim, catalog_hash="catalogue-only",
    )


def _strategy(settings: InferenceSettings, table: NeighbourTable) -> Any:
    """The named strategy, or the trained artifact (a ModelRanker carrying its version) for `model`."""
    if settings.strategy != MODEL_STRATEGY:
        return strategy_named(settings.strategy)
    from inference.model import ModelRanker, load_model

    ranker = ModelRanker(load_model(settings.common.data_dir, settings.model_artifact), table)
    log.info("serving model version=%s films=%d", ranker.version, len(ranker.model.ids))
    return ranker


@dataclass
class Answer:
    user_id: int
    recommendation: Recommendation
    latency_ms: float


class RecommendationService:
    """Everything one worker needs, created once: table, recommender, history store, metrics labels."""

    def __init__(self, settings: InferenceSettings, recommender: Recommender, history: HistoryStore,
                 index_status: str) -> None:
        self.settings = settings
        self.version = settings.model_version or getattr(recommender.strategy, "version", "") or settings.strategy
        self.recommender = recommender
        self.history = history
        self.index_status = index_status
        # labelled children looked up once: labels() costs a lock and a key per call
        self._duration = RECOMMEND_DURATION.labels(self.version)
        self._served: dict[str, Any] = {}

    @classmethod
    def from_settings(cls, settings: InferenceSettings) -> RecommendationService:
        try:
            table = load_table(settings.index_path)
            index_status = "ok"
        except (IndexMissing, IndexFormatError) as exc:
            log.warning("neighbour table unavailable (%s); serving from the catalogue + ChromaDB", exc)
            table = catalogue_only_table(settings.common.data_dir)
            index_status = f"missing: {exc}"
        live = settings.neighbours == "chroma"
        chroma = ChromaNeighbours(settings.common.chroma_url, settings.common.chroma_path,
                                  settings.common.chroma_collection, table.row_of,
                                  cache_size=0 if live else 10000)
        recommender = Recommender(table, _strategy(settings, table), chroma, live_chroma=live)
        engine = history_engine(settings.common.database_url, settings.db_connect_timeout_seconds,
                                settings.db_statement_timeout_ms, settings.db_pool_size)
        service = cls(settings, recommender, HistoryStore(engine, settings.db_retry_seconds), index_status)
        recommender.on_chroma_failure = CHROMA_FAILURES.labels(service.version).inc
        return service

    def recommend(self, user_id: int) -> Answer:
        """Always an answer: DB or index trouble degrades to the fallback list (and is counted)."""
        started = time.perf_counter()
        history: list[Any] = []
        try:
            history = self.history.history(user_id)
            result = self.recommender.recommend(history)
        except DatabaseUnavailable:
            result = self.recommender.popular(reason="database")
        except VectorIndexDown as exc:
            log.warning("vector index down: %s", exc)
            result = self.recommender.popular(history, reason="vector_index")
        except Exception:
            log.exception("recommendation failed for user %s", user_id)
            result = self._safe_popular(history)
        elapsed = time.perf_counter() - started
        self._duration.observe(elapsed)
        served = self._served.get(result.kind)
        if served is None:
            served = self._served[result.kind] = RECOMMENDATIONS.labels(self.version, result.kind)
        served.inc()
        if result.fallback_reason:
            FALLBACKS.labels(self.version, result.fallback_reason).inc()
        return Answer(user_id, result, elapsed * 1000.0)

    def _safe_popular(self, history: list[Any]) -> Recommendation:
        try:
            return self.recommender.popular(history, reason="error")
        except Exception:
            return self.recommender.popular(reason="error")

    def health(self) -> dict[str, Any]:
        """Status of the database and the index; `status` is ok or degraded (the service still answers)."""
        try:
            self.history.ping()
            db = "ok"
        except DatabaseUnavailable as exc:
            db = f"down: {exc}"
        table = self.recommender.table
        degraded = db != "ok" or self.index_status != "ok"
        return {
            "status": "degraded" if degraded else "ok",
            "version": self.version,
            "strategy": self.settings.strategy,
            "neighbours": self.settings.neighbours,
            "db": db,
            "index": {"status": self.index_status, "films": len(table), "catalog_hash": table.catalog_hash,
                      "built_at": table.built_at, "content_neighbours": table.has_content,
                      "cooccurrence": table.has_cooccurrence},
        }
