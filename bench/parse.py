"""Parser and batch aggregation speed on realistic lines (no broker, no database).

    python bench/parse.py --lines 300000

Prints CPU microseconds per line for `parse_line` (typed events), `parse_line_fast` (the
consumer's path) and `Batch.add_records` (parse + fold into rows), and the rows() conversion.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from dataclasses import dataclass

from ingest import realistic_lines

from data_parsing.batch import Batch
from data_parsing.consumer import GC_THRESHOLDS
from data_parsing.parser import parse_line, parse_line_fast


@dataclass(slots=True)
class Message:
    offset: int
    value: bytes


def cpu_us_per_line(work, count: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=300_000)
    args = parser.parse_args(argv)
    lines = [line.encode() for line in realistic_lines(args.lines)]
    messages = [Message(offset, value) for offset, value in enumerate(lines)]
    gc.set_threshold(*GC_THRESHOLDS)

    def parse_all() -> None:
        for line in lines:
            parse_line(line)

    def parse_fast_all() -> None:
        for line in lines:
            parse_line_fast(line)

    batches: list[Batch] = []

    def fold_all() -> None:
        batch = Batch()
        for start in range(0, len(messages), 10_000):
            batch.add_records("movielog", 0, messages[start:start + 10_000])
        batches.append(batch)

    print(f"lines               {len(lines):,} ({sum(map(len, lines)) / len(lines):.0f} bytes on average)")
    print(f"parse_line          {cpu_us_per_line(parse_all, len(lines)):.2f} us/line (typed events)")
    print(f"parse_line_fast     {cpu_us_per_line(parse_fast_all, len(lines)):.2f} us/line (consumer path)")
    print(f"Batch.add_records   {cpu_us_per_line(fold_all, len(lines)):.2f} us/line (parse + fold)")
    started = time.process_time()
    rows = batches[-1].rows()
    print(f"Batch.rows()        {(time.process_time() - started) * 1e3:.0f} ms for {len(rows.watches):,} watch, "
          f"{len(rows.ratings):,} rating, {len(rows.recommendations):,} recommendation rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
