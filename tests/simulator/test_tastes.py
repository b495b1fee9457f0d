from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.tastes import TasteError, TasteParams, Tastes, build_tastes, content_features, popularity_weights
from simulator.tastes_store import fingerprint_for, read_tastes, save_tastes
from simulator.users import Population


def test_rated_films_get_fitted_factors_and_the_others_content_predictions(small_tastes: Tastes) -> None:
    assert small_tastes.item_rated[:300].all() and not small_tastes.item_rated[300:].any()
    assert np.isfinite(small_tastes.item_factors).all() and np.isfinite(small_tastes.item_bias).all()
    # Content-predicted films are not all the same film.
    assert small_tastes.item_factors[300:].std(axis=0).min() > 0.01


def test_popularity_is_the_prior_of_an_unrated_films_bias(small_tastes: Tastes,
                                                           small_data: tuple[pd.DataFrame, ...]) -> None:
    catalog = small_data[0]
    unrated = ~small_tastes.item_rated
    log_popularity = np.log(catalog["popularity"].to_numpy()[unrated])
    assert np.corrcoef(log_popularity, small_tastes.item_bias[unrated])[0, 1] > 0.5


def test_content_predicted_factors_follow_the_genres(small_data: tuple[pd.DataFrame, ...]) -> None:
    # Hold 60 rated films out of the ratings: their content prediction should match their fitted factors.
    catalog, ratings, users = small_data
    full = build_tastes(catalog, ratings, users, TasteParams(rank=8, epochs=6, seed=1, residual_scale=0.0))
    held = set(catalog["id"][:60])
    partial = build_tastes(catalog, ratings[~ratings["movie_id"].isin(held)], users,
                           TasteParams(rank=8, epochs=6, seed=1, residual_scale=0.0))
    assert not partial.item_rated[:60].any()
    population = Population(full, n_users=200, seed=0)
    agreement = []
    for user_id in range(1, 201):
        user = population.user(user_id)
        a = full.utilities(user.factors, user.bias, np.arange(60))
        partial_user = Population(partial, n_users=200, seed=0).user(user_id)
        b = partial.utilities(partial_user.factors, partial_user.bias, np.arange(60))
        agreement.append(np.corrcoef(a, b)[0, 1])
    # Different fits, different user draws: only the content signal links them.
    assert np.nanmean(agreement) > 0.2


def test_users_who_love_a_film_like_its_content_neighbours_more_than_random_films(
    small_tastes: Tastes, small_data: tuple[pd.DataFrame, ...]
) -> None:
    features = content_features(small_data[0])
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    population = Population(small_tastes, n_users=500, seed=11)
    rng = np.random.default_rng(0)
    neighbour_gain = []
    for user_id in range(1, 501):
        user = population.user(user_id)
        utilities = small_tastes.utilities(user.factors, user.bias)
        favourite = int(np.argmax(utilities))
        similarity = unit @ unit[favourite]
        similarity[favourite] = -np.inf
        neighbours = np.argsort(-similarity)[:10]
        random_films = rng.choice(small_tastes.n_items, 10, replace=False)
        neighbour_gain.append(utilities[neighbours].mean() - utilities[random_films].mean())
    assert np.mean(neighbour_gain) > 0.3
    assert np.mean(np.array(neighbour_gain) > 0) > 0.8


def test_popularity_weights_favour_popular_films() -> None:
    weights = popularity_weights(np.array([1.0, 10.0, 100.0, np.nan]), sharpness=5.0)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[2] > weights[1] > weights[0]


def test_ratings_naming_no_catalogue_film_are_an_error(small_data: tuple[pd.DataFrame, ...]) -> None:
    catalog, ratings, users = small_data
    with pytest.raises(TasteError):
        build_tastes(catalog, ratings.assign(movie_id="unknown+film+1900"), users)


def test_tastes_round_trip_through_npz(small_tastes: Tastes, tmp_path: Path) -> None:
    path = tmp_path / "simulator" / "tastes.npz"
    fingerprint = fingerprint_for(tmp_path, TasteParams())
    save_tastes(small_tastes, path, fingerprint)
    loaded, stored = read_tastes(path)
    assert stored == fingerprint
    np.testing.assert_array_equal(loaded.item_ids, small_tastes.item_ids)
    np.testing.assert_array_equal(loaded.item_factors, small_tastes.item_factors)
    np.testing.assert_array_equal(loaded.prototype_gender, small_tastes.prototype_gender)
    assert loaded.global_mean == small_tastes.global_mean
