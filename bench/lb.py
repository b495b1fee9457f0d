"""Router overhead and the end-to-end path: `movierec lb` in front of `movierec inference`.

    python bench/lb.py --data-dir ~/.cache/movierec/test-data --rate 300 --e2e-rate 600 --seconds 10

Starts the real inference service (gunicorn) on the built index (`--data-dir`) or a synthetic
neighbour table of N films, users with histories in a fresh PostgreSQL schema (both from
bench/recommend.py), and the real router (gunicorn) in front of it. A separate load-generating
process sends open-loop GET /recommend/<user> over keep-alive connections; latency counts from each
request's scheduled time (no coordinated omission).
1. Overhead: at `--rate` req/s (users with 1, 10 and 50 films), `--pairs` pairs of short segments
   (`--pair-seconds`), direct and routed in random order within each pair, so that the VM's slow
   periods fall on both arms alike. What the router adds is the difference of the pooled percentiles
   (goal: p99 <= 2 ms at 300 req/s), with a 95 % bootstrap interval over pairs and the median of the
   per-pair differences beside it (movierec.base.benchstats).
2. End to end: `--e2e-rate` req/s through the router for users with `--e2e-size` watched films
   (goal: p99 <= 25 ms at 600 req/s for 50-film users).
Each run also reports the CPU time per request of the router, inference, PostgreSQL and the load
generator (the four share the machine's cores), and the load average while it ran.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from db_utils.engine import upgrade_database
from movierec.base.benchlog import record_run
from movierec.base.benchstats import paired_percentile_difference
from movierec.base.ports import free_port, wait_for_port
from movierec.base.scratch import postgres_schema_url

_spec = importlib.util.spec_from_file_location("bench_recommend", Path(__file__).with_name("recommend.py"))
recommend = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = recommend  # its dataclasses look their module up while it loads
_spec.loader.exec_module(recommend)  # type: ignore[union-attr]

ADDED_P99_GOAL_MS = 2.0
E2E_P99_GOAL_MS = 25.0


def _serve_loads(connection: Any) -> None:
    """The load-generating process: runs each (port, users, rate, seconds) it is sent, until None."""
    while (job := connection.recv()) is not None:
        port, users, rate, seconds = job
        started = time.process_time()
        latencies, errors, elapsed = asyncio.run(recommend.run_rate(port, users, rate, seconds, connections=32))
        connection.send((latencies, errors, elapsed, time.process_time() - started))


class LoadGenerator:
    """One separate process that sends the open-loop runs (its imports and start-up paid once)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve_loads, args=(child,), daemon=True)
        self._process.start()

    def run(self, port: int, users: list[int], rate: float, seconds: float) -> tuple[list[float], int, float, float]:
        """(latencies, errors, elapsed, the load generator's own CPU seconds) of one open-loop run."""
        self._connection.send((port, users, rate, seconds))
        if not self._connection.poll(seconds + 120):
            raise TimeoutError(f"the load generator did not finish a {seconds} s run")
        return self._connection.recv()

    def close(self) -> None:
        self._connection.send(None)
        self._process.join(timeout=30)


def start(argv: list[str], env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "movierec.cli", *argv], env=env, stdout=open(log_path, "wb"),  # noqa: SIM115
                               stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port("127.0.0.1", port, timeout_seconds=90)
    return process


@dataclass
class Segment:
    """One open-loop run: latencies (s) and the CPU seconds every party spent meanwhile."""

    latencies: list[float]
    errors: int
    elapsed: float
    cpu_seconds: dict[str, float]


def measure(loadgen: LoadGenerator, port: int, users: list[int], rate: float, seconds: float,
            parties: dict[str, list[Any]]) -> Segment:
    before = {k: recommend.cpu_seconds(v) for k, v in parties.items()}
    latencies, errors, elapsed, loadgen_cpu = loadgen.run(port, users, rate, seconds)
    spent = {k: recommend.cpu_seconds(v) - before[k] for k, v in parties.items()}
    return Segment(latencies, errors, elapsed, {**spent, "loadgen": loadgen_cpu})


