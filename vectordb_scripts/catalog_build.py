"""`movierec catalog build`: the ~27K-film catalogue from the fetched datasets (see catalog.py).

Writes `<data_dir>/catalog/movies.parquet`, `ml1m_mapping.csv`, `ml100k_mapping.csv` and a build
stamp, loads the `movies` table (db_utils.queries.upsert_movies) and prints a coverage table.
A second run with the same inputs and target reuses the files (only the database load runs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from movierec.base.settings import CommonSettings, EnvSettings, nested_common, setting
from vectordb_scripts import catalog, slugs, sources, titles
from vectordb_scripts.catalog_io import (
    catalog_path,
    load_catalog,
    load_ml1m_ratings,
    ml1m_mapping_path,
    ml1m_ratings_path,
    ml100k_mapping_path,
)
from vectordb_scripts.fetch import MANIFEST_NAME

log = logging.getLogger(__name__)

DEFAULT_TARGET_SIZE = 27_278
# Bump when the build logic changes, so existing catalogues are rebuilt.
BUILD_VERSION = 1
STAMP_NAME = "build.json"
BUILDER_MODULES = (catalog, slugs, sources, titles, sys.modules[__name__])
COVERAGE_FIELDS = [
    "title", "year", "original_title", "release_date", "tmdb_id", "imdb_id", "ml1m_id", "genres", "runtime",
    "original_language", "director", "cast", "vote_average", "vote_count", "popularity_source",
]  # fmt: skip


class CatalogBuildError(RuntimeError):
    """The catalogue cannot be built (data not fetched, or a check on the result failed)."""


class CatalogSettings(EnvSettings):
    common: CommonSettings = nested_common()
    target_size: int = setting("MOVIEREC_CATALOG_SIZE", DEFAULT_TARGET_SIZE, ge=1)
    load_database: bool = setting("MOVIEREC_CATALOG_LOAD_DB", True)
    database_url: str | None = setting("DATABASE_URL", None)  # DATABASE_URL when set; else SQLite in the data dir


@dataclass
class BuildResult:
    catalog: pd.DataFrame
    ml1m_mapping: pd.DataFrame
    ml100k_mapping: pd.DataFrame
    reused: bool
    seconds: float


def _stamp(data_dir: Path, target_size: int) -> dict[str, Any]:
    manifest = data_dir / "raw" / MANIFEST_NAME
    if not manifest.is_file():
        raise CatalogBuildError(f"{manifest} is missing: run `movierec data fetch` first")
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    # The builder's own code is an input too: editing the matching rules rebuilds the catalogue.
    code = hashlib.sha256()
    for module in BUILDER_MODULES:
        code.update(Path(module.__file__).read_bytes())
    return {
        "version": BUILD_VERSION,
        "raw_manifest_sha256": digest,
        "code_sha256": code.hexdigest(),
        "target_size": target_size,
    }


def is_current(data_dir: Path, target_size: int) -> bool:
    """True when the catalogue files exist and were built from the same data and target size."""
    stamp_file = data_dir / "catalog" / STAMP_NAME
    paths = [catalog_path(data_dir), ml1m_mapping_path(data_dir), ml100k_mapping_path(data_dir), stamp_file]
    paths.append(ml1m_ratings_path(data_dir))
    if not all(p.is_file() for p in paths):
        return False
    try:
        return json.loads(stamp_file.read_text()) == _stamp(data_dir, target_size)
    except (ValueError, CatalogBuildError):
        return False


def read_records(raw_dir: Path) -> pd.DataFrame:
    """Every dataset's films as standard records, in matching order, with their title keys."""
    frames = []
    for name in tqdm(catalog.SOURCE_ORDER, desc="reading datasets", unit="dataset", leave=False):
        frames.append(sources.READERS[name](raw_dir))
    with warnings.catch_warnings():
        # all-NA columns (a dataset without that field) must not decide the dtype: the old behaviour
        warnings.simplefilter("ignore", FutureWarning)
        records = pd.concat(frames, ignore_index=True)
    records["keys"] = [catalog.record_keys(t, a) for t, a in zip(records["title"], records["alt_titles"], strict=True)]
    return records


