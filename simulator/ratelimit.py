"""A token bucket: at most `rate` events per second on average, bursts up to `burst` events."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """`acquire()` blocks until a token is available; the clock and sleep are injectable."""

    def __init__(
        self,
        rate_per_second: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate_per_second)
        # Default burst: a tenth of a second of events (at least one), so short windows stay close to the rate.
        self.burst = float(burst) if burst is not None else max(1.0, self.rate / 10.0)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def try_acquire(self, tokens: float = 1.0) -> bool:
        """Take `tokens` if available now, without waiting."""
        self._refill()
        if self._tokens >= tokens - 1e-9:  # tolerance: float refills may land a hair short
            self._tokens -= tokens
            return True
        return False

    def acquire(self, tokens: float = 1.0) -> float:
        """Take `tokens`, sleeping as long as needed; returns the seconds slept."""
        slept = 0.0
        while not self.try_acquire(tokens):
            wait = max((tokens - self._tokens) / self.rate, 1e-6)
            self._sleep(wait)
            slept += wait
        return slept
