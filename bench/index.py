"""Full vector-index build of the real catalogue into a fresh data dir: films/s and wall time.

    python bench/index.py [--data-dir DIR (default: the tests' data dir)] [--films N]

Copies the built catalogue (and its ML-1M ratings) from the data dir into a temporary one, then
embeds every film with all-MiniLM-L6-v2 into a new ChromaDB collection and writes the neighbour
table, as `movierec index build` does on a first run. Goal: under 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
from pathlib import Path

from movierec.base.benchlog import record_run
from movierec.base.scratch import test_data_dir
from vectordb_scripts.catalog_io import load_catalog
from vectordb_scripts.index import IndexSettings, build_index, load_ml1m_ratings_if_any


def main() -> int:
    default = test_data_dir()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default, help="a data dir with a built catalogue")
    parser.add_argument("--films", type=int, default=0, help="only the first N films (0 = all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        data_dir = Path(tmp)
        shutil.copytree(args.data_dir / "catalog", data_dir / "catalog")
        catalog = load_catalog(data_dir)
        if args.films:
            catalog = catalog.head(args.films)
        settings = IndexSettings.from_env({**os.environ, "MOVIEREC_DATA_DIR": str(data_dir), "CHROMA_URL": ""})
        report = build_index(catalog, settings, ratings=load_ml1m_ratings_if_any(data_dir), progress=False)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(report.summary())
    print(f"films {report.films:,}; embedded {report.embedded:,} in {report.embed_seconds:.0f} s = "
          f"{report.films_per_second:.1f} films/s; wall {report.wall_seconds:.0f} s; peak RSS {peak_mb:.0f} MB; "
          f"load average {os.getloadavg()[0]:.2f}")
    record_run("index", {"films": report.films, "embedded": report.embedded,
                         "films_per_second": round(report.films_per_second, 1),
                         "embed_seconds": round(report.embed_seconds), "wall_seconds": round(report.wall_seconds),
                         "chroma_recall_at_20": report.chroma_recall, "peak_rss_mb": round(peak_mb)},
               notes="Full first build (every film embedded). Goal: under 3 minutes on 2 cores.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
