"""What one Prometheus observation costs in gunicorn's multiprocess mode (file-backed mmap values).

    python bench/metrics.py --observations 200000

Runs in a fresh process with PROMETHEUS_MULTIPROC_DIR set before prometheus-client is imported (as
movierec.base.serving does for every service), and times, in CPU microseconds per call: a histogram
observation and a counter increment through `labels(...)` and on a child looked up once (what the
request path now does: movierec.base.metrics.instrument_flask, inference.service), plus the same in
single-process mode for comparison. A request makes two histogram observations and two counter
increments.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from movierec.base.benchlog import record_run

CHILD = r"""
import json, os, sys, time
from prometheus_client import Counter, Histogram
from movierec.base.metrics import LATENCY_BUCKETS_SECONDS
n = int(sys.argv[1])
histogram = Histogram("bench_seconds", "h", ["service", "endpoint"], buckets=LATENCY_BUCKETS_SECONDS)
counter = Counter("bench_total", "c", ["service", "endpoint", "method", "status"])
def per_call(action):
    action()
    started = time.process_time()
    for _ in range(n):
        action()
    return (time.process_time() - started) / n * 1e6
child_h = histogram.labels("inference", "/recommend/<id>")
child_c = counter.labels("inference", "/recommend/<id>", "GET", "200")
print(json.dumps({
    "histogram_labels_observe_us": per_call(lambda: histogram.labels("inference", "/recommend/<id>").observe(0.003)),
    "histogram_child_observe_us": per_call(lambda: child_h.observe(0.003)),
    "counter_labels_inc_us": per_call(lambda: counter.labels("inference", "/recommend/<id>", "GET", "200").inc()),
    "counter_child_inc_us": per_call(lambda: child_c.inc()),
}))
"""


def measure(observations: int, multiprocess: bool) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        if multiprocess:
            env["PROMETHEUS_MULTIPROC_DIR"] = tmp
        out = subprocess.run([sys.executable, "-c", CHILD, str(observations)], env=env, check=True,
                             capture_output=True, text=True).stdout
    return {k: round(v, 2) for k, v in json.loads(out).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--observations", type=int, default=200_000)
    args = parser.parse_args()
    started = time.monotonic()
    rows = [{"mode": mode, **measure(args.observations, mode == "multiprocess")}
            for mode in ("multiprocess", "single process")]
    for row in rows:
        print(row)
    per_request = rows[0]["histogram_child_observe_us"] * 2 + rows[0]["counter_child_inc_us"] * 2
    print(f"per request (2 observations + 2 increments on children, multiprocess): {per_request:.1f} us CPU")
    record_run("metrics", {"observations": args.observations, "per_request_us": round(per_request, 1),
                           "seconds": round(time.monotonic() - started, 1), "table": rows},
               notes="CPU microseconds per call of prometheus-client; multiprocess = PROMETHEUS_MULTIPROC_DIR set "
                     "(values in file-backed mmaps, as under gunicorn).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
