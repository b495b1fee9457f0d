"""The inference service's settings, read once from the environment (see .env.example, `## Inference`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import field_validator, model_validator

from inference.ranking import STRATEGY_VERSIONS, strategy_named
from movierec.base.serving import resolve_worker_class
from movierec.base.settings import CommonSettings, EnvSettings, nested_common, setting
from vectordb_scripts.table import NEIGHBOURS_FILE

MODEL_STRATEGY = "model"  # serve a trained artifact (inference.model) instead of a fixed strategy


def check_strategy(name: str) -> None:
    """Raise UnknownStrategy unless `name` is a ranking strategy or `model`."""
    if name != MODEL_STRATEGY:
        strategy_named(name)


class InferenceSettings(EnvSettings):
    common: CommonSettings = nested_common()
    strategy: str = setting("INFERENCE_STRATEGY", "blend")
    model_version: str = setting("MODEL_VERSION", "")  # "" -> <strategy>-v1; with `model`: the artifact's own
    model_artifact: str = setting("MODEL_ARTIFACT", "")  # served by `model` ("" = the newest under <data_dir>/models)
    host: str = setting("INFERENCE_HOST", "127.0.0.1")
    port: int = setting("INFERENCE_PORT", 8001, ge=0, le=65535)
    workers: int = setting("INFERENCE_WORKERS", 2, ge=1)
    threads: int = setting("INFERENCE_THREADS", 2, ge=1)  # measured: reports/runs/recommend-workers.json
    worker_class: str = setting("INFERENCE_WORKER_CLASS", "")  # gunicorn's; "" = gthread with threads, else sync
    index_path: Path = setting("INFERENCE_INDEX_PATH", Path(""))  # "" -> <data_dir>/index/neighbours.npz
    # Where a request's content neighbours come from: `table` (the precomputed neighbour table) or `chroma`
    # (the original design: every request asks ChromaDB for the 20 nearest films of each watched film,
    # embedded or the CHROMA_URL server; kept to measure the table's gain, bench/recommend.py --neighbours)
    neighbours: Literal["table", "chroma"] = setting("INFERENCE_NEIGHBOURS", "table")
    db_connect_timeout_seconds: int = setting("INFERENCE_DB_CONNECT_TIMEOUT_SECONDS", 1, ge=1)
    db_statement_timeout_ms: int = setting("INFERENCE_DB_STATEMENT_TIMEOUT_MS", 500, ge=0)
    db_retry_seconds: float = setting("INFERENCE_DB_RETRY_SECONDS", 2.0, ge=0)
    db_pool_size: int = setting("INFERENCE_DB_POOL_SIZE", 4, ge=1)

    @field_validator("worker_class")
    @classmethod
    def _known_worker_class(cls, value: str) -> str:
        resolve_worker_class(value, 1)
        return value

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        check_strategy(value)  # fail at start-up, not at the first request
        return value

    @model_validator(mode="after")
    def _derived(self) -> Self:
        if not self.model_version:
            self._set("model_version", STRATEGY_VERSIONS.get(self.strategy, ""))
        if self.index_path == Path(""):
            self._set("index_path", self.common.data_dir / "index" / NEIGHBOURS_FILE)
        return self

    @property
    def configured_model_version(self) -> str | None:
        """$MODEL_VERSION as configured (None when unset or empty), not the strategy's default filled in above."""
        return self.model_version if "model_version" in self.model_fields_set else None

    def with_strategy(self, strategy: str, model_version: str | None = None) -> InferenceSettings:
        """A copy serving `strategy` (its default version unless `model_version` is given)."""
        check_strategy(strategy)
        return self.replace(strategy=strategy, model_version=model_version or STRATEGY_VERSIONS.get(strategy, ""))
