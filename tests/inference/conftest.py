"""Fixtures for the inference tests: a real MiniLM index of a small hand-made catalogue, apps, histories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from db_utils.queries import bulk_upsert_ratings, bulk_upsert_watches
from db_utils.rows import RatingRow, WatchRow
from inference.settings import InferenceSettings
from tests.inference.small_catalog import CLUSTERS, small_catalog
from vectordb_scripts.catalog_io import catalog_path
from vectordb_scripts.index import IndexSettings, build_index

T0 = datetime(2023, 10, 25, 12, 0, 0)


def synthetic_ratings(seed: int = 7) -> pd.DataFrame:
    """Users who each rate 4 films of one cluster: co-rating neighbours stay inside clusters."""
    rng = np.random.default_rng(seed)
    rows = []
    user = 0
    for members in CLUSTERS.values():
        for _ in range(8):
            user += 1
            for movie_id in rng.choice(members, size=4, replace=False):
                rows.append({"user_id": user, "movie_id": str(movie_id), "rating": int(rng.integers(3, 6)),
                             "timestamp": 1_000_000 + len(rows)})
    return pd.DataFrame(rows)


def write_catalog(data_dir: Path, catalog: pd.DataFrame) -> None:
    """The catalogue file as the catalogue builder writes it (vectordb_scripts.catalog_io layout)."""
    path = catalog_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = catalog.copy()
    frame["field_sources"] = None
    frame.to_parquet(path, index=False)


@pytest.fixture(scope="session")
def indexed_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the small catalogue, its ChromaDB collection and neighbour table (real model)."""
    data_dir = tmp_path_factory.mktemp("indexed") / "var"
    catalog = small_catalog()
    write_catalog(data_dir, catalog)
    settings = IndexSettings.from_env({"MOVIEREC_DATA_DIR": str(data_dir)})
    build_index(catalog, settings, ratings=synthetic_ratings(), progress=False)
    return data_dir


@pytest.fixture
def inference_env(indexed_data_dir: Path, postgres_url: str) -> dict[str, str]:
    return {"MOVIEREC_DATA_DIR": str(indexed_data_dir), "DATABASE_URL": postgres_url, "CHROMA_URL": "",
            "INFERENCE_DB_RETRY_SECONDS": "0"}


@pytest.fixture
def make_settings(inference_env: dict[str, str]) -> Callable[..., InferenceSettings]:
    def make(**overrides: str) -> InferenceSettings:
        return InferenceSettings.from_env({**inference_env, **overrides})

    return make


@pytest.fixture
def make_client(make_settings: Callable[..., InferenceSettings]) -> Iterator[Callable[..., object]]:
    """A Flask test client of `create_app` built from settings overrides (engines disposed afterwards)."""
    from inference.app import create_app

    apps = []

    def make(**overrides: str) -> object:
        app = create_app(make_settings(**overrides))
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["movierec_inference"].history.dispose()


def add_history(engine: Engine, user_id: int, watched: list[str], ratings: dict[str, int] | None = None) -> None:
    """Watches (first film = oldest) and ratings for one user, written by db_utils' write path."""
    ratings = ratings or {}
    watch_rows = [WatchRow(user_id, movie_id, 90, T0 + timedelta(minutes=i), T0 + timedelta(minutes=i))
                  for i, movie_id in enumerate(watched)]
    rating_rows = [RatingRow(user_id, movie_id, rating, T0 + timedelta(minutes=watched.index(movie_id)
                                                                          if movie_id in watched else 0))
                   for movie_id, rating in ratings.items()]
    with engine.begin() as conn:
        bulk_upsert_watches(conn, watch_rows)
        bulk_upsert_ratings(conn, rating_rows)