def summarise(name: str, rate: float, segments: list[Segment]) -> dict[str, Any]:
    """One table row for the segments of one arm: pooled percentiles and CPU per request of every party."""
    latencies = [x for segment in segments for x in segment.latencies]
    served = max(len(latencies), 1)
    ms = np.array(latencies) * 1000.0
    row: dict[str, Any] = {"scenario": name, "rate": rate, "requests": len(latencies),
                           "achieved_rps": round(len(latencies) / sum(s.elapsed for s in segments), 1),
                           "errors": sum(s.errors for s in segments),
                           "p50_ms": round(float(np.percentile(ms, 50)), 2),
                           "p90_ms": round(float(np.percentile(ms, 90)), 2),
                           "p99_ms": round(float(np.percentile(ms, 99)), 2)}
    for party in ("router", "inference", "db", "loadgen"):
        spent = sum(s.cpu_seconds[party] for s in segments)
        row[f"{party}_cpu_ms_per_req"] = None if name == "direct" and party == "router" \
            else round(spent * 1000.0 / served, 3)
    row["loadavg_1m"] = round(os.getloadavg()[0], 2)
    return row


def _print(row: dict[str, Any]) -> None:
    cpu = " ".join(f"{party} {row[f'{party}_cpu_ms_per_req']}" for party in ("router", "inference", "db", "loadgen"))
    print(f"  {row['scenario']:10s} {row['rate']:>5.0f} req/s: achieved {row['achieved_rps']:>6.1f}, p50 "
          f"{row['p50_ms']:.2f} p99 {row['p99_ms']:.2f} ms, errors {row['errors']}; CPU ms/req: {cpu}; "
          f"load {row['loadavg_1m']:.1f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="data dir with a built index")
    parser.add_argument("--synthetic-films", type=int, default=27000, help="random table of N films (no --data-dir)")
    parser.add_argument("--rate", type=float, default=300.0, help="rate of the overhead runs (0: skip them)")
    parser.add_argument("--e2e-rate", type=float, default=600.0, help="rate of the end-to-end run (0: skip it)")
    parser.add_argument("--e2e-size", type=int, default=50, help="watched films of the end-to-end run's users")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the end-to-end run")
    parser.add_argument("--pairs", type=int, default=20, help="direct/routed pairs of the overhead runs")
    parser.add_argument("--pair-seconds", type=float, default=3.0, help="duration of each segment of a pair")
    parser.add_argument("--workers", type=int, default=None, help="inference workers (default: its settings)")
    parser.add_argument("--threads", type=int, default=None, help="inference threads per worker")
    parser.add_argument("--worker-class", default=None, help="inference gunicorn worker class")
    parser.add_argument("--router-workers", type=int, default=None, help="router workers (default: its settings)")
    parser.add_argument("--router-threads", type=int, default=None)
    parser.add_argument("--router-worker-class", default=None)
    parser.add_argument("--record-as", default="lb", help="name of the run in reports/runs/ (comparisons)")
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
        by_size = recommend.seed_users(url, table.ids)
        users = [u for size in recommend.HISTORY_SIZES[:3] for u in by_size[size]]
        env = {**os.environ, "MOVIEREC_DATA_DIR": str(data_dir), "DATABASE_URL": url, "CHROMA_URL": "",
               "LOG_LEVEL": "WARNING"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        inference_port, router_port = free_port(), free_port()

        def shape(workers: int | None, threads: int | None, worker_class: str | None) -> list[str]:
            return [*(["--workers", str(workers)] if workers else []),
                    *(["--threads", str(threads)] if threads else []),
                    *(["--worker-class", worker_class] if worker_class else [])]

        processes = [start(["inference", "--port", str(inference_port), "--strategy", "blend",
                            *shape(args.workers, args.threads, args.worker_class)], env, inference_port,
                           tmp_path / "inference.log")]
        router_env = {**env, "LB_MAIN_URL": f"http://127.0.0.1:{inference_port}", "LB_NIGHTLY_URL": "",
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'router.db'}"}
        upgrade_database(router_env["DATABASE_URL"])
        processes.append(start(["lb", "--port", str(router_port),
                                *shape(args.router_workers, args.router_threads, args.router_worker_class)],
                               router_env, router_port, tmp_path / "router.log"))
        inference, router = processes
        inference_shape = " ".join(shape(args.workers, args.threads, args.worker_class)) or "its settings"
        router_shape = " ".join(shape(args.router_workers, args.router_threads, args.router_worker_class)) \
            or "its settings"
        print(f"{len(table)} films; inference {inference_shape}; router {router_shape}; {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.2f}")
        figures: dict[str, Any] = {"films": len(table)}
        rows: list[dict[str, Any]] = []
        loadgen = LoadGenerator()
        try:
            for port in (inference_port, router_port):  # warm up both paths
                asyncio.run(recommend.warm_up(port, users))
            # After the warm-up: inference's database connections (and gunicorn's workers) exist by now.
            parties = {"router": recommend._tree(router.pid), "inference": recommend._tree(inference.pid),
                       "db": recommend.database_backends(inference, url)}
            if args.rate:
                order_rng = random.Random(7)
                arms: dict[str, list[Segment]] = {"direct": [], "router": []}
                targets = {"direct": inference_port, "router": router_port}
                for i in range(args.pairs):
                    order = ["direct", "router"]
                    order_rng.shuffle(order)
                    for name in order:
                        arms[name].append(measure(loadgen, targets[name], users, args.rate, args.pair_seconds,
                                                  parties))
                    pair_p99 = {name: float(np.percentile(np.array(arms[name][-1].latencies) * 1000.0, 99))
                                for name in arms}
                    print(f"  pair {i + 1:>2}/{args.pairs} ({order[0]} first): p99 direct {pair_p99['direct']:.2f} "
                          f"ms, routed {pair_p99['router']:.2f} ms", flush=True)
                for name, segments in arms.items():
                    row = summarise(name, args.rate, segments)
                    _print(row)
                    rows.append(row)
                direct_ms = [np.array(s.latencies) * 1000.0 for s in arms["direct"]]
                routed_ms = [np.array(s.latencies) * 1000.0 for s in arms["router"]]
                p50 = paired_percentile_difference(direct_ms, routed_ms, q=50.0)
                p99 = paired_percentile_difference(direct_ms, routed_ms, q=99.0)
                verdict = p99.verdict(ADDED_P99_GOAL_MS)
                print(f"added by the router at {args.rate:.0f} req/s, {args.pairs} pairs of {args.pair_seconds:g} s: "
                      f"p50 {p50.added_ms:.2f} ms, p99 {p99.added_ms:.2f} ms (95 % interval {p99.ci_low_ms:.2f} to "
                      f"{p99.ci_high_ms:.2f}; median of the pairs' p99 differences {p99.median_pair_added_ms:.2f}) "
                      f"(goal p99 <= {ADDED_P99_GOAL_MS} ms: {verdict}, judged by the whole interval)")
                figures.update({"rate_rps": args.rate, "pairs": args.pairs, "pair_seconds": args.pair_seconds,
                                "added_p50_ms": round(p50.added_ms, 2), "added_p99_ms": round(p99.added_ms, 2),
                                "added_p99_ci95_ms": [round(p99.ci_low_ms, 2), round(p99.ci_high_ms, 2)],
                                "added_p99_median_of_pairs_ms": round(p99.median_pair_added_ms, 2),
                                "added_p99_goal": verdict,
                                "pair_p99_ms_direct_routed": [
                                    [round(float(np.percentile(d, 99)), 1), round(float(np.percentile(r, 99)), 1)]
                                    for d, r in zip(direct_ms, routed_ms, strict=True)]})
            if args.e2e_rate:
                row = summarise(f"e2e-{args.e2e_size}", args.e2e_rate,
                                [measure(loadgen, router_port, by_size[args.e2e_size], args.e2e_rate, args.seconds,
                                         parties)])
                _print(row)
                rows.append(row)
                met = row["p99_ms"] <= E2E_P99_GOAL_MS and row["errors"] == 0
                print(f"end to end at {args.e2e_rate:.0f} req/s through the router, {args.e2e_size}-film users: "
                      f"p99 {row['p99_ms']:.2f} ms (goal <= {E2E_P99_GOAL_MS} ms: {'met' if met else 'missed'})")
                figures.update({"e2e_rate_rps": args.e2e_rate, "e2e_watched": args.e2e_size,
                                "e2e_p99_ms": row["p99_ms"], "e2e_goal_met": met})
            figures["table"] = rows
            record_run(args.record_as, figures,
                       notes="Router overhead: the same load sent directly to inference and through the router in "
                             "interleaved pairs of short segments (random order within a pair); added = difference "
                             "of the pooled percentiles, its 95 % interval from a bootstrap over pairs, the goal "
                             "judged by the whole interval "
                             f"(goal <= {ADDED_P99_GOAL_MS} ms added at p99 at 300 req/s); end to end: "
                             f"{args.e2e_rate:.0f} req/s through the router (goal p99 <= {E2E_P99_GOAL_MS} ms for "
                             "50-film users). CPU per request from /proc: router and inference = gunicorn master + "
                             "workers, db = the PostgreSQL backends of inference's connections, loadgen = the "
                             "load-generating process. loadavg_1m: the machine's load while the run ran.")
        finally:
            loadgen.close()
            for process in reversed(processes):
                recommend.stop(process, 20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
