import time

import pytest

from simulator.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_bucket_allows_exactly_rate_times_window_plus_burst_on_a_virtual_clock() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, burst=10, clock=clock, sleep=clock.sleep)
    count = 0
    while clock.now < 10.0:
        bucket.acquire()
        count += 1
    assert 1000 <= count <= 1011


def test_try_acquire_refuses_when_empty() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1, burst=2, clock=clock, sleep=clock.sleep)
    assert bucket.try_acquire() and bucket.try_acquire()
    assert not bucket.try_acquire()
    clock.now += 1.0
    assert bucket.try_acquire()


def test_bucket_holds_its_rate_within_ten_percent_on_the_real_clock() -> None:
    # The limiter's contract, measured over a generous window: never more than rate*T + burst,
    # and (sleep only overshoots a little) not much less.
    bucket = TokenBucket(400)
    window = 2.5
    started = time.monotonic()
    count = 0
    while time.monotonic() - started < window:
        bucket.acquire()
        count += 1
    elapsed = time.monotonic() - started
    assert count <= 400 * elapsed + bucket.burst + 1
    assert count == pytest.approx(400 * window, rel=0.10)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)
