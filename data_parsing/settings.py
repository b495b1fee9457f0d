"""The parser's typed settings, read once from the environment (documented in .env.example)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from movierec.settings import CommonSettings, ConfigError, env_float, env_int, env_str


@dataclass(frozen=True)
class ParserSettings:
    common: CommonSettings
    group_id: str
    batch_max_events: int
    batch_max_seconds: float
    metrics_port: int  # 0 = no metrics server
    metrics_addr: str
    session_timeout_ms: int
    max_poll_interval_ms: int
    max_poll_records: int
    fetch_max_bytes: int
    max_partition_fetch_bytes: int
    auto_offset_reset: str
    retry_initial_seconds: float
    retry_max_seconds: float
    shutdown_grace_seconds: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ParserSettings:
        settings = cls(
            common=CommonSettings.from_env(environ),
            group_id=env_str("PARSER_GROUP_ID", "movierec-parser", environ),
            batch_max_events=env_int("PARSER_BATCH_MAX_EVENTS", 100_000, environ),
            batch_max_seconds=env_float("PARSER_BATCH_MAX_SECONDS", 1.0, environ),
            metrics_port=env_int("PARSER_METRICS_PORT", 9101, environ),
            metrics_addr=env_str("PARSER_METRICS_ADDR", "127.0.0.1", environ),
            session_timeout_ms=env_int("PARSER_SESSION_TIMEOUT_MS", 10_000, environ),
            max_poll_interval_ms=env_int("PARSER_MAX_POLL_INTERVAL_MS", 300_000, environ),
            max_poll_records=env_int("PARSER_MAX_POLL_RECORDS", 10_000, environ),
            fetch_max_bytes=env_int("PARSER_FETCH_MAX_BYTES", 50 * 1024 * 1024, environ),
            max_partition_fetch_bytes=env_int("PARSER_MAX_PARTITION_FETCH_BYTES", 8 * 1024 * 1024, environ),
            auto_offset_reset=env_str("PARSER_AUTO_OFFSET_RESET", "earliest", environ),
            retry_initial_seconds=env_float("PARSER_RETRY_INITIAL_SECONDS", 0.5, environ),
            retry_max_seconds=env_float("PARSER_RETRY_MAX_SECONDS", 30.0, environ),
            shutdown_grace_seconds=env_float("PARSER_SHUTDOWN_GRACE_SECONDS", 8.0, environ),
        )
        if settings.batch_max_events < 1 or settings.batch_max_seconds <= 0:
            raise ConfigError("PARSER_BATCH_MAX_EVENTS must be >= 1 and PARSER_BATCH_MAX_SECONDS > 0")
        if settings.auto_offset_reset not in {"earliest", "latest"}:
            raise ConfigError("PARSER_AUTO_OFFSET_RESET must be earliest or latest")
        return settings
