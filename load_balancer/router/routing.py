"""Sticky canary assignment: a pure function of (user id, release salt, canary weight).

No per-user table: the same user lands on the same arm in every worker and after a restart, and
raising the weight only moves users from main to nightly (never back).
"""

from __future__ import annotations

import hashlib
from typing import Literal

Arm = Literal["main", "nightly"]
_SCALE = float(2**64)


def user_bucket(user_id: str | int, salt: str) -> float:
    """A uniform, deterministic position in [0, 1) for this user under this release's salt."""
    digest = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def assign_arm(user_id: str | int, salt: str, canary_weight: float) -> Arm:
    """`nightly` for users whose bucket falls under the canary weight, else `main`."""
    if canary_weight <= 0.0:
        return "main"
    return "nightly" if user_bucket(user_id, salt) < canary_weight else "main"


def route_order(assigned: Arm, main_up: bool, nightly_up: bool, has_nightly: bool) -> tuple[Arm, ...]:
    """Backends to try, in order, for a user assigned to `assigned`.

    A nightly user falls back to main; a main user falls back to the nightly only when main is
    known to be down (so the canary share stays what the weight says while main is healthy).
    """
    if not has_nightly:
        return ("main",)
    if assigned == "nightly" and nightly_up:
        return ("nightly", "main")
    if not main_up and nightly_up:
        return ("nightly", "main")
    return ("main",) if not nightly_up else ("main", "nightly")
