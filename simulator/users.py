"""A population of up to millions of simulated users, none of them stored.

A user is a pure function of (seed, user_id): its real ML-1M prototype comes from a 64-bit hash,
its own taste from a numpy Generator seeded with (seed, user_id). Taste = a smoothed bootstrap
of the real user factors (a Gaussian kernel around the prototype, shrunk so that the population
keeps the real mean and covariance); activity and demographics are the prototype's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from simulator.tastes import Tastes

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


class UnknownUser(ValueError):
    """A user id outside 1..n_users."""


def splitmix64(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser over uint64 arrays (a fast, well-mixed integer hash)."""
    z = np.asarray(values, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (z ^ (z >> np.uint64(31))) & _MASK64


@dataclass(frozen=True, slots=True)
class SimUser:
    user_id: int
    factors: np.ndarray  # (rank,) float64
    bias: float
    activity: int  # ratings per user of the real prototype
    gender: str
    age: int
    occupation: str


class Population:
    """Users 1..n_users derived on demand from `tastes` and `seed`."""

    def __init__(self, tastes: Tastes, n_users: int, seed: int, bandwidth: float = 0.5,
                 cache_size: int = 100_000) -> None:
        if n_users <= 0:
            raise ValueError("a population needs at least one user")
        self._cached_user = functools.lru_cache(maxsize=cache_size)(self._make_user)
        self.tastes = tastes
        self.n_users = n_users
        self.seed = seed
        self.bandwidth = bandwidth
        real = np.hstack([tastes.prototype_factors, tastes.prototype_bias[:, None]]).astype(np.float64)
        self._real = real
        self._mean = real.mean(axis=0)
        covariance = np.cov(real, rowvar=False) + 1e-9 * np.eye(real.shape[1])
        self._chol = np.linalg.cholesky(covariance)
        self._shrink = 1.0 / np.sqrt(1.0 + bandwidth**2)
        activity = tastes.prototype_activity.astype(np.float64)
        self._accept = activity / activity.max()
        self._salt = np.uint64(splitmix64(np.array([seed], dtype=np.uint64))[0])

    def prototypes(self, user_ids: np.ndarray) -> np.ndarray:
        """Index of each user's real ML-1M prototype (vectorised, no per-user state)."""
        hashed = splitmix64(np.asarray(user_ids, dtype=np.uint64) ^ self._salt)
        return (hashed % np.uint64(len(self._real))).astype(np.int64)

    def user(self, user_id: int) -> SimUser:
        """The user's hidden taste, activity and demographics (same answer every time; the most recent
        `cache_size` users are kept, since active users come back)."""
        return self._cached_user(user_id)

    def _make_user(self, user_id: int) -> SimUser:
        if not 1 <= user_id <= self.n_users:
            raise UnknownUser(f"user {user_id} not in 1..{self.n_users}")
        proto = int(self.prototypes(np.array([user_id]))[0])
        rng = np.random.default_rng([self.seed, user_id])
        noise = self._chol @ rng.standard_normal(self._real.shape[1])
        theta = self._mean + (self._real[proto] - self._mean + self.bandwidth * noise) * self._shrink
        t = self.tastes
        return SimUser(
            user_id=user_id,
            factors=theta[:-1],
            bias=float(theta[-1]),
            activity=int(t.prototype_activity[proto]),
            gender=str(t.prototype_gender[proto]),
            age=int(t.prototype_age[proto]),
            occupation=str(t.prototype_occupation[proto]),
        )

    def sample_active_user(self, rng: np.random.Generator, batch: int = 64) -> int:
        """A user id drawn with probability proportional to its activity (rejection sampling)."""
        while True:
            ids = rng.integers(1, self.n_users + 1, size=batch)
            accepted = rng.random(batch) < self._accept[self.prototypes(ids)]
            if accepted.any():
                return int(ids[int(np.argmax(accepted))])
