"""Accessors of the built catalogue and the MovieLens data other services use.

Built by `movierec data fetch` + `movierec catalog build` into `<data_dir>`:
`catalog/movies.parquet` (one row per film, the db_utils Movie columns, `id` = slug),
`catalog/ml1m_mapping.csv` (ml1m_id, movie_id), `catalog/ml100k_mapping.csv` (ml100k_id, movie_id)
and `catalog/ml1m_ratings.parquet` (the ML-1M ratings with their slugs, for fast loading).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from vectordb_scripts import sources


class CatalogNotBuilt(FileNotFoundError):
    """The data dir has no built catalogue (run `movierec data fetch` and `movierec catalog build`)."""


def catalog_path(data_dir: Path) -> Path:
    return Path(data_dir) / "catalog" / "movies.parquet"


def ml1m_mapping_path(data_dir: Path) -> Path:
    return Path(data_dir) / "catalog" / "ml1m_mapping.csv"


def ml1m_ratings_path(data_dir: Path) -> Path:
    return Path(data_dir) / "catalog" / "ml1m_ratings.parquet"


def ml100k_mapping_path(data_dir: Path) -> Path:
    return Path(data_dir) / "catalog" / "ml100k_mapping.csv"


def _require(path: Path) -> Path:
    if not path.is_file():
        raise CatalogNotBuilt(f"{path} is missing: run `movierec data fetch` then `movierec catalog build`")
    return path


def load_catalog(data_dir: Path) -> pd.DataFrame:
    """The catalogue: one row per film, columns = db_utils Movie columns, `id` = slug.

    `field_sources` is a dict per row (stored as JSON text in the parquet file).
    """
    frame = pd.read_parquet(_require(catalog_path(data_dir)))
    frame["field_sources"] = frame["field_sources"].map(lambda text: json.loads(text) if text else None)
    return frame


def load_ml1m_mapping(data_dir: Path) -> pd.DataFrame:
    """ML-1M film id -> catalogue slug (every ML-1M film is in the catalogue)."""
    return pd.read_csv(_require(ml1m_mapping_path(data_dir)), dtype={"ml1m_id": "int64", "movie_id": str})


def load_ml1m_ratings(data_dir: Path) -> pd.DataFrame:
    """The 1,000,209 ML-1M ratings: user_id, movie_id (slug), ml1m_id, rating (1-5), timestamp (unix s)."""
    cached = ml1m_ratings_path(data_dir)
    if cached.is_file():  # written by the catalogue build with the mapping: same slugs
        return pd.read_parquet(cached)
    mapping = load_ml1m_mapping(data_dir)
    ratings = sources.read_ml1m_ratings_raw(Path(data_dir) / "raw")
    ratings = ratings.merge(mapping, on="ml1m_id", how="left", validate="many_to_one")
    if ratings["movie_id"].isna().any():
        raise CatalogNotBuilt(f"{ml1m_mapping_path(data_dir)} does not cover every ML-1M film: rebuild the catalogue")
    return ratings[["user_id", "movie_id", "ml1m_id", "rating", "timestamp"]]


def load_ml1m_users(data_dir: Path) -> pd.DataFrame:
    """The 6,040 ML-1M users: user_id, gender (M/F), age (ML-1M age bucket), occupation (name),
    occupation_code (the dataset's 0-20 code)."""
    return sources.read_ml1m_users(Path(data_dir) / "raw")


def load_ml100k_ratings(data_dir: Path) -> pd.DataFrame:
    """The 100,000 ML-100K ratings (small fixtures): user_id, movie_id (slug), ml100k_id, rating, timestamp."""
    mapping = pd.read_csv(_require(ml100k_mapping_path(data_dir)), dtype={"ml100k_id": "int64", "movie_id": str})
    ratings = sources.read_ml100k_ratings_raw(Path(data_dir) / "raw")
    ratings = ratings.merge(mapping, on="ml100k_id", how="left", validate="many_to_one")
    return ratings[["user_id", "movie_id", "ml100k_id", "rating", "timestamp"]]
