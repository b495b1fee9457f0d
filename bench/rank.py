"""Ranking cost per user of the learned ranker next to popularity and blend, on real ML-1M histories.

    python bench/rank.py [--users 600] [--data-dir DIR]

The ranker is fitted on the offline protocol's training part (as `eval offline` does); each strategy
then ranks the same profiles (odd users, history = all but their last 10 ratings, the protocol's
candidates) twice, one BLAS thread. Wall and CPU time per user are printed and recorded: on a shared
machine wall time grows with the load, CPU time much less.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from inference.evaluation import temporal_split
from inference.offline_eval import _histories, evaluation_catalogue
from inference.ranking import rank_blend, rank_popularity
from inference.recommender import build_profile
from inference.reference import fit_reference
from movierec.base.benchlog import record_run
from movierec.base.scratch import test_data_dir
from vectordb_scripts.catalog_io import load_catalog, load_ml1m_ratings
from vectordb_scripts.table import load_table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--data-dir", type=Path, default=None, help="real data dir (default: the tests')")
    args = parser.parse_args()
    data_dir = args.data_dir or test_data_dir()
    table = load_table(data_dir / "index" / "neighbours.npz")
    ratings = load_ml1m_ratings(data_dir)
    train, _ = temporal_split(ratings, 10)
    allowed = np.zeros(len(table), dtype=bool)
    allowed[ratings["movie_id"].map(table.row_of).unique().astype(int)] = True
    catalogue = evaluation_catalogue(table, load_catalog(data_dir), allowed)
    users = range(1, 2 * args.users, 2)
    profiles = [build_profile(table, h) for h in _histories(train[train["user_id"].isin(users)]).values()]
    strategies = {"popularity": rank_popularity, "blend": rank_blend, "ranker": fit_reference("ranker", train, table)}
    figures: dict[str, float] = {}
    with threadpool_limits(1):
        for name, rank in list(strategies.items()) * 2:  # the second pass is the one recorded (warm caches)
            wall, cpu = time.perf_counter(), time.process_time()
            for profile in profiles:
                rank(profile, catalogue, 20)
            figures[f"{name}_wall_ms"] = round((time.perf_counter() - wall) / len(profiles) * 1000, 3)
            figures[f"{name}_cpu_ms"] = round((time.process_time() - cpu) / len(profiles) * 1000, 3)
    load = os.getloadavg()[0]
    for name in strategies:
        print(f"{name:10s} wall {figures[name + '_wall_ms']:.3f} ms/user  cpu {figures[name + '_cpu_ms']:.3f} ms/user")
    print(f"{len(profiles)} users, load average {load:.1f} on {os.cpu_count()} cores")
    record_run("rank", {"users": len(profiles), **figures},
               notes="Per-user ranking cost (strategy call only), one BLAS thread, real ML-1M histories.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
