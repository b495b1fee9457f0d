"""`movierec up` start times: the first start of a data dir and the no-change starts after it.

    python bench/up.py [--data-dir DIR] [--runs 3]

Seeds a fresh data dir (default: a temp dir) with the real catalogue, vector index and taste model
of the test data (`movierec.base.scratch.test_data_dir()`), then runs `movierec up --detach` (it returns
when every service is healthy) and `movierec down`, once for the first start (the preparation runs
and writes its stamp) and `--runs` times more with nothing changed (the stamp check skips the
preparation). Services get free ports, so the machine's other servers are not disturbed.
Prints and records the wall time of each `up --detach` and the stamp check's own time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from movierec.base.benchlog import record_run
from movierec.base.ports import free_port
from movierec.base.scratch import test_data_dir

COPIED = ("raw", "catalog", "chroma", "index", "simulator")
PORTS = ("UP_KAFKA_PORT", "PARSER_METRICS_PORT", "UP_MAIN_PORT", "UP_NIGHTLY_PORT", "UP_ROUTER_PORT",
         "SIM_METRICS_PORT", "UP_DASHBOARD_PORT", "UP_PROMETHEUS_PORT", "UP_ALERTMANAGER_PORT",
         "UP_SUPERVISOR_METRICS_PORT")


def movierec(env: dict[str, str], *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "movierec.cli", *args], env=env, capture_output=True, text=True,
                            timeout=1800)
    return time.perf_counter() - started, result


def stamp_check_seconds(log: Path) -> float | None:
    found = re.findall(r"unchanged \(stamp checked in ([0-9.]+)s\)", log.read_text(errors="replace"))
    return float(found[-1]) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="seeded when it has no catalogue")
    parser.add_argument("--runs", type=int, default=3, help="no-change starts after the first")
    args = parser.parse_args()
    data_dir = (args.data_dir or Path(tempfile.mkdtemp(prefix="movierec-bench-up-")) / "var").resolve()
    if not (data_dir / "catalog").is_dir():
        source = test_data_dir()
        data_dir.mkdir(parents=True, exist_ok=True)
        for name in COPIED:
            if (source / name).exists():
                shutil.copytree(source / name, data_dir / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UP_", "LB_", "SIM_", "PARSER_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update({name: str(free_port()) for name in PORTS})
    env.update({"MOVIEREC_DATA_DIR": str(data_dir), "DATABASE_URL": "", "UP_SIMULATOR_USERS": "20000"})
    log = data_dir / "logs" / "supervisor.log"
    rows = []
    for run in range(args.runs + 1):
        label = "first start (preparation runs)" if run == 0 else f"no-change start {run}"
        seconds, result = movierec(env, "up", "--detach")
        if result.returncode != 0:
            print(result.stdout, result.stderr, log.read_text(errors="replace")[-3000:], sep="\n")
            raise SystemExit(f"{label}: movierec up failed ({result.returncode})")
        check = stamp_check_seconds(log) if run else None
        down_seconds, _ = movierec(env, "down")
        print(f"{label:<34}{seconds:>8.1f} s to ready" + (f"  (stamp check {check:.2f} s)" if check else "")
              + f"   down {down_seconds:.1f} s")
        rows.append({"scenario": label, "seconds": round(seconds, 1), "stamp_check_seconds": check,
                     "down_seconds": round(down_seconds, 1)})
    later = [r["seconds"] for r in rows[1:]]
    median = statistics.median(later) if later else None
    print(f"median no-change start: {median:.1f} s")
    load1, _, _ = os.getloadavg()
    record_run("up", {"first_start_seconds": rows[0]["seconds"], "no_change_start_median_seconds": median,
                      "table": rows},
               notes="Wall time of `movierec up --detach` until every service is healthy, on a data dir seeded "
                     f"with the real catalogue and index (simulator and monitoring included); load {load1:.1f} "
                     "at the end.")


if __name__ == "__main__":
    main()
