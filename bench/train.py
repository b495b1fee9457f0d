"""`movierec train` on 1,000,000 interactions: wall time, fit time and peak RSS.

    python bench/train.py [--interactions 1000209] [--data-dir DIR]

The real MovieLens-1M ratings (1,000,209) are written into a fresh PostgreSQL schema as the parser
would store the stream (a watch row and a rating row per (user, film), COPY path of db_utils), then
`movierec train --no-warm-start --no-eval` runs as a subprocess (the real CLI, tqdm bar on stderr).
Peak RSS comes from the child's rusage (wait4). No offline metrics here: the database holds the
held-out ratings too (the artifact's clean metrics come from `movierec train` with the warm start).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine

from db_utils.engine import upgrade_database
from db_utils.queries import bulk_upsert_ratings, bulk_upsert_watches
from db_utils.rows import RatingRow, WatchRow
from movierec.base.benchlog import record_run
from movierec.base.scratch import postgres_schema_url, test_data_dir
from vectordb_scripts.catalog_io import load_ml1m_ratings

BATCH = 200_000


def load_database(url: str, data_dir: Path, limit: int) -> int:
    ratings = load_ml1m_ratings(data_dir).head(limit)
    engine = create_engine(url)
    rows = list(zip(ratings["user_id"].tolist(), ratings["movie_id"].tolist(), ratings["rating"].tolist(),
                    ratings["timestamp"].tolist(), strict=True))
    for start in range(0, len(rows), BATCH):
        chunk = rows[start:start + BATCH]
        with engine.begin() as conn:
            bulk_upsert_watches(conn, [WatchRow(int(u), m, 90, _time(t), _time(t)) for u, m, _, t in chunk])
            bulk_upsert_ratings(conn, [RatingRow(int(u), m, int(r), _time(t)) for u, m, r, t in chunk])
    engine.dispose()
    return len(rows)


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC).replace(tzinfo=None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=1_000_209)
    parser.add_argument("--data-dir", type=Path, default=None, help="data dir with ML-1M (default: the tests')")
    args = parser.parse_args()
    data_dir = args.data_dir or test_data_dir()
    with postgres_schema_url() as url, tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        upgrade_database(url)
        started = time.perf_counter()
        written = load_database(url, data_dir, args.interactions)
        load_seconds = time.perf_counter() - started
        print(f"database: {written:,} interactions (watch + rating rows) written in {load_seconds:.0f} s")
        command = [sys.executable, "-m", "movierec.cli", "train", "--no-warm-start", "--no-eval",
                   "--data-dir", tmp, "--version", "model-bench"]
        started = time.perf_counter()
        process = subprocess.Popen(command, env={**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"})
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"movierec train failed ({os.waitstatus_to_exitcode(status)})")
        manifest = json.loads((Path(tmp) / "models" / "model-bench" / "manifest.json").read_text())
    peak_mb = usage.ru_maxrss / 1024
    rows = manifest["rows"]
    print(f"train: {rows['interactions']:,} interactions (distinct user-film pairs; {rows['watches']:,} watches + "
          f"{rows['ratings']:,} ratings read), {rows['films_modelled']:,} films, fit {manifest['fit_seconds']} s, "
          f"{wall:.0f} s wall incl. start-up, peak RSS {peak_mb:.0f} MB, {os.cpu_count()} cores")
    record_run("train", {"interactions": rows["interactions"], "rows_read": rows["watches"] + rows["ratings"],
                         "films": rows["films_modelled"], "fit_seconds": manifest["fit_seconds"],
                         "wall_seconds": round(wall, 1), "peak_rss_mb": round(peak_mb)},
               notes="PostgreSQL, ML-1M ratings as stream rows, `movierec train --no-warm-start --no-eval`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
