"""Simulator throughput and memory: lines/s to a file and to the broker, peak RSS at 1M users.

    python bench/simulate.py --events 300000 --users 1000000 [--data-dir DIR]

Each run is `movierec simulate` as a subprocess (the real CLI, the real taste model fitted on ML-1M
from the data dir, cached after the first fit), at `--speed 0` (no pacing) and no rate limit, with
`--recommend-fraction 0` (no inference service in the loop: this measures the simulator itself).
The broker run starts Tansu with movierec.base.broker.start_broker. Lines/s come from the run's own
summary (model loading excluded, final Kafka flush included); peak RSS from the child's rusage.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from movierec.base.benchlog import record_run
from movierec.base.broker import start_broker
from movierec.base.scratch import test_data_dir
from movierec.base.settings import CommonSettings

RSS_LIMIT_MB = 1024


def run_simulator(args: argparse.Namespace, output: str, env: dict[str, str]) -> tuple[dict, float, float]:
    """One CLI run; returns (summary, wall seconds incl. start-up, peak RSS in MB)."""
    command = [str(Path(sys.executable).parent / "movierec"), "simulate", "--users", str(args.users),
               "--speed", "0", "--max-events", str(args.events), "--recommend-fraction", "0",
               "--metrics-port", "0", "--seed", "1", "--start", "2024-01-01T00:00:00",
               "--data-dir", str(args.data_dir), "--output", output]
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True,
                                   env={**os.environ, **env, "LOG_LEVEL": "WARNING"})
        # wait4 reaps this child alone and gives its own peak RSS (ru_maxrss, KiB on Linux).
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise SystemExit(f"simulator failed ({process.returncode}):\n{stderr}")
    peak_mb = usage.ru_maxrss / 1024
    return json.loads(stdout), wall, peak_mb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data dir with the built catalogue (default: the tests' data dir)")
    args = parser.parse_args()
    if args.data_dir is None:
        test_data = test_data_dir()
        args.data_dir = test_data if (test_data / "catalog").is_dir() else CommonSettings.from_env().data_dir

    print(f"simulator benchmark: {args.users:,} users, {args.events:,} lines per run, data {args.data_dir}")
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        summary, wall, peak = run_simulator(args, f"file:{Path(tmp) / 'stream.txt'}", {})
        size_mb = (Path(tmp) / "stream.txt").stat().st_size / 1e6
        file_rate = summary["events_per_second"]
        print(f"file:   {summary['events_per_second']:>9,.0f} lines/s  ({summary['events_total']:,} lines, "
              f"{size_mb:.0f} MB, {summary['sessions']:,} sessions, {summary['active_sessions']:,} active at the end, "
              f"{wall:.1f} s wall incl. start-up)  peak RSS {peak:.0f} MB")

    broker = start_broker()
    try:
        env = {"KAFKA_BOOTSTRAP": broker.bootstrap, "KAFKA_TOPIC": "movielog-bench"}
        summary, wall, peak_kafka = run_simulator(args, "kafka", env)
        print(f"broker: {summary['events_per_second']:>9,.0f} lines/s  ({summary['events_total']:,} lines to Tansu "
              f"{broker.bootstrap}, {wall:.1f} s wall incl. start-up)  peak RSS {peak_kafka:.0f} MB")
    finally:
        broker.stop()
    worst = max(peak, peak_kafka)
    verdict = "OK" if worst < RSS_LIMIT_MB else "OVER"
    print(f"peak RSS at {args.users:,} users: {worst:.0f} MB (limit {RSS_LIMIT_MB} MB: {verdict})")
    record_run("simulate", {"users": args.users, "lines_per_run": args.events,
                            "file_lines_per_second": round(file_rate), "broker_lines_per_second":
                            round(summary["events_per_second"]), "peak_rss_mb": round(worst)},
               notes=f"Simulator alone (no recommendation calls, no pacing). RSS limit {RSS_LIMIT_MB} MB.")
    return 0 if worst < RSS_LIMIT_MB else 1


if __name__ == "__main__":
    sys.exit(main())
