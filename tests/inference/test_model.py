"""The learned ranker: fitting, ranking (sequence order, cold films via content), the artifact files,
`movierec train` on real SQLite and PostgreSQL, and the service serving a chosen version."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from db_utils.queries import HistoryItem, bulk_upsert_ratings, bulk_upsert_watches
from db_utils.rows import RatingRow, WatchRow
from inference.ease import RankerParams
from inference.model import ModelMissing, ModelRanker, artifact_dir, fit_model, list_versions, load_model, save_model
from inference.ranking import Catalogue
from inference.recommender import build_profile
from inference.train import NoInteractions, TrainSettings, main, train
from movierec.base.settings import CommonSettings, ConfigError
from tests.inference.small_catalog import CLUSTERS
from vectordb_scripts.table import NeighbourTable

T0 = datetime(2026, 11, 30, 12, 0, 0)
CHAIN = ["a", "b", "c", "d", "e", "f"]  # everyone watches these in this order
OTHERS = [f"x{k}" for k in range(10)]  # watched in random order
COLD = ["cold1", "cold2"]  # in the catalogue, never watched: reachable through content only
PARAMS = RankerParams(l2=1.0, seq_l2=1.0, seq_source_len=3, seq_targets=2, seq_stride=1, ease_share=0.5)


def chain_interactions(users: int = 40, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(users):
        films = list(rng.permutation(OTHERS)[:4]) + CHAIN
        rows += [{"user": user, "movie_id": m, "timestamp": float(t)} for t, m in enumerate(films)]
    return pd.DataFrame(rows)


def table(ids: list[str], content: dict[str, list[str]]) -> NeighbourTable:
    row = {m: i for i, m in enumerate(ids)}
    width = max(len(v) for v in content.values())
    idx = np.full((len(ids), width), -1, dtype=np.int32)
    sim = np.zeros((len(ids), width), dtype=np.float32)
    for movie_id, neighbours in content.items():
        idx[row[movie_id], : len(neighbours)] = [row[m] for m in neighbours]
        sim[row[movie_id], : len(neighbours)] = 0.9
    none = np.full((len(ids), 0), -1, dtype=np.int32)
    return NeighbourTable(ids=tuple(ids), popularity=np.arange(len(ids), 0, -1).astype(np.float32),
                          popular_order=np.arange(len(ids), dtype=np.int32), content_idx=idx, content_sim=sim,
                          cooc_idx=none, cooc_sim=none.astype(np.float32))


def history(*newest_first: str) -> list[HistoryItem]:
    return [HistoryItem(m, 90, None, T0 - timedelta(minutes=i)) for i, m in enumerate(newest_first)]


@pytest.fixture(scope="module")
def fitted() -> tuple[Any, NeighbourTable]:
    model = fit_model(chain_interactions(), PARAMS, max_items=0, version="model-test")
    ids = CHAIN + OTHERS + COLD
    return model, table(ids, {"a": ["cold1"], "x0": ["cold2", "cold1"], "cold1": ["cold2", "c"]})


def ranked_ids(model: Any, tbl: NeighbourTable, items: list[HistoryItem], n: int = 5) -> list[str]:
    ranker = ModelRanker(model, tbl)
    catalogue = Catalogue(popularity=tbl.popularity.astype(np.float64), popular_order=tbl.popular_order)
    return [tbl.ids[r] for r in ranker(build_profile(tbl, items), catalogue, n).rows]


def test_the_sequence_decides_what_comes_next(fitted: tuple[Any, NeighbourTable]) -> None:
    model, tbl = fitted
    assert set(model.ids) == set(CHAIN + OTHERS)  # films without interactions are not modelled
    assert ranked_ids(model, tbl, history("b", "a"))[0] == "c"
    assert ranked_ids(model, tbl, history("d", "c", "b", "a"))[0] == "e"
    # Watched films are never recommended.
    assert not {"a", "b"} & set(ranked_ids(model, tbl, history("b", "a"), n=12))


def test_films_without_interactions_stay_recommendable_through_content(fitted: tuple[Any, NeighbourTable]) -> None:
    model, tbl = fitted
    assert "cold1" in ranked_ids(model, tbl, history("a"), n=8)
    no_content = fit_model(chain_interactions(), RankerParams(**{**PARAMS.__dict__, "content_weight": 0.0}), 0)
    assert "cold1" not in ranked_ids(no_content, tbl, history("a"), n=8)
    # A history of an unmodelled film only: its content neighbours come first.
    assert ranked_ids(model, tbl, history("cold1"), n=1) == ["cold2"]


def test_max_items_keeps_the_most_interacted_films() -> None:
    model = fit_model(chain_interactions(), PARAMS, max_items=6)
    assert set(model.ids) == set(CHAIN) and model.ease.shape == model.sequence.shape == (6, 6)


def test_artifact_round_trip_and_version_lookup(fitted: tuple[Any, NeighbourTable], tmp_path: Path) -> None:
    model, tbl = fitted
    with pytest.raises(ModelMissing, match="movierec train"):
        artifact_dir(tmp_path, "")
    save_model(model, tmp_path / "models" / "model-20260101-000000", {"rows": {"interactions": 400}})
    later = fit_model(chain_interactions(seed=2), PARAMS, 0, version="model-20260102-000000")
    save_model(later, tmp_path / "models" / later.version, {"rows": {"interactions": 400}})
    assert list_versions(tmp_path) == ["model-20260101-000000", "model-20260102-000000"]
    assert load_model(tmp_path).version == "model-20260102-000000"  # the newest by default
    loaded = load_model(tmp_path, "model-20260101-000000")
    assert loaded.ids == model.ids and loaded.params == PARAMS and np.array_equal(loaded.ease, model.ease)
    assert ranked_ids(loaded, tbl, history("b", "a")) == ranked_ids(model, tbl, history("b", "a"))
    with pytest.raises(ModelMissing, match="model-20260101-000000"):
        load_model(tmp_path, "model-nope")


def write_stream(engine: Engine, users: int = 30) -> None:
    """Watches of the small catalogue's space cluster in order, plus a rating on the last one."""
    space = CLUSTERS["space"]
    watches = [WatchRow(u, m, 90, T0 + timedelta(hours=u, minutes=i), T0 + timedelta(hours=u, minutes=i))
               for u in range(1, users + 1) for i, m in enumerate(space)]
    ratings = [RatingRow(u, space[-1], 4, T0 + timedelta(hours=u, minutes=10)) for u in range(1, users + 1)]
    with engine.begin() as conn:
        bulk_upsert_watches(conn, watches)
        bulk_upsert_ratings(conn, ratings)


