"""Waiting with a deadline: the one poll loop of the platform's start-up, health and shutdown waits."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout_seconds: float, interval: float, *,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> T | None:
    """Call `predicate` every `interval` seconds until it returns something truthy, and return that; None
    when `timeout_seconds` pass first (the predicate is only called before the deadline).

    The predicate may raise to give up early (a process that exited, say); the caller decides what a
    timeout means (its own exception, a False, a kill).
    """
    deadline = clock() + timeout_seconds
    while clock() < deadline:
        value = predicate()
        if value:
            return value
        sleep(interval)
    return None
