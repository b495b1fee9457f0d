"""The parser's Prometheus metrics (names are a contract with the monitoring dashboards)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("movierec_ingest_events_total", "Stream events written, by type", ["type"])
DEAD_LETTERS = Counter("movierec_ingest_dead_letters_total", "Malformed stream lines, by reason", ["reason"])
BATCH_SIZE = Histogram(
    "movierec_ingest_batch_size", "Messages per written batch",
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000),
)
WRITE_DURATION = Histogram(
    "movierec_ingest_write_duration_seconds", "Time to write one batch in one transaction",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
CONSUMER_LAG = Gauge("movierec_ingest_consumer_lag", "Messages not yet consumed (highwater - position)",
                     ["partition"])
DB_ERRORS = Counter("movierec_ingest_db_errors_total", "Failed batch writes (each retry counts)")
LAST_COMMIT = Gauge("movierec_ingest_last_commit_timestamp_seconds", "Unix time of the last offset commit")
