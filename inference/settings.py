"""The inference service's settings, read once from the environment (see .env.example, `## Inference`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from inference.ranking import STRATEGY_VERSIONS, strategy_named
from movierec.settings import CommonSettings, env_float, env_int, env_str
from vectordb_scripts.neighbours import NEIGHBOURS_FILE

MAX_USER_ID = 10**12
MODEL_STRATEGY = "model"  # serve a trained artifact (inference.model) instead of a fixed strategy


def check_strategy(name: str) -> None:
    """Raise UnknownStrategy unless `name` is a ranking strategy or `model`."""
    if name != MODEL_STRATEGY:
        strategy_named(name)


@dataclass(frozen=True)
class InferenceSettings:
    common: CommonSettings
    strategy: str
    model_version: str  # "" with the `model` strategy: the artifact's own version
    model_artifact: str  # artifact served by the `model` strategy ("" = the newest under <data_dir>/models)
    host: str
    port: int
    workers: int
    threads: int
    index_path: Path
    db_connect_timeout_seconds: int
    db_statement_timeout_ms: int
    db_retry_seconds: float
    db_pool_size: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> InferenceSettings:
        common = CommonSettings.from_env(environ)
        strategy = env_str("INFERENCE_STRATEGY", "blend", environ)
        check_strategy(strategy)  # fail at start-up, not at the first request
        index_path = env_str("INFERENCE_INDEX_PATH", "", environ)
        return cls(
            common=common,
            strategy=strategy,
            model_version=env_str("MODEL_VERSION", STRATEGY_VERSIONS.get(strategy, ""), environ),
            model_artifact=env_str("MODEL_ARTIFACT", "", environ),
            host=env_str("INFERENCE_HOST", "127.0.0.1", environ),
            port=env_int("INFERENCE_PORT", 8001, environ),
            workers=env_int("INFERENCE_WORKERS", 2, environ),
            threads=env_int("INFERENCE_THREADS", 4, environ),
            index_path=Path(index_path) if index_path else common.data_dir / "index" / NEIGHBOURS_FILE,
            db_connect_timeout_seconds=env_int("INFERENCE_DB_CONNECT_TIMEOUT_SECONDS", 1, environ),
            db_statement_timeout_ms=env_int("INFERENCE_DB_STATEMENT_TIMEOUT_MS", 500, environ),
            db_retry_seconds=env_float("INFERENCE_DB_RETRY_SECONDS", 2.0, environ),
            db_pool_size=env_int("INFERENCE_DB_POOL_SIZE", 4, environ),
        )

    def with_strategy(self, strategy: str, model_version: str | None = None) -> InferenceSettings:
        """A copy serving `strategy` (its default version unless `model_version` is given)."""
        check_strategy(strategy)
        return replace(self, strategy=strategy, model_version=model_version or STRATEGY_VERSIONS.get(strategy, ""))
