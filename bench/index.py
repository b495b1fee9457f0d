"""Full vector-index build of the real catalogue into a fresh data dir: time, CPU seconds, recall against fp32.

    python bench/index.py [--data-dir DIR (default: the tests' data dir)] [--films N]
                          [--precision bf16|fp32 (default: INDEX_PRECISION, auto)]
                          [--reference TABLE | --fp32-too]

Copies the built catalogue (and its ML-1M ratings) from the data dir into a temporary one, then
embeds every film with all-MiniLM-L6-v2 into a new ChromaDB collection and writes the neighbour
table, as `movierec index build` does on a first run. Goal: under 2 minutes on 2 cores.

Quality: recall@20 of the built neighbour table against a table built by the fp32 model. The reference
is `--reference TABLE`, else the data dir's own `index/neighbours.npz` when the fp32 model built it for
the same films; otherwise (and always with `--fp32-too`) the fp32 build runs here as well, timed beside.
Each row gives wall and CPU seconds (process time, less sensitive to other work on the machine) and the
1-minute load average before and after it.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from movierec.base.benchlog import record_run
from movierec.base.scratch import test_data_dir
from vectordb_scripts.catalog_io import load_catalog
from vectordb_scripts.embed import model_id
from vectordb_scripts.index import CONTENT_K, IndexSettings, build_index, load_ml1m_ratings_if_any
from vectordb_scripts.neighbours import table_recall
from vectordb_scripts.table import IndexFormatError, IndexMissing, NeighbourTable, load_table


def build(source: Path, films: int, precision: str) -> tuple[dict[str, Any], NeighbourTable]:
    """One first build into a fresh temporary data dir: its figures and the neighbour table it wrote."""
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        data_dir = Path(tmp)
        shutil.copytree(source / "catalog", data_dir / "catalog")
        catalog = load_catalog(data_dir)
        if films:
            catalog = catalog.head(films)
        ratings = load_ml1m_ratings_if_any(data_dir)
        settings = IndexSettings.from_env({**os.environ, "MOVIEREC_DATA_DIR": str(data_dir), "CHROMA_URL": "",
                                           "INDEX_PRECISION": precision})
        load_before = os.getloadavg()[0]
        cpu0 = time.process_time()
        report = build_index(catalog, settings, ratings=ratings, progress=False)
        cpu = time.process_time() - cpu0
        table = load_table(settings.table_path)
    row = {"precision": precision, "films": report.films, "wall_s": round(report.wall_seconds, 1),
           "cpu_s": round(cpu, 1), "embed_s": round(report.embed_seconds, 1),
           "films_per_s": round(report.films_per_second, 1), "load_1m_before": round(load_before, 2),
           "load_1m_after": round(os.getloadavg()[0], 2), "chroma_recall_at_20": report.chroma_recall}
    print(report.summary())
    print(f"  {precision}: wall {row['wall_s']} s, CPU {row['cpu_s']} s, "
          f"load average {row['load_1m_before']} -> {row['load_1m_after']}", flush=True)
    return row, table


def stored_reference(path: Path, ids: tuple[str, ...]) -> NeighbourTable | None:
    """The table at `path` if the fp32 model built it for (at least) these films, else None."""
    try:
        table = load_table(path)
    except (IndexMissing, IndexFormatError, OSError):
        return None
    fp32 = model_id(None, "fp32")
    if table.model != fp32 or set(ids) != set(table.ids):
        print(f"reference {path}: not an fp32 table of the same films (model {table.model!r}); building one")
        return None
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=test_data_dir(), help="a data dir with a built catalogue")
    parser.add_argument("--films", type=int, default=0, help="only the first N films (0 = all)")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default=None,
                        help="model weights (default: INDEX_PRECISION; auto: bf16 on CPUs with bfloat16 units)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="an fp32 neighbour table (default: <data-dir>/index/neighbours.npz if fp32 built it)")
    parser.add_argument("--fp32-too", action="store_true", help="also build (and time) the fp32 reference here")
    parser.add_argument("--record-as", default="index", help="name of the run in reports/runs/ (another machine)")
    args = parser.parse_args()
    precision = args.precision or IndexSettings.from_env({**os.environ}).precision
    row, table = build(args.data_dir, args.films, precision)
    rows = [row]
    reference = None
    if precision != "fp32" and not args.fp32_too:
        reference = stored_reference(args.reference or args.data_dir / "index" / "neighbours.npz", table.ids)
    if precision == "fp32":
        reference = table
    elif reference is None:
        fp32_row, reference = build(args.data_dir, args.films, "fp32")
        fp32_row["recall_at_20_vs_fp32"] = 1.0
        rows.append(fp32_row)
    recall = table_recall(reference.ids, reference.content_idx, table.ids, table.content_idx)
    row["recall_at_20_vs_fp32"] = None if recall is None else round(recall, 4)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"recall@{CONTENT_K} of the {precision} neighbour table against fp32: {row['recall_at_20_vs_fp32']}; "
          f"peak RSS {peak_mb:.0f} MB")
    record_run(args.record_as, {"films": row["films"], "precision": precision, "wall_seconds": row["wall_s"],
                                "cpu_seconds": row["cpu_s"], "embed_seconds": row["embed_s"],
                                "films_per_second": row["films_per_s"],
                                "recall_at_20_vs_fp32": row["recall_at_20_vs_fp32"],
                                "chroma_recall_at_20": row["chroma_recall_at_20"], "peak_rss_mb": round(peak_mb),
                                "table": rows},
               notes="First build (every film embedded) with the default precision; goal: under 2 minutes on "
                     "2 cores with recall@20 against the fp32 model's neighbour table >= 0.95. The load "
                     "columns are the 1-minute load average before and after each build (other work shares "
                     "the machine).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
