import numpy as np
import pytest

from simulator.tastes import Tastes
from simulator.users import Population, UnknownUser, splitmix64


def test_a_user_is_the_same_every_time_and_differs_between_seeds(small_tastes: Tastes) -> None:
    a, b = Population(small_tastes, 1_000_000, seed=1), Population(small_tastes, 1_000_000, seed=1)
    other = Population(small_tastes, 1_000_000, seed=2)
    for user_id in (1, 77, 999_999):
        np.testing.assert_array_equal(a.user(user_id).factors, b.user(user_id).factors)
        assert a.user(user_id).activity == b.user(user_id).activity
    assert not np.allclose(a.user(77).factors, other.user(77).factors)
    assert not np.allclose(a.user(77).factors, a.user(78).factors)


def test_population_keeps_the_real_mean_and_spread(small_tastes: Tastes) -> None:
    population = Population(small_tastes, 100_000, seed=4)
    drawn = np.array([np.append(population.user(u).factors, population.user(u).bias) for u in range(1, 3001)])
    real = np.hstack([small_tastes.prototype_factors, small_tastes.prototype_bias[:, None]])
    np.testing.assert_allclose(drawn.std(axis=0), real.std(axis=0), rtol=0.2)
    assert np.abs(drawn.mean(axis=0) - real.mean(axis=0)).max() < 0.1


def test_demographics_and_activity_come_from_real_users(small_tastes: Tastes) -> None:
    population = Population(small_tastes, 1000, seed=0)
    user = population.user(5)
    assert user.gender in set(small_tastes.prototype_gender)
    assert user.activity in set(small_tastes.prototype_activity.tolist())


def test_active_users_are_drawn_in_proportion_to_activity(small_tastes: Tastes) -> None:
    population = Population(small_tastes, 50_000, seed=0)
    rng = np.random.default_rng(0)
    drawn = [population.sample_active_user(rng) for _ in range(3000)]
    drawn_activity = np.mean([population.user(u).activity for u in drawn[:1000]])
    uniform_activity = np.mean([population.user(u).activity for u in range(1, 1001)])
    assert drawn_activity > 1.1 * uniform_activity
    assert min(drawn) >= 1 and max(drawn) <= 50_000


def test_unknown_users_are_refused(small_tastes: Tastes) -> None:
    population = Population(small_tastes, 10, seed=0)
    with pytest.raises(UnknownUser):
        population.user(11)
    with pytest.raises(UnknownUser):
        population.user(0)


def test_hash_spreads_consecutive_ids() -> None:
    hashed = splitmix64(np.arange(10_000, dtype=np.uint64)) % np.uint64(100)
    counts = np.bincount(hashed.astype(int), minlength=100)
    assert counts.min() > 50 and counts.max() < 150
