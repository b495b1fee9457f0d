"""The ranking strategies on tiny hand-built tables (pure functions, answers computed by hand)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from db_utils.queries import HistoryItem
from inference.ranking import (
    BlendParams,
    Catalogue,
    UnknownStrategy,
    empty_profile,
    parse_strategies,
    rank_blend,
    rank_itemknn,
    rank_popularity,
    rank_seed,
    source_weights,
    strategy_named,
)
from inference.recommender import Recommender, build_profile
from vectordb_scripts.table import NeighbourTable

A, B, C, D, E, F = range(6)
NONE = -1


def table(content: list[list[int]], cooc: list[list[int]] | None = None,
          cooc_sims: list[list[float]] | None = None) -> NeighbourTable:
    """Six films A..F with popularity 10..60; the cold-start list is by popularity (F first)."""
    content_idx = np.array(content, dtype=np.int32)
    cooc_idx = np.array(cooc if cooc is not None else [[NONE]] * 6, dtype=np.int32)
    sims = np.array(cooc_sims, dtype=np.float32) if cooc_sims is not None else (cooc_idx >= 0).astype(np.float32)
    return NeighbourTable(
        ids=("a", "b", "c", "d", "e", "f"),
        popularity=np.array([10, 20, 30, 40, 50, 60], dtype=np.float32),
        popular_order=np.array([F, E, D, C, B, A], dtype=np.int32),
        content_idx=content_idx, content_sim=np.where(content_idx >= 0, 0.5, 0.0).astype(np.float32),
        cooc_idx=cooc_idx, cooc_sim=sims,
    )


HAND_TABLE = table([[B, C], [C, D], [NONE, NONE], [NONE, NONE], [F, C], [NONE, NONE]])


def history(*items: tuple[str, int | None]) -> list[HistoryItem]:
    """History items, most recent first (as db_utils.history_for returns them)."""
    return [HistoryItem(movie_id, 90, rating, datetime(2023, 1, 1)) for movie_id, rating in items]


def catalogue(t: NeighbourTable) -> Catalogue:
    return Catalogue(popularity=t.popularity.astype(float), popular_order=t.popular_order)


def test_seed_on_a_hand_computed_example() -> None:
    # History: A rated 5, B watched but unrated (counts as 3), E rated 2 (does not qualify: rating <= 2).
    # Neighbours: A -> [B, C], B -> [C, D], E -> [F, C] (E is ignored).
    # Candidate rating sums: B = 5 (from A), C = 5 (A) + 3 (B) = 8, D = 3 (B).
    # Scores = rating sum x popularity: B = 5 x 20 = 100 (watched: removed), C = 8 x 30 = 240, D = 3 x 40 = 120.
    # Ranking: C (240), D (120); fill from the popular list F, E, D, C, B, A minus watched/chosen -> F (score 0).
    profile = build_profile(HAND_TABLE, history(("a", 5), ("b", None), ("e", 2)))
    ranked = rank_seed(profile, catalogue(HAND_TABLE), n=3)
    assert ranked.rows == [C, D, F]
    assert ranked.scores == [240.0, 120.0, 0.0]
    assert ranked.personalised


def test_seed_falls_back_to_popular_when_nothing_qualifies() -> None:
    profile = build_profile(HAND_TABLE, history(("a", 1), ("e", 2)))
    ranked = rank_seed(profile, catalogue(HAND_TABLE), n=3)
    assert ranked.rows == [F, D, C]  # popular order minus the watched A and E
    assert not ranked.personalised


def test_seed_ties_break_on_popularity() -> None:
    # A -> [B, C] with A rated 4: B = 4 x 20 = 80, C = 4 x 30 = 120; then D and E only from the fill.
    t = table([[B, C], [NONE, NONE], [NONE, NONE], [NONE, NONE], [NONE, NONE], [NONE, NONE]])
    ranked = rank_seed(build_profile(t, history(("a", 4))), catalogue(t), n=6)
    assert ranked.rows == [C, B, F, E, D]  # only 5 films are not watched


@pytest.mark.parametrize("strategy", ["seed", "blend", "popularity", "itemknn"])
def test_no_strategy_recommends_a_watched_or_rated_film(strategy: str) -> None:
    t = table([[B, C], [C, D], [D, E], [E, F], [F, A], [A, B]],
              cooc=[[B], [C], [D], [E], [F], [A]])
    items = history(("a", 5), ("c", None), ("d", 1))
    ranked = strategy_named(strategy)(build_profile(t, items), catalogue(t), 6)
    assert not {A, C, D} & set(ranked.rows)
    assert sorted(ranked.rows) == [B, E, F]


def test_popularity_is_the_cold_start_list_minus_watched() -> None:
    t = HAND_TABLE
    assert rank_popularity(empty_profile(), catalogue(t), 3).rows == [F, E, D]
    assert rank_popularity(build_profile(t, history(("e", 4))), catalogue(t), 3).rows == [F, D, C]


def test_itemknn_sums_co_rating_similarities() -> None:
    # A -> B (0.9), C (0.2); E -> C (0.5), D (0.1). Sums: B 0.9, C 0.7, D 0.1.
    t = table([[NONE]] * 6, cooc=[[B, C], [NONE, NONE], [NONE, NONE], [NONE, NONE], [C, D], [NONE, NONE]],
              cooc_sims=[[0.9, 0.2], [0, 0], [0, 0], [0, 0], [0.5, 0.1], [0, 0]])
    ranked = rank_itemknn(build_profile(t, history(("a", 5), ("e", 3))), catalogue(t), 4)
    assert ranked.rows == [B, C, D, F]
    assert ranked.scores[:3] == pytest.approx([0.9, 0.7, 0.1])


def test_blend_weights_ratings_and_recency() -> None:
    params = BlendParams(rating_slope=0.5, unrated_weight=0.8, recency_half_life=1.0)
    profile = build_profile(HAND_TABLE, history(("a", 5), ("b", None), ("e", 1)))
    weights = source_weights(profile, params)
    # A: (1 + 0.5 x 2) x 0.5^0 = 2; B: 0.8 x 0.5^1 = 0.4; E: max(1 + 0.5 x -2, 0) x 0.25 = 0.
    assert weights == pytest.approx([2.0, 0.4, 0.0])


def test_blend_prefers_co_rated_films_and_excludes_history() -> None:
    t = table([[C, D], [NONE, NONE], [NONE, NONE], [NONE, NONE], [NONE, NONE], [NONE, NONE]],
              cooc=[[E], [NONE], [NONE], [NONE], [NONE], [NONE]], cooc_sims=[[0.9], [0], [0], [0], [0], [0]])
    ranked = rank_blend(build_profile(t, history(("a", 4))), catalogue(t), 5)
    # E: 1.0 x 0.9 co-rating beats C/D: 0.35 x 0.5 content; the popularity prior orders D (40) before C (30).
    assert ranked.rows[:3] == [E, D, C]
    assert A not in ranked.rows


def test_unknown_films_in_history_are_ignored_but_known_ones_excluded() -> None:
    profile = build_profile(HAND_TABLE, history(("not+in+catalogue+1999", 5), ("a", 5)))
    assert list(profile.watched) == [A]
    assert list(profile.recency) == [1]  # the unknown film still counts as the most recent event


def test_recommender_maps_rows_to_ids_and_kinds() -> None:
    engine = Recommender(HAND_TABLE, strategy_named("seed"), chroma=None, n=3)
    answer = engine.recommend(history(("a", 5), ("b", None), ("e", 2)))
    assert (answer.movie_ids, answer.kind) == (["c", "d", "f"], "personalised")
    assert engine.recommend([]).kind == "cold_start"
    assert engine.popular(reason="database").kind == "fallback"


def test_strategy_names() -> None:
    assert parse_strategies("seed, blend,popularity") == ["seed", "blend", "popularity"]
    with pytest.raises(UnknownStrategy, match="choose one of"):
        strategy_named("magic")


def test_dense_accumulation_matches_the_sorted_one() -> None:
    from inference.ranking import _accumulate

    rng = np.random.default_rng(3)
    for _ in range(50):
        idx = rng.integers(-1, 300, size=(rng.integers(0, 40), 20))
        values = rng.random(idx.shape)
        sorted_rows, sorted_sums = _accumulate(idx, values)
        dense_rows, dense_sums = _accumulate(idx, values, 300)
        assert np.array_equal(sorted_rows, dense_rows)
        assert np.array_equal(sorted_sums, dense_sums)  # same order of additions: bit-identical
