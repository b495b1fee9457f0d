"""The real catalogue built from the fetched datasets (slow the first time, then cached)."""

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from db_utils.models import Movie
from vectordb_scripts.catalog import MOVIE_COLUMNS, template_description
from vectordb_scripts.catalog_build import build_catalog, coverage_table, load_database
from vectordb_scripts.catalog_io import (
    load_catalog,
    load_ml1m_mapping,
    load_ml1m_ratings,
    load_ml1m_users,
    load_ml100k_ratings,
)
from vectordb_scripts.cli import main as cli_main
from vectordb_scripts.slugs import slugify
from vectordb_scripts.sources import read_ml1m_items

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def movies(real_data_dir: Path) -> pd.DataFrame:
    return load_catalog(real_data_dir)


def test_catalogue_size_columns_and_unique_slugs(movies: pd.DataFrame) -> None:
    assert len(movies) >= 27_000
    assert list(movies.columns) == MOVIE_COLUMNS
    assert movies["id"].is_unique
    assert movies["id"].str.fullmatch(r"[^+/,=\s]+(\+[^+/,=\s]+)*").all()
    assert movies["title"].notna().all() and movies["year"].notna().all()
    plain = [slugify(t, int(y)) for t, y in zip(movies["title"], movies["year"], strict=True)]
    suffixed = [s != p for s, p in zip(movies["id"], plain, strict=True)]
    assert all(s == p or s.startswith(p + "+") for s, p in zip(movies["id"], plain, strict=True))
    assert 0 < sum(suffixed) < 200  # collisions exist but are rare
    for slug in ["the+dark+knight+2008", "the+green+mile+1999", "the+sound+of+music+1965", "the+matrix+1999",
                 "the+hunger+games+mockingjay+-+part+1+2014"]:  # fmt: skip
        assert slug in set(movies["id"]), slug


def test_every_ml1m_film_is_in_the_catalogue(real_data_dir: Path, movies: pd.DataFrame) -> None:
    mapping = load_ml1m_mapping(real_data_dir)
    items = read_ml1m_items(real_data_dir / "raw")
    assert len(items) == 3883 and len(mapping) == 3883
    assert mapping["ml1m_id"].is_unique and mapping["movie_id"].is_unique
    assert set(mapping["movie_id"]) <= set(movies["id"])
    assert movies["ml1m_id"].notna().sum() == 3883
    by_item = dict(zip(items["item"], items["ml1m_id"], strict=True))
    slug_of = dict(zip(mapping["ml1m_id"], mapping["movie_id"], strict=True))
    assert slug_of[by_item["Matrix, The (1999)"]] == "the+matrix+1999"
    assert slug_of[by_item["Toy Story (1995)"]] == "toy+story+1995"


def test_ml1m_ratings_users_and_ml100k_accessors(real_data_dir: Path, movies: pd.DataFrame) -> None:
    ratings = load_ml1m_ratings(real_data_dir)
    assert len(ratings) == 1_000_209
    assert list(ratings.columns) == ["user_id", "movie_id", "ml1m_id", "rating", "timestamp"]
    assert ratings["movie_id"].isin(set(movies["id"])).all()
    assert ratings["rating"].between(1, 5).all() and ratings["user_id"].nunique() == 6040
    assert ratings["timestamp"].between(946_684_800, 1_072_915_200).all()  # 2000-2003
    assert str(ratings["user_id"].dtype) == "int64" and str(ratings["timestamp"].dtype) == "int64"
    users = load_ml1m_users(real_data_dir)
    assert len(users) == 6040 and set(users["gender"]) == {"M", "F"}
    assert {"user_id", "gender", "age", "occupation"} <= set(users.columns)
    small = load_ml100k_ratings(real_data_dir)
    assert len(small) == 100_000
    assert small["movie_id"].notna().mean() > 0.99  # only ML-100K's yearless "unknown" film is left out


def test_coverage_and_provenance_are_real(movies: pd.DataFrame) -> None:
    share = movies.notna().mean()
    assert share["genres"] > 0.85 and share["runtime"] > 0.85 and share["vote_average"] > 0.9
    assert share["director"] > 0.4 and share["cast"] > 0.4 and share["imdb_id"] > 0.4
    assert movies["tmdb_id"].notna().sum() > 4000
    described = movies["description_source"].value_counts()
    assert described["tmdb"] > 4000 and described["wikipedia"] > 1000
    assert set(described.index) == {"tmdb", "wikipedia", "template"}
    assert movies["field_sources"].map(lambda d: {"title", "year", "overview"} <= set(d)).all()
    assert movies["sources"].str.len().gt(0).all() and movies["popularity"].between(0, 100).all()
    templated = movies[movies["description_source"] == "template"].head(500)
    for row in templated.itertuples():
        assert row.overview == template_description(row.year, row.genres, row.runtime, row.director, row.cast)
    print(coverage_table(movies))


def test_second_build_reuses_the_catalogue(real_data_dir: Path) -> None:
    result = build_catalog(real_data_dir)
    assert result.reused and len(result.catalog) >= 27_000


def test_database_load_through_upsert_movies(movies: pd.DataFrame, db_engine: Engine) -> None:
    url = db_engine.url.render_as_string(hide_password=False)
    sample = movies.head(1500)
    assert load_database(sample, url) == 1500
    assert load_database(sample, url) == 1500  # idempotent
    with db_engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Movie)) == 1500
        top = connection.execute(select(Movie).where(Movie.id == sample["id"].iloc[0])).one()
    assert top.title == sample["title"].iloc[0] and top.field_sources == sample["field_sources"].iloc[0]


def test_cli_loads_the_whole_catalogue_into_sqlite(real_data_dir: Path, tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    assert cli_main(["catalog", "build", "--data-dir", str(real_data_dir), "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert "catalogue reused" in out and "loaded" in out and "overview: tmdb" in out
