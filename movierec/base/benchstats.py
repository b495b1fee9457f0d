"""Comparing two latency samples taken in interleaved segments (bench/lb.py: direct vs. through the router).

A shared 2-core VM has slow periods in which every process on it is slower. Two long runs one after the
other compare whichever periods they happened to fall in; many short segments, direct and routed in
random order within each pair, spread the slow periods over both arms alike. The estimate stays the
difference of the pooled percentiles (what a user of either path sees); the pairs give its uncertainty
(a bootstrap over pairs: resampling pairs keeps each slow period on both arms together) and a second,
robust view (the median of the per-pair differences).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairedDifference:
    """What arm B adds to arm A at percentile `q` (ms)."""

    q: float
    pooled_a_ms: float
    pooled_b_ms: float
    added_ms: float            # pooled percentile of B minus that of A: the headline estimate
    ci_low_ms: float           # 95 % bootstrap interval of `added_ms`, resampling whole pairs
    ci_high_ms: float
    median_pair_added_ms: float  # median over pairs of (percentile of B's segment - that of A's)
    pairs: int

    def verdict(self, goal_ms: float) -> str:
        """"met" when the whole 95 % interval is within the goal, "missed" when all of it is above,
        else "undecided" (the run cannot tell: more or quieter pairs needed)."""
        if self.ci_high_ms <= goal_ms:
            return "met"
        if self.ci_low_ms > goal_ms:
            return "missed"
        return "undecided"


def paired_percentile_difference(a_segments: Sequence[Sequence[float]], b_segments: Sequence[Sequence[float]],
                                 q: float = 99.0, resamples: int = 2000, seed: int = 0) -> PairedDifference:
    """The difference of pooled percentiles of two arms measured in pairs of segments (latencies in ms).

    `a_segments[i]` and `b_segments[i]` are the latencies of pair i's two segments. Raises ValueError on
    no pairs, unequal pair counts or an empty segment.
    """
    if not a_segments or len(a_segments) != len(b_segments):
        raise ValueError(f"need the same number (>= 1) of segments per arm, got {len(a_segments)} "
                         f"and {len(b_segments)}")
    a = [np.asarray(s, dtype=float) for s in a_segments]
    b = [np.asarray(s, dtype=float) for s in b_segments]
    if any(s.size == 0 for s in (*a, *b)):
        raise ValueError("every segment needs at least one latency")
    pooled_a = float(np.percentile(np.concatenate(a), q))
    pooled_b = float(np.percentile(np.concatenate(b), q))
    rng = np.random.default_rng(seed)
    n = len(a)
    estimates = np.empty(resamples)
    for r in range(resamples):
        chosen = rng.integers(0, n, n)
        estimates[r] = (np.percentile(np.concatenate([b[i] for i in chosen]), q)
                        - np.percentile(np.concatenate([a[i] for i in chosen]), q))
    low, high = np.percentile(estimates, [2.5, 97.5])
    per_pair = [float(np.percentile(bs, q) - np.percentile(as_, q)) for as_, bs in zip(a, b, strict=True)]
    return PairedDifference(q=q, pooled_a_ms=pooled_a, pooled_b_ms=pooled_b, added_ms=pooled_b - pooled_a,
                            ci_low_ms=float(low), ci_high_ms=float(high),
                            median_pair_added_ms=float(np.median(per_pair)), pairs=n)