def test_train_settings_read_the_model_variables() -> None:
    assert TrainSettings.from_env({}).model_dump(exclude={"common"}) == {
        "max_items": 6000, "warm_start": True, "eval_max_users": 0}
    settings = TrainSettings.from_env({"MODEL_MAX_ITEMS": "100", "MODEL_WARM_START": "off", "MODEL_EVAL_MAX_USERS": ""})
    assert (settings.max_items, settings.warm_start, settings.eval_max_users, settings.holdout) == (100, False, 0, 10)
    with pytest.raises(ConfigError, match="MODEL_MAX_ITEMS='many': expected an integer"):
        TrainSettings.from_env({"MODEL_MAX_ITEMS": "many"})
    with pytest.raises(ConfigError, match="MODEL_WARM_START='maybe': expected a boolean"):
        TrainSettings.from_env({"MODEL_WARM_START": "maybe"})


def test_train_from_the_database(db_engine: Engine, data_dir: Path) -> None:
    url = db_engine.url.render_as_string(hide_password=False)
    settings = TrainSettings(common=CommonSettings.from_env({"MOVIEREC_DATA_DIR": str(data_dir), "DATABASE_URL": url}),
                             max_items=100, warm_start=True, eval_max_users=0)
    with pytest.raises(NoInteractions):
        train(settings, progress=False)
    write_stream(db_engine)
    directory = train(settings, version="model-test", progress=False)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["version"] == "model-test" and directory == data_dir / "models" / "model-test"
    assert manifest["rows"]["watches"] == 180 and manifest["rows"]["ratings"] == 30
    assert manifest["rows"]["input_rows"] == 210 and manifest["rows"]["interactions"] == 180  # distinct pairs
    assert manifest["rows"]["films_modelled"] == 6
    assert manifest["training_window"]["stream_first"].startswith("2026-11-30T13:00")
    assert "no ML-1M data" in manifest["warm_start"]["skipped"]  # this data dir has none
    assert manifest["params"]["l2"] == RankerParams().l2 and manifest["peak_rss_mb"] > 0
    model = load_model(data_dir, "model-test")
    space, family = CLUSTERS["space"], CLUSTERS[next(c for c in CLUSTERS if c != "space")]
    tbl = table(family + space, {space[0]: [space[1]]})  # family films first: the popularity fill prefers them
    assert set(ranked_ids(model, tbl, history(space[1], space[0]), n=4)) == set(space[2:])


def test_train_command_reports_and_exits_2_without_data(sqlite_engine: Engine, data_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_engine.url.render_as_string(hide_password=False))
    assert main(["train", "--data-dir", str(data_dir), "--no-warm-start"]) == 2
    assert "nothing to learn" in capsys.readouterr().err
    write_stream(sqlite_engine)
    assert main(["train", "--data-dir", str(data_dir), "--no-warm-start", "--version", "model-cli"]) == 0
    assert "model model-cli: 180 interactions, 6 films" in capsys.readouterr().out


def test_service_serves_the_chosen_version(make_client: Callable[..., Any], pg_engine: Engine,
                                           indexed_data_dir: Path, tmp_path: Path) -> None:
    from tests.inference.conftest import add_history

    write_stream(pg_engine)
    common = CommonSettings.from_env({"MOVIEREC_DATA_DIR": str(tmp_path),
                                      "DATABASE_URL": pg_engine.url.render_as_string(hide_password=False)})
    directory = train(TrainSettings(common=common, max_items=100, warm_start=False, eval_max_users=0),
                      version="model-served", evaluate_offline=False, progress=False)
    space = CLUSTERS["space"]
    add_history(pg_engine, 777, space[:2])
    client = make_client(INFERENCE_STRATEGY="model", MODEL_ARTIFACT=str(directory))
    response = client.get("/recommend/777")
    assert response.status_code == 200 and response.headers["X-Model-Version"] == "model-served"
    ids = response.get_data(as_text=True).strip().split(",")
    assert len(ids) == 20 and set(ids[:4]) == set(space[2:]) and not set(ids) & set(space[:2])
    assert client.get("/recommend/777?format=json").get_json()["model_version"] == "model-served"
