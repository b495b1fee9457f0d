"""Sticky assignment: fraction, stickiness, monotonic growth; fallback order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from load_balancer.router.routing import assign_arm, route_order, user_bucket


def test_fraction_of_users_on_nightly_is_close_to_the_weight() -> None:
    users = range(1, 50_001)
    for weight in (0.05, 0.2, 0.5):
        share = sum(assign_arm(u, "salt-a", weight) == "nightly" for u in users) / len(users)
        assert abs(share - weight) < 0.01, (weight, share)


def test_assignment_is_sticky_and_salt_dependent() -> None:
    first = [assign_arm(u, "release-1", 0.2) for u in range(2000)]
    again = [assign_arm(str(u), "release-1", 0.2) for u in range(2000)]  # ids as they arrive in URLs
    assert first == again
    other = [assign_arm(u, "release-2", 0.2) for u in range(2000)]
    assert first != other  # a new release draws a new canary population


@given(st.integers(min_value=0, max_value=10**9), st.floats(0, 1), st.floats(0, 1))
def test_growing_the_weight_never_moves_a_user_back_to_main(user: int, a: float, b: float) -> None:
    low, high = sorted((a, b))
    if assign_arm(user, "s", low) == "nightly":
        assert assign_arm(user, "s", high) == "nightly"


def test_bounds_and_zero_weight() -> None:
    assert all(0.0 <= user_bucket(u, "x") < 1.0 for u in range(1000))
    assert all(assign_arm(u, "x", 0.0) == "main" for u in range(1000))
    assert all(assign_arm(u, "x", 1.0) == "nightly" for u in range(1000))


def test_route_order() -> None:
    assert route_order("nightly", True, True, True) == ("nightly", "main")
    assert route_order("nightly", True, False, True) == ("main",)  # a down nightly is skipped
    assert route_order("main", True, True, True) == ("main", "nightly")
    assert route_order("main", False, True, True) == ("nightly", "main")
    assert route_order("main", True, True, False) == ("main",)
