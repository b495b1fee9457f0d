"""The ingestion loop: Kafka consumer group -> batches -> one transaction each -> offset commit.

At-least-once with idempotent writes: offsets are committed only after the batch's transaction
commits, and only the offsets of the messages in that batch. A crash between the two replays the
batch, which writes the same rows again. While the database is unreachable the writer retries
the same batch with exponential backoff and nothing is committed; the loop stops polling as soon
as the next batch is full (memory stays bounded by two batches).

Writes are pipelined: one writer thread writes batch N (PostgreSQL works on the other core, the
driver releases the GIL) while this thread reads and folds batch N+1. At most one write is in
flight; batch N's offsets are committed, from this thread, before batch N+1 is handed over.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, KafkaError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from data_parsing import metrics
from data_parsing.batch import EVENT_TYPES, Batch, BatchRows
from data_parsing.settings import ParserSettings
from data_parsing.writer import write_batch

log = logging.getLogger("movierec.parser")

POLL_TIMEOUT_MS = 500  # upper bound between two looks at the stop flag
LAG_UPDATE_SECONDS = 1.0  # how often the lag gauge follows the consumer between commits
# The loop allocates a few objects per message (kafka-python records, tuples); with the default
# gen-0 threshold (700) the cyclic GC runs every ~200 messages. Measured: +20% messages per
# CPU-second with this threshold. Nothing here builds reference cycles worth collecting sooner.
GC_THRESHOLDS = (50_000, 20, 100)


class ShutdownIncomplete(RuntimeError):
    """Asked to stop while the current batch could not be written (nothing was committed)."""


def build_consumer(settings: ParserSettings) -> KafkaConsumer:
    """A kafka-python consumer in the parser's group, manual commits, raw bytes values."""
    return KafkaConsumer(
        bootstrap_servers=settings.common.kafka_bootstrap.split(","),
        group_id=settings.group_id,
        client_id=f"{settings.group_id}-consumer",
        enable_auto_commit=False,
        auto_offset_reset=settings.auto_offset_reset,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=max(100, settings.session_timeout_ms // 3),
        max_poll_interval_ms=settings.max_poll_interval_ms,
        max_poll_records=settings.max_poll_records,
        fetch_max_bytes=settings.fetch_max_bytes,
        max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
        # kafka-python's own client metrics are not exported anywhere; the parser exports its own.
        metrics_enabled=False,
    )


class _RebalanceFlag(ConsumerRebalanceListener):
    """Notes that partitions moved; the loop reacts on its own thread after the poll returns."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._moved = False

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if revoked:
            with self._lock:
                self._moved = True

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions_assigned partitions=%s", ",".join(f"{tp.topic}:{tp.partition}" for tp in assigned))

    def take(self) -> bool:
        with self._lock:
            moved, self._moved = self._moved, False
            return moved


@dataclass
class _InFlight:
    batch: Batch
    rows: BatchRows
    write: Future[float]


class IngestLoop:
    """Consumes the stream topic and writes it to the database batch by batch."""

    def __init__(
        self,
        settings: ParserSettings,
        engine: Engine,
        consumer: KafkaConsumer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.consumer = consumer or build_consumer(settings)
        self._clock = clock
        self._stop = threading.Event()
        self._rebalance = _RebalanceFlag()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parser-writer")
        self._in_flight: _InFlight | None = None
        self.batch = Batch()
        self._batch_started: float | None = None
        self._lag_updated = 0.0
        self.committed_events = 0
        # perf_counter() of the first record received and of the last offset commit (benchmarks).
        self.first_record_perf: float | None = None
        self.last_commit_perf: float | None = None

    def request_stop(self) -> None:
        """Finish (write and commit) the current batch, then leave `run()`. Signal-safe."""
        self._stop.set()

    def run(self, idle_exit_seconds: float | None = None) -> None:
        """Loop until `request_stop()` (or `idle_exit_seconds` without a message, for batch jobs)."""
        settings = self.settings
        self.consumer.subscribe([settings.common.kafka_topic], listener=self._rebalance)
        log.info("parser_started topic=%s group_id=%s batch_max_events=%d batch_max_seconds=%.2f",
                 settings.common.kafka_topic, settings.group_id, settings.batch_max_events,
                 settings.batch_max_seconds)
        last_message = self._clock()
        default_gc = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            while not self._stop.is_set():
                got = self._poll_once()
                now = self._clock()
                if got:
                    last_message = now
                if self._batch_due(now):
                    self.flush()
                elif self._in_flight is not None and self._in_flight.write.done():
                    self._finish_in_flight()  # commit as soon as the write is in, even when idle
                if now - self._lag_updated >= LAG_UPDATE_SECONDS:
                    self._update_lag()
                if (not got and idle_exit_seconds is not None and now - last_message >= idle_exit_seconds
                        and self._in_flight is None):
                    break
            self.flush()
            self._finish_in_flight()
        finally:
            gc.set_threshold(*default_gc)
            self._stop.set()  # a write still retrying gives up after the shutdown grace
            self._writer.shutdown(wait=True)
            self.consumer.close(autocommit=False)
            log.info("parser_stopped committed_events=%d", self.committed_events)

    def _poll_once(self) -> int:
        room = self.settings.batch_max_events - self.batch.size
        timeout_ms = POLL_TIMEOUT_MS
        if self._batch_started is not None:
            left = self.settings.batch_max_seconds - (self._clock() - self._batch_started)
            timeout_ms = max(0, min(timeout_ms, int(left * 1000)))
        elif self._in_flight is not None:
            timeout_ms = min(timeout_ms, 50)  # come back soon to commit the write in flight
        records = self.consumer.poll(timeout_ms=timeout_ms, max_records=max(1, room))
        count = 0
        for tp, messages in records.items():
            self.batch.add_records(tp.topic, tp.partition, messages)
            count += len(messages)
        if count and self._batch_started is None:
            self._batch_started = self._clock()
            if self.first_record_perf is None:
                self.first_record_perf = time.perf_counter()
        if self._rebalance.take():
            self._replay("rebalance")
        return count

    def _batch_due(self, now: float) -> bool:
        if not self.batch.size:
            return False
        if self.batch.size >= self.settings.batch_max_events:
            return True
        return self._batch_started is not None and now - self._batch_started >= self.settings.batch_max_seconds

    def flush(self) -> None:
        """Commit the write in flight once it is in, then hand the current batch to the writer."""
        self._finish_in_flight()
        if not self.batch.size:
            return
        batch = self.batch
        rows = batch.rows()
        self._in_flight = _InFlight(batch, rows, self._writer.submit(self._write_with_retry, rows))
        self._reset_batch()

    def _finish_in_flight(self) -> None:
        """Wait for the write in flight (it retries while the database is down), then commit it."""
        in_flight = self._in_flight
        if in_flight is None:
            return
        write_seconds = in_flight.write.result()  # ShutdownIncomplete surfaces here
        if self._rebalance.take():
            # Partitions moved while we wrote: the rows are in (idempotently); the offsets may no
            # longer be ours to commit, so read everything uncommitted again.
            self._replay("rebalance during write")
            return
        if not self._commit(in_flight.batch):
            return
        self._in_flight = None
        batch, rows = in_flight.batch, in_flight.rows
        metrics.BATCH_SIZE.observe(batch.size)
        for kind in EVENT_TYPES:
            if batch.events[kind]:
                metrics.EVENTS.labels(type=kind).inc(batch.events[kind])
        for reason, count in batch.dead_letter_reasons.items():
            metrics.DEAD_LETTERS.labels(reason=reason).inc(count)
        self.committed_events += batch.size
        self.last_commit_perf = time.perf_counter()
        log.info(
            "batch_committed events=%d watch=%d rating=%d recommendation=%d dead_letters=%d "
            "watch_rows=%d rating_rows=%d write_seconds=%.3f offsets=%s",
            batch.size, batch.events["watch"], batch.events["rating"], batch.events["recommendation"],
            len(rows.dead_letters), len(rows.watches), len(rows.ratings), write_seconds,
            ",".join(f"{t}:{p}:{o}" for (t, p), o in sorted(batch.offsets.items())),
        )

    def _write_with_retry(self, rows: BatchRows) -> float:
        """Runs on the writer thread; returns the seconds the successful write took."""
        delay = self.settings.retry_initial_seconds
        give_up_at: float | None = None
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                write_batch(self.engine, rows)
            except Exception as exc:  # any failed write is retried; nothing is half-committed
                metrics.DB_ERRORS.inc()
                log.warning("db_write_failed attempt=%d retry_in_seconds=%.2f error=%s",
                            attempt, delay, type(exc).__name__ + ": " + (str(exc).splitlines() or [""])[0][:200],
                            exc_info=attempt == 1 and not isinstance(exc, SQLAlchemyError))
                if self._stop.is_set():
                    give_up_at = give_up_at or self._clock() + self.settings.shutdown_grace_seconds
                    if self._clock() >= give_up_at:
                        raise ShutdownIncomplete("database unreachable at shutdown; the batch stays uncommitted"
                                                 ) from exc
                self._sleep(delay)
                delay = min(delay * 2, self.settings.retry_max_seconds)
                continue
            seconds = time.perf_counter() - started
            metrics.WRITE_DURATION.observe(seconds)
            if attempt > 1:
                log.info("db_write_recovered attempts=%d", attempt)
            return seconds

    def _commit(self, batch: Batch) -> bool:
        offsets = {TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                   for (topic, partition), offset in batch.offsets.items()}
        delay = self.settings.retry_initial_seconds
        while True:
            try:
                self.consumer.commit(offsets)
            except CommitFailedError as exc:
                log.warning("commit_failed reason=rebalanced error=%s", exc)
                self._replay("commit failed")
                return False
            except KafkaError as exc:
                if self._stop.is_set():
                    # Rows are written; the replay after restart rewrites the same rows.
                    log.warning("commit_failed reason=broker error=%s", exc)
                    self._in_flight = None
                    self._reset_batch()
                    return False
                log.warning("commit_failed reason=broker retry_in_seconds=%.2f error=%s", delay, exc)
                self._sleep(delay)
                delay = min(delay * 2, self.settings.retry_max_seconds)
                continue
            metrics.LAST_COMMIT.set(time.time())
            return True

    def _replay(self, why: str) -> None:
        """Drop every uncommitted batch (waiting for a write in flight) and rewind the partitions
        we still own to where the oldest of them began."""
        batches = [self.batch]
        if self._in_flight is not None:
            with contextlib.suppress(Exception):
                self._in_flight.write.result()
            batches.insert(0, self._in_flight.batch)
            self._in_flight = None
        starts: dict[tuple[str, int], int] = {}
        for batch in batches:
            for key, offset in batch.start_offsets.items():
                starts[key] = min(offset, starts.get(key, offset))
        assigned = self.consumer.assignment()
        rewound = []
        for (topic, partition), offset in sorted(starts.items()):
            tp = TopicPartition(topic, partition)
            if tp in assigned:
                self.consumer.seek(tp, offset)
                rewound.append(f"{topic}:{partition}:{offset}")
        if starts:
            log.warning("batch_replayed why=%s events=%d rewound=%s", why, sum(b.size for b in batches),
                        ",".join(rewound) or "-")
        self._reset_batch()

    def _reset_batch(self) -> None:
        self.batch = Batch()
        self._batch_started = None

    def _update_lag(self) -> None:
        self._lag_updated = self._clock()
        try:
            for tp in self.consumer.assignment():
                highwater = self.consumer.highwater(tp)
                position = self.consumer.position(tp, timeout_ms=1000)
                if highwater is not None and position is not None:
                    metrics.CONSUMER_LAG.labels(partition=str(tp.partition)).set(max(0, highwater - position))
        except KafkaError as exc:  # lag is informative; never stop ingesting for it
            log.debug("lag_unavailable error=%s", exc)

    def _sleep(self, seconds: float) -> None:
        # Wakes early on a stop request so shutdown is not delayed by a long backoff; once stopping,
        # retries come every half second until the shutdown grace runs out.
        if self._stop.is_set():
            time.sleep(min(seconds, 0.5))
        else:
            self._stop.wait(seconds)
