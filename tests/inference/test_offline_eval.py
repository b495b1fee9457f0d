"""Offline evaluation: pure metrics by hand, and the whole protocol on the small real index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from inference.evaluation import GateFailed, StrategyScore, check_gate, temporal_split
from inference.offline_eval import EvalConfig, evaluate, select_users, write_report
from inference.statistics import coverage, hit, ndcg
from tests.inference.small_catalog import CLUSTERS, small_catalog
from vectordb_scripts.table import load_table


def test_temporal_split_holds_out_the_last_ratings_per_user() -> None:
    ratings = pd.DataFrame({
        "user_id": [1, 1, 1, 1, 1, 1, 1, 2, 2],
        "movie_id": list("abcdefgxy"),
        "rating": [5] * 9,
        "timestamp": [10, 30, 20, 40, 50, 60, 60, 1, 2],  # f and g tie at 60: input order decides (g last)
    })
    train, test = temporal_split(ratings, holdout=2, min_train=5)
    assert sorted(test["movie_id"]) == ["f", "g"]
    assert sorted(train[train["user_id"] == 1]["movie_id"]) == list("abcde")
    assert sorted(train[train["user_id"] == 2]["movie_id"]) == ["x", "y"]  # too few ratings: all training


def test_hit_ndcg_coverage_by_hand() -> None:
    assert hit(["a", "b", "c"], {"c"}, k=3) == 1.0 and hit(["a", "b", "c"], {"c"}, k=2) == 0.0
    # Hits at ranks 1 and 3 of two relevant: DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) = 1.6309.
    assert ndcg(["a", "x", "b"], {"a", "b"}, k=3) == pytest.approx(1.5 / (1 + 1 / np.log2(3)))
    assert ndcg(["x"], set(), k=3) == 0.0
    assert coverage([["a", "b"], ["b", "c"]], catalogue_size=10) == 0.3


def test_gate_against_minimum_and_popularity() -> None:
    def score(name: str, hr: float) -> StrategyScore:
        return StrategyScore(name, 10, hr, hr / 2, 0.1, hr, 0.1)

    scores = {"blend": score("blend", 0.30), "popularity": score("popularity", 0.20)}
    assert "passed" in check_gate(scores, "blend", 0.25)
    with pytest.raises(GateFailed, match="required"):
        check_gate(scores, "blend", 0.35)
    with pytest.raises(GateFailed, match="popularity"):
        check_gate({**scores, "blend": score("blend", 0.15)}, "blend", 0.1)


def test_select_users_by_parity_and_sample() -> None:
    ids = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert select_users(ids, "odd", 0, 0).tolist() == [1, 3, 5, 7, 9]
    assert select_users(ids, "all", 4, 0).tolist() == select_users(ids, "all", 4, 0).tolist()
    assert len(select_users(ids, "even", 3, 1)) == 3


def clustered_ratings(users_per_cluster: int = 12, seed: int = 3) -> pd.DataFrame:
    """Each user rates the 6 films of one cluster (in random order) and 3 popular films elsewhere."""
    rng = np.random.default_rng(seed)
    everything = [m for members in CLUSTERS.values() for m in members]
    rows, user = [], 0
    for members in CLUSTERS.values():
        for _ in range(users_per_cluster):
            user += 1
            others = rng.choice([m for m in everything if m not in members], size=3, replace=False)
            films = list(rng.permutation(members)) + list(others)
            order = rng.permutation(len(films))
            for t, i in enumerate(order):
                rows.append({"user_id": user, "movie_id": str(films[i]), "rating": int(rng.integers(3, 6)),
                             "timestamp": 1000 + t})
    return pd.DataFrame(rows)


FITTED_ROWS = ["als", "ease", "ease-recency", "ranker"]


def test_protocol_on_the_small_index(indexed_data_dir: Path, tmp_path: Path) -> None:
    table = load_table(indexed_data_dir / "index" / "neighbours.npz")
    config = EvalConfig(["seed", "blend", "popularity", "itemknn", "mostrated", *FITTED_ROWS], holdout=2, users="all")
    result = evaluate(table, clustered_ratings(), config, small_catalog())
    assert result.users == 72 and result.test_ratings == 144
    scores = result.scores
    assert set(scores) == {"seed", "blend", "popularity", "itemknn", "mostrated", *FITTED_ROWS}
    # Models fitted on the training part only find the held-out cluster mates too.
    assert all(scores[name].hit_rate > scores["popularity"].hit_rate for name in FITTED_ROWS)
    # Held-out films are mostly cluster mates: neighbour-based strategies find them, popularity cannot.
    assert scores["blend"].hit_rate > scores["popularity"].hit_rate
    assert scores["itemknn"].hit_rate > scores["popularity"].hit_rate
    assert scores["blend"].hit_rate >= 0.9
    assert all(0 <= s.ndcg <= s.hit_rate <= 1 for s in scores.values())
    assert scores["popularity"].coverage < scores["blend"].coverage
    path = write_report(result, tmp_path / "reports", "gate passed: test")
    text = path.read_text()
    assert "| blend |" in text and "HR@20" in text and "gate passed" in text and "| ranker |" in text
    table_json = json.loads((tmp_path / "reports" / "offline-eval.json").read_text())
    assert [row["strategy"] for row in table_json["strategies"]] == list(scores)
    assert table_json["gate"] == "gate passed: test" and table_json["config"]["holdout"] == 2
    assert table_json["strategies"][0]["hit_rate"] == scores["seed"].hit_rate
    assert (tmp_path / "reports" / "offline-eval.png").stat().st_size > 1000


def test_an_artifact_warm_started_on_held_out_ratings_is_refused(indexed_data_dir: Path, tmp_path: Path) -> None:
    from inference.ease import RankerParams
    from inference.model import fit_model, save_model
    from inference.offline_eval import ArtifactLeaks, _artifact_strategy

    ratings = clustered_ratings().rename(columns={"user_id": "user"})
    model = fit_model(ratings, RankerParams(), 0, "model-leaky")
    save_model(model, tmp_path / "models" / "model-leaky", {"warm_start": {"ratings": len(ratings), "holdout": 2}})
    table = load_table(indexed_data_dir / "index" / "neighbours.npz")
    with pytest.raises(ArtifactLeaks, match="retrain"):
        _artifact_strategy(tmp_path, "model-leaky", table, holdout=10)
    strategies, notes = _artifact_strategy(tmp_path, "latest", table, holdout=2)
    assert set(strategies) == {"model"} and "model-leaky" in notes[0]