def compute_catalog(raw_dir: Path, target_size: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(catalogue, ml1m mapping, ml100k mapping) from the extracted datasets; no file written."""
    records = read_records(raw_dir)
    # Within a dataset the most voted film is matched first (see catalog.py).
    votes = records[["imdb_votes", "tmdb_votes", "rt_reviews", "ml_ratings"]].apply(pd.to_numeric).max(axis=1)
    order = records["source"].map({s: i for i, s in enumerate(catalog.SOURCE_ORDER)})
    records = records.assign(_order=order, _votes=votes.fillna(-1))
    records = records.sort_values(["_order", "_votes"], ascending=[True, False], kind="stable")
    records = records.drop(columns=["_order", "_votes"]).reset_index(drop=True)
    match_input = [
        catalog.MatchRecord(s, k, None if pd.isna(y) else int(y), catalog.record_part_keys(t, k))
        for s, k, y, t in zip(records["source"], records["keys"], records["year"], records["title"], strict=True)
    ]
    records["film"] = catalog.match_records(match_input, dedupe_sources={"ml100k"})
    films = catalog.merge_films(records)
    keys = records[["film", "keys", "year"]].explode("keys").rename(columns={"keys": "key"}).dropna()
    keys["year"] = keys["year"].astype(int)
    wikipedia = catalog.attach_wikipedia(films, keys, sources.read_wikipedia(raw_dir))
    held = catalog.sources_by_film(records)
    forced = pd.Series({film: bool({"ml1m", "ml100k"} & names) for film, names in held.items()})
    selected = catalog.select_films(films, forced, target_size)
    result = catalog.finish_catalog(selected, wikipedia)
    slug_of = result["id"]
    mappings = []
    for source, column in (("ml1m", "ml1m_id"), ("ml100k", "ml100k_id")):
        rows = records[records["source"] == source]
        mapping = pd.DataFrame({column: rows[column].astype("int64"), "movie_id": rows["film"].map(slug_of)})
        mappings.append(mapping.dropna().sort_values(column).reset_index(drop=True))
    missing = set(records.loc[records["source"] == "ml1m", "ml1m_id"]) - set(mappings[0]["ml1m_id"])
    if missing:
        raise CatalogBuildError(f"{len(missing)} ML-1M films did not reach the catalogue")
    return result.reset_index(drop=True), mappings[0], mappings[1]


def _write(frame: pd.DataFrame, path: Path) -> None:
    partial = path.with_name(path.name + ".partial")
    if path.suffix == ".parquet":
        frame.to_parquet(partial, index=False)
    else:
        frame.to_csv(partial, index=False)
    partial.replace(path)


def build_catalog(data_dir: Path, target_size: int = DEFAULT_TARGET_SIZE, force: bool = False) -> BuildResult:
    """Build (or reuse, when current) the catalogue files in `data_dir/catalog`."""
    started = time.perf_counter()
    out_dir = data_dir / "catalog"
    if not force and is_current(data_dir, target_size):
        result = BuildResult(
            load_catalog(data_dir),
            pd.read_csv(ml1m_mapping_path(data_dir)),
            pd.read_csv(ml100k_mapping_path(data_dir)),
            reused=True,
            seconds=0.0,
        )
        result.seconds = time.perf_counter() - started
        return result
    stamp = _stamp(data_dir, target_size)
    movies, ml1m, ml100k = compute_catalog(data_dir / "raw", target_size)
    if not movies["id"].is_unique:
        raise CatalogBuildError("catalogue slugs are not unique")
    out_dir.mkdir(parents=True, exist_ok=True)
    stored = movies.assign(field_sources=movies["field_sources"].map(lambda d: json.dumps(d, sort_keys=True)))
    _write(stored, catalog_path(data_dir))
    _write(ml1m, ml1m_mapping_path(data_dir))
    _write(ml100k, ml100k_mapping_path(data_dir))
    ml1m_ratings_path(data_dir).unlink(missing_ok=True)  # load_ml1m_ratings then joins the new mapping
    _write(load_ml1m_ratings(data_dir), ml1m_ratings_path(data_dir))
    (out_dir / STAMP_NAME).write_text(json.dumps(stamp, indent=2))
    return BuildResult(movies, ml1m, ml100k, reused=False, seconds=time.perf_counter() - started)


def movie_rows(movies: pd.DataFrame) -> list[dict[str, Any]]:
    """Catalogue rows as plain Python dicts for db_utils.queries.upsert_movies (NA -> None)."""
    integer_columns = {"year", "tmdb_id", "ml1m_id", "runtime", "vote_count"}
    float_columns = {"vote_average", "popularity"}
    rows = []
    for record in movies.to_dict("records"):
        row = {}
        for column, value in record.items():
            if not isinstance(value, dict | list) and pd.isna(value):
                row[column] = None
            elif column in integer_columns:
                row[column] = int(value)
            elif column in float_columns:
                row[column] = float(value)
            elif column == "adult":
                row[column] = bool(value)
            else:
                row[column] = value
        rows.append(row)
    return rows


def load_database(movies: pd.DataFrame, database_url: str) -> int:
    """Migrate the database and upsert every catalogue film into `movies`; returns the row count."""
    from db_utils.engine import make_engine, upgrade_database
    from db_utils.queries import upsert_movies

    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            return upsert_movies(connection, movie_rows(movies))
    finally:
        engine.dispose()


def coverage_table(movies: pd.DataFrame) -> str:
    """Per field: films that have it and the share of the catalogue, plus description sources."""
    total = len(movies)
    lines = [f"{'field':<20}{'films':>8}{'share':>9}", "-" * 37]
    for field in COVERAGE_FIELDS:
        have = int(movies[field].notna().sum())
        lines.append(f"{field:<20}{have:>8}{have / total:>9.1%}")
    for source, count in movies["description_source"].value_counts().items():
        lines.append(f"{'overview: ' + str(source):<20}{count:>8}{count / total:>9.1%}")
    lines.append(f"{'total films':<20}{total:>8}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """`movierec catalog build` with its options only (see --help)."""
    settings = CatalogSettings.from_env()
    parser = argparse.ArgumentParser(prog="movierec catalog build", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=settings.common.data_dir)
    parser.add_argument("--target-size", type=int, default=settings.target_size)
    parser.add_argument("--database-url", default=None, help="default: $DATABASE_URL (SQLite in the data dir)")
    parser.add_argument("--no-db", action="store_true", help="write the files only, do not load the database")
    parser.add_argument("--force", action="store_true", help="rebuild even if the catalogue is current")
    args = parser.parse_args(argv)
    data_dir = args.data_dir.resolve()
    started = time.perf_counter()
    try:
        result = build_catalog(data_dir, args.target_size, force=args.force)
    except (CatalogBuildError, FileNotFoundError) as exc:
        print(f"movierec catalog build: error: {exc}", file=sys.stderr)
        return 1
    verb = "reused (inputs unchanged)" if result.reused else "built"
    print(f"catalogue {verb}: {len(result.catalog)} films in {catalog_path(data_dir)} ({result.seconds:.1f}s)")
    print(coverage_table(result.catalog))
    if settings.load_database and not args.no_db:
        url = args.database_url or settings.database_url or f"sqlite:///{data_dir / 'movierec.db'}"
        loaded = load_database(result.catalog, url)
        print(f"loaded {loaded} films into the movies table")
    print(f"wall time {time.perf_counter() - started:.1f}s")
    return 0
