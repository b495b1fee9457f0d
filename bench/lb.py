"""Router overhead: latency added by `movierec lb` over calling `movierec inference` directly.

    python bench/lb.py --rate 300 --seconds 10 --synthetic-films 27000

Starts the real inference service (gunicorn) on a synthetic neighbour table of N films (or the
built index with `--data-dir`), users with histories in a fresh PostgreSQL schema (both from
bench/recommend.py), and the real router (gunicorn, `--router-workers`) in front of it. A separate
load-generating process sends open-loop GET /recommend/<user> at `--rate` req/s over keep-alive
connections, alternating direct and routed runs; latency counts from each request's scheduled time.
Prints p50/p99 for both and the difference (goal: <= 3 ms added at p99 at 300 req/s).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from db_utils.engine import upgrade_database
from movierec.base.benchlog import record_run
from movierec.base.ports import free_port, wait_for_port
from movierec.base.scratch import postgres_schema_url

_spec = importlib.util.spec_from_file_location("bench_recommend", Path(__file__).with_name("recommend.py"))
recommend = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = recommend  # its dataclasses look their module up while it loads
_spec.loader.exec_module(recommend)  # type: ignore[union-attr]


def _load(port: int, users: list[int], rate: float, seconds: float, out: multiprocessing.Queue) -> None:
    latencies, errors, elapsed = asyncio.run(recommend.run_rate(port, users, rate, seconds, connections=32))
    out.put((latencies, errors, elapsed))


def load_from_another_process(port: int, users: list[int], rate: float, seconds: float
                              ) -> tuple[list[float], int, float]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_load, args=(port, users, rate, seconds, queue))
    process.start()
    result = queue.get(timeout=seconds + 120)
    process.join(timeout=30)
    return result


def start(argv: list[str], env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "movierec.cli", *argv], env=env, stdout=open(log_path, "wb"),  # noqa: SIM115
                               stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port("127.0.0.1", port, timeout_seconds=60)
    return process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="data dir with a built index")
    parser.add_argument("--synthetic-films", type=int, default=27000, help="random table of N films (no --data-dir)")
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each run")
    parser.add_argument("--rounds", type=int, default=2, help="direct/routed pairs")
    parser.add_argument("--workers", type=int, default=2, help="inference workers")
    parser.add_argument("--router-workers", type=int, default=2)
    parser.add_argument("--router-threads", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-lb-") as tmp, postgres_schema_url() as url:
        tmp_path = Path(tmp)
        if args.data_dir:
            data_dir = args.data_dir.resolve()
        else:
            data_dir = tmp_path / "var"
            recommend.save_table(data_dir / "index" / recommend.NEIGHBOURS_FILE,
                                 recommend.synthetic_table(args.synthetic_films))
        table = recommend.load_table(data_dir / "index" / recommend.NEIGHBOURS_FILE)
        upgrade_database(url)
        users = [u for size in recommend.HISTORY_SIZES[:3] for u in recommend.seed_users(url, table.ids)[size]]
        env = {**os.environ, "MOVIEREC_DATA_DIR": str(data_dir), "DATABASE_URL": url, "CHROMA_URL": "",
               "LOG_LEVEL": "WARNING"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        inference_port, router_port = free_port(), free_port()
        processes = [start(["inference", "--port", str(inference_port), "--workers", str(args.workers),
                            "--strategy", "blend"], env, inference_port, tmp_path / "inference.log")]
        router_env = {**env, "LB_MAIN_URL": f"http://127.0.0.1:{inference_port}", "LB_NIGHTLY_URL": "",
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'router.db'}"}
        upgrade_database(router_env["DATABASE_URL"])
        processes.append(start(["lb", "--port", str(router_port), "--workers", str(args.router_workers),
                                "--threads", str(args.router_threads)], router_env, router_port,
                               tmp_path / "router.log"))
        print(f"{len(table)} films; inference {args.workers} workers; router {args.router_workers} workers x "
              f"{args.router_threads} threads; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
        try:
            for port in (inference_port, router_port):  # warm up both paths
                asyncio.run(recommend.warm_up(port, users))
            results: dict[str, list[float]] = {"direct": [], "router": []}
            errors = {"direct": 0, "router": 0}
            for _ in range(args.rounds):
                for name, port in (("direct", inference_port), ("router", router_port)):
                    latencies, failed, elapsed = load_from_another_process(port, users, args.rate, args.seconds)
                    results[name] += latencies
                    errors[name] += failed
                    print(f"  {name:6s} run: {len(latencies) / elapsed:.0f} req/s, "
                          f"p99 {np.percentile(np.array(latencies) * 1000, 99):.2f} ms", flush=True)
                    time.sleep(1)
            print(f"{'path':8s} {'requests':>9s} {'p50 ms':>8s} {'p90 ms':>8s} {'p99 ms':>8s} {'errors':>7s}")
            pct = {}
            for name, latencies in results.items():
                ms = np.array(latencies) * 1000.0
                pct[name] = [np.percentile(ms, q) for q in (50, 90, 99)]
                print(f"{name:8s} {len(ms):>9d} {pct[name][0]:>8.2f} {pct[name][1]:>8.2f} {pct[name][2]:>8.2f} "
                      f"{errors[name]:>7d}")
            added = [r - d for r, d in zip(pct["router"], pct["direct"], strict=True)]
            print(f"{'added':8s} {'':>9s} {added[0]:>8.2f} {added[1]:>8.2f} {added[2]:>8.2f}   (goal p99 <= 3 ms)")
            rows = [{"scenario": name, "requests": len(results[name]), "p50_ms": round(float(pct[name][0]), 2),
                     "p90_ms": round(float(pct[name][1]), 2), "p99_ms": round(float(pct[name][2]), 2),
                     "errors": errors[name]} for name in results]
            record_run("lb", {"rate_rps": args.rate, "films": len(table), "added_p50_ms": round(float(added[0]), 2),
                              "added_p99_ms": round(float(added[2]), 2), "table": rows},
                       notes="Router overhead: the same load sent directly to inference and through the router. "
                             "Goal <= 3 ms added at p99.")
        finally:
            for process in reversed(processes):
                process.terminate()
                process.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
