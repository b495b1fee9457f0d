import numpy as np
import pytest

from simulator.factorization import FactorizationError, fit_als, rmse


def low_rank_ratings(seed: int = 0, n_users: int = 400, n_items: int = 300, rank: int = 4, density: float = 0.15):
    rng = np.random.default_rng(seed)
    p, q = rng.normal(0, 0.6, (n_users, rank)), rng.normal(0, 0.6, (n_items, rank))
    user_bias, item_bias = rng.normal(0, 0.3, n_users), rng.normal(0, 0.4, n_items)
    users, items = np.nonzero(rng.random((n_users, n_items)) < density)
    truth = 3.6 + user_bias[users] + item_bias[items] + np.einsum("ij,ij->i", p[users], q[items])
    return users, items, truth, truth + rng.normal(0, 0.25, len(users)), rng


def test_als_recovers_a_low_rank_matrix_far_better_than_the_global_mean() -> None:
    users, items, truth, noisy, rng = low_rank_ratings()
    train = rng.random(len(users)) < 0.8
    model = fit_als(users[train], items[train], noisy[train], 400, 300, rank=8, epochs=8, seed=1)
    baseline = rmse(np.full((~train).sum(), noisy[train].mean()), noisy[~train])
    held_out = rmse(model.predict(users[~train], items[~train]), noisy[~train])
    assert held_out < 0.6 * baseline
    # Close to the noise floor (0.25): the factors were recovered, not memorised.
    assert rmse(model.predict(users[~train], items[~train]), truth[~train]) < 0.3


def test_more_epochs_do_not_hurt_training_fit() -> None:
    users, items, _, noisy, _ = low_rank_ratings(seed=2)
    one = fit_als(users, items, noisy, 400, 300, rank=8, epochs=1, seed=1)
    six = fit_als(users, items, noisy, 400, 300, rank=8, epochs=6, seed=1)
    assert rmse(six.predict(users, items), noisy) < rmse(one.predict(users, items), noisy)


def test_fit_is_deterministic_for_a_seed() -> None:
    users, items, _, noisy, _ = low_rank_ratings(seed=3)
    a = fit_als(users, items, noisy, 400, 300, rank=4, epochs=2, seed=5)
    b = fit_als(users, items, noisy, 400, 300, rank=4, epochs=2, seed=5)
    np.testing.assert_array_equal(a.item_factors, b.item_factors)


@pytest.mark.parametrize(
    ("users", "items", "ratings"),
    [([], [], []), ([0, 1], [0], [3.0]), ([5], [0], [4.0])],
)
def test_bad_input_raises(users: list[int], items: list[int], ratings: list[float]) -> None:
    with pytest.raises(FactorizationError):
        fit_als(np.array(users, dtype=int), np.array(items, dtype=int), np.array(ratings), 2, 2)
