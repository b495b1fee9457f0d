"""movierec.base.waiting.wait_until: the shared poll loop, on a fake clock (no real waiting)."""

from __future__ import annotations

import pytest

from movierec.base.waiting import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_returns_the_first_truthy_answer() -> None:
    clock = FakeClock()
    answers = iter([None, 0, "", "ready", "later"])
    assert wait_until(lambda: next(answers), 10, 0.5, clock=clock, sleep=clock.sleep) == "ready"
    assert clock.sleeps == [0.5, 0.5, 0.5]


def test_gives_none_at_the_deadline_and_calls_nothing_after_it() -> None:
    clock, calls = FakeClock(), []
    assert wait_until(lambda: calls.append(clock.now), 1.0, 0.25, clock=clock, sleep=clock.sleep) is None
    assert calls == [0.0, 0.25, 0.5, 0.75]
    assert wait_until(lambda: calls.append("never"), 0, 0.25, clock=clock, sleep=clock.sleep) is None
    assert "never" not in calls


def test_the_predicate_gives_up_early_by_raising() -> None:
    clock = FakeClock()

    def exited() -> bool:
        raise RuntimeError("the process exited")

    with pytest.raises(RuntimeError, match="exited"):
        wait_until(exited, 10, 0.1, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_real_clock() -> None:
    assert wait_until(lambda: 42, 1, 0.01) == 42
    assert wait_until(lambda: False, 0.05, 0.01) is None
