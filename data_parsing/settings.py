"""The parser's typed settings, read once from the environment (documented in .env.example)."""

from __future__ import annotations

from typing import Literal

from movierec.base.settings import CommonSettings, EnvSettings, nested_common, setting


class ParserSettings(EnvSettings):
    common: CommonSettings = nested_common()
    group_id: str = setting("PARSER_GROUP_ID", "movierec-parser")
    batch_max_events: int = setting("PARSER_BATCH_MAX_EVENTS", 100_000, ge=1)
    batch_max_seconds: float = setting("PARSER_BATCH_MAX_SECONDS", 1.0, gt=0)
    metrics_port: int = setting("PARSER_METRICS_PORT", 9101, ge=0, le=65535)  # 0 = no metrics server
    metrics_addr: str = setting("PARSER_METRICS_ADDR", "127.0.0.1")
    session_timeout_ms: int = setting("PARSER_SESSION_TIMEOUT_MS", 10_000, ge=1)
    max_poll_interval_ms: int = setting("PARSER_MAX_POLL_INTERVAL_MS", 300_000, ge=1)
    max_poll_records: int = setting("PARSER_MAX_POLL_RECORDS", 10_000, ge=1)
    fetch_max_bytes: int = setting("PARSER_FETCH_MAX_BYTES", 50 * 1024 * 1024, ge=1)
    max_partition_fetch_bytes: int = setting("PARSER_MAX_PARTITION_FETCH_BYTES", 8 * 1024 * 1024, ge=1)
    auto_offset_reset: Literal["earliest", "latest"] = setting("PARSER_AUTO_OFFSET_RESET", "earliest")
    retry_initial_seconds: float = setting("PARSER_RETRY_INITIAL_SECONDS", 0.5, gt=0)
    retry_max_seconds: float = setting("PARSER_RETRY_MAX_SECONDS", 30.0, gt=0)
    shutdown_grace_seconds: float = setting("PARSER_SHUTDOWN_GRACE_SECONDS", 8.0, ge=0)
