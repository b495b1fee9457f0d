"""Write stream lines to the topic (tests, benchmarks, the simulator).

    with StreamProducer("127.0.0.1:9092", "movielog") as producer:
        producer.send("2023-10-25T00:56:34,185706,GET /data/m/the+dark+knight+2008/35.mpg")
        producer.flush()

Sends are asynchronous and batched (linger + batch size); `flush()` waits until every line sent
so far is acknowledged and raises `ProduceError` if any of them failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError


class ProduceError(RuntimeError):
    """Lines could not be written to the broker."""


class StreamProducer:
    """A kafka-python producer of UTF-8 stream lines to one topic."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        acks: int | str = 1,
        linger_ms: int = 20,
        batch_size_bytes: int = 256 * 1024,
        client_id: str = "movierec-stream-producer",
        **extra: Any,
    ) -> None:
        self.topic = topic
        self._failures: list[BaseException] = []
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap.split(","),
            client_id=client_id,
            acks=acks,
            linger_ms=linger_ms,
            batch_size=batch_size_bytes,
            # Idempotence needs acks=all; with acks=1 a retried batch may land twice, which the
            # consumer's idempotent writes absorb.
            enable_idempotence=acks in ("all", -1),
            # kafka-python's own client metrics cost CPU per message; ours live in the consumer.
            metrics_enabled=False,
            **extra,
        )

    def send(self, line: str | bytes, key: bytes | None = None) -> None:
        """Queue one line (no trailing newline needed); failures surface at the next flush()."""
        value = line.encode("utf-8") if isinstance(line, str) else line
        future = self._producer.send(self.topic, value=value, key=key)
        future.add_errback(self._failures.append)

    def send_many(self, lines: Iterable[str | bytes]) -> int:
        """Queue every line; returns how many were queued."""
        count = 0
        for line in lines:
            self.send(line)
            count += 1
        return count

    def flush(self, timeout_seconds: float | None = None) -> None:
        """Block until every queued line is acknowledged; raise ProduceError if any failed."""
        try:
            self._producer.flush(timeout=timeout_seconds)
        except KafkaError as exc:
            raise ProduceError(f"flush failed: {exc}") from exc
        if self._failures:
            failures, self._failures = self._failures, []
            raise ProduceError(f"{len(failures)} lines failed, first: {failures[0]!r}")

    def close(self, timeout_seconds: float | None = 10.0) -> None:
        self._producer.close(timeout=timeout_seconds)

    def __enter__(self) -> StreamProducer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
