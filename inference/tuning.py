"""Choose the `blend` weights on the tuning users (even ML-1M user ids), never on the reported ones.

    python -m inference.tuning --data-dir ~/.cache/movierec/test-data --max-users 1500

Coordinate search: starting from the current defaults, each weight is varied alone over a few
values, the best value is kept, and the next weight is varied. Prints HR@20/NDCG@20 per variant.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TypeVar

from inference.offline_eval import EvalConfig, evaluate
from inference.ranking import BlendParams, rank_blend
from vectordb_scripts.catalog_io import load_catalog, load_ml1m_ratings
from vectordb_scripts.table import load_table

# Pass 1 (from content 0.35, half-life 20) chose content 1.0, popularity 0.02, slope 0.15, half-life 5
# (HR@20 0.680 -> 0.736; half-life was the big lever). Pass 2, this grid, chose half-life 2-3, content 0.5;
# popularity 0-0.02 and slope 0.15-0.3 tie. Kept: half-life 3 (best NDCG), content 0.5, popularity 0.02
# (a tie offline, it orders films the co-rating signal does not reach), slope 0.15: HR@20 0.749 on 1500
# even users (item-kNN 0.567).
GRID: dict[str, list[float]] = {
    "recency_half_life": [2.0, 3.0, 5.0, 8.0],
    "content_weight": [0.5, 1.0, 2.0, 4.0],
    "popularity_weight": [0.0, 0.02, 0.05],
    "rating_slope": [0.0, 0.15, 0.3],
}


P = TypeVar("P")


def coordinate_search(start: P, grid: Mapping[str, Sequence[float]],
                      score: Callable[[dict[str, P]], Mapping[str, tuple[float, float]]],
                      names: Sequence[str] | None = None, width: int = 28) -> P:
    """Vary one parameter of the dataclass `start` at a time over `grid`, keep the best variant by
    (HR@20, NDCG@20) as `score` returns them for each label, then vary the next parameter."""
    best = start
    for name in names or list(grid):
        variants = {f"{name}={v}": replace(best, **{name: v}) for v in grid[name]}  # type: ignore[type-var]
        scores = score(variants)
        for label in variants:
            print(f"{label:{width}s} HR@20 {scores[label][0]:.4f} NDCG@20 {scores[label][1]:.4f}", flush=True)
        chosen = max(variants, key=lambda label: scores[label])
        best = variants[chosen]
        print(f"-> {chosen}", flush=True)
    print("best:", asdict(best))  # type: ignore[call-overload]
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--max-users", type=int, default=1500)
    args = parser.parse_args()
    table = load_table(args.data_dir / "index" / "neighbours.npz")
    ratings, catalog = load_ml1m_ratings(args.data_dir), load_catalog(args.data_dir)
    config = EvalConfig(["itemknn"], users="even", max_users=args.max_users)

    def score(variants: dict[str, BlendParams]) -> dict[str, tuple[float, float]]:
        extra = {label: functools.partial(rank_blend, params=p) for label, p in variants.items()}
        result = evaluate(table, ratings, config, catalog, extra=extra)
        print(f"(itemknn HR@20 {result.scores['itemknn'].hit_rate:.4f})", flush=True)
        return {label: (result.scores[label].hit_rate, result.scores[label].ndcg) for label in variants}

    coordinate_search(BlendParams(), GRID, score)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
