import numpy as np

from simulator.behaviour import (
    BehaviourParams,
    choose_by_taste,
    choose_from_list,
    hit_probability,
    maybe_rating,
    minutes_watched,
    oracle_list,
    pick_probabilities,
)
from simulator.tastes import Tastes
from simulator.users import Population

PARAMS = BehaviourParams()


def test_appeal_grows_with_utility_and_fades_down_the_list() -> None:
    probabilities = pick_probabilities(np.array([3.0, 4.0, 5.0]), PARAMS)
    assert pick_probabilities(np.array([5.0]), PARAMS)[0] > pick_probabilities(np.array([3.0]), PARAMS)[0]
    same = pick_probabilities(np.full(5, 4.5), PARAMS)
    assert (np.diff(same) < 0).all()
    assert probabilities.max() <= PARAMS.appeal_max
    assert pick_probabilities(np.array([np.nan]), PARAMS)[0] == 0.0


def test_hit_probability_is_highest_for_best_films_shown_best_first() -> None:
    good = np.linspace(5.0, 4.0, 20)
    assert hit_probability(good, PARAMS) > hit_probability(good[::-1], PARAMS)
    assert hit_probability(good, PARAMS) > hit_probability(np.full(20, 3.0), PARAMS)
    assert hit_probability(np.array([]), PARAMS) == 0.0


def test_choosing_from_a_list_happens_as_often_as_its_hit_probability() -> None:
    rng = np.random.default_rng(0)
    utilities = np.linspace(4.8, 3.5, 20)
    picks = [choose_from_list(utilities, rng, PARAMS) for _ in range(20_000)]
    observed = np.mean([p is not None for p in picks])
    assert abs(observed - hit_probability(utilities, PARAMS)) < 0.02
    assert all(p is None or 0 <= p < 20 for p in picks)


def test_oracle_list_is_the_true_top_unseen(small_tastes: Tastes) -> None:
    user = Population(small_tastes, 10, seed=0).user(1)
    utilities = small_tastes.utilities(user.factors, user.bias)
    top = oracle_list(small_tastes, user.factors, user.bias, set(), 20)
    np.testing.assert_array_equal(top, np.argsort(-utilities, kind="stable")[:20])
    seen = {int(top[0]), int(top[3])}
    without = oracle_list(small_tastes, user.factors, user.bias, seen, 20)
    assert not seen & set(without.tolist()) and len(without) == 20


def test_choice_by_taste_prefers_high_utility_and_skips_seen(small_tastes: Tastes) -> None:
    user = Population(small_tastes, 10, seed=0).user(2)
    utilities = small_tastes.utilities(user.factors, user.bias)
    cumulative = np.cumsum(small_tastes.popularity_weight)
    rng = np.random.default_rng(1)
    seen = set(np.argsort(-utilities)[:5].tolist())
    picks = np.array([choose_by_taste(small_tastes, user.factors, user.bias, seen, rng, PARAMS, cumulative)
                      for _ in range(300)])
    assert not set(picks.tolist()) & seen
    assert utilities[picks].mean() > utilities.mean() + 0.3


def test_disliked_films_are_stopped_early_more_often() -> None:
    rng = np.random.default_rng(2)
    liked = [minutes_watched(4.5, 100, rng, PARAMS) for _ in range(2000)]
    disliked = [minutes_watched(2.0, 100, rng, PARAMS) for _ in range(2000)]
    assert np.mean(np.array(liked) == 99) > 0.9
    assert np.mean(np.array(disliked) == 99) < 0.1
    assert min(disliked) >= 0 and max(liked) == 99


def test_ratings_follow_utility_and_stay_in_range() -> None:
    rng = np.random.default_rng(3)
    params = BehaviourParams(rate_probability=1.0)
    high = [maybe_rating(4.8, True, rng, params) for _ in range(500)]
    low = [maybe_rating(1.5, True, rng, params) for _ in range(500)]
    assert set(high + low) <= {1, 2, 3, 4, 5}
    assert np.mean(high) > np.mean(low) + 2
    never = BehaviourParams(rate_probability=0.0)
    assert maybe_rating(4.0, True, rng, never) is None
