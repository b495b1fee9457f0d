"""The circuit breaker of inference's dependencies (the database in inference.history, ChromaDB in
inference.recommender): after a failure a dead dependency is skipped for `retry_seconds`, so it costs a
request nothing (the fallback list at once; no retry storm)."""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    """Open for `retry_seconds` after a failure; closed again by the next success."""

    def __init__(self, retry_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._open_until = 0.0

    def allow(self) -> bool:
        return self._clock() >= self._open_until

    @property
    def is_open(self) -> bool:
        return not self.allow()

    def success(self) -> None:
        self._open_until = 0.0

    def failure(self) -> None:
        self._open_until = self._clock() + self.retry_seconds
