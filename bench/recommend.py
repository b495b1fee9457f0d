"""Recommendation latency: `movierec inference` under gunicorn on loopback, open-loop fixed request rates.

    python bench/recommend.py --data-dir ~/.cache/movierec/test-data --rates 100,300 --seconds 10

Creates a fresh PostgreSQL schema with users who watched 1, 10, 50 and 200 films (some rated),
starts the real service (gunicorn, `--workers`, `--threads`) on a free port, and from this
separate process sends GET /recommend/<user> at fixed rates over keep-alive connections (asyncio).
Latency is measured from each request's *scheduled* send time, so a slow server cannot hide
queueing (no coordinated omission). Prints p50/p99 latency and achieved req/s per (history size, rate).
Without a built index (`--data-dir` lacking index/neighbours.npz) use `--synthetic-films N`: a random
neighbour table of N films with the real table's shape (speed does not depend on the neighbours' meaning).
Goal on the 2-core dev machine: p99 <= 25 ms at 300 req/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from db_utils.engine import make_engine, upgrade_database
from db_utils.queries import bulk_upsert_ratings, bulk_upsert_watches
from db_utils.rows import RatingRow, WatchRow
from movierec.base.benchlog import record_run
from movierec.base.ports import free_port, wait_for_port
from movierec.base.scratch import postgres_schema_url
from vectordb_scripts.table import NEIGHBOURS_FILE, NeighbourTable, load_table, save_table

HISTORY_SIZES = (1, 10, 50, 200)
USERS_PER_SIZE = 200


def synthetic_table(films: int, seed: int = 0) -> NeighbourTable:
    """Random neighbours with the real table's shape: 20 content, 50 co-rating (for 15% of films)."""
    rng = np.random.default_rng(seed)
    content = rng.integers(0, films, size=(films, 20), dtype=np.int32)
    cooc = np.full((films, 50), -1, dtype=np.int32)
    rated = rng.choice(films, size=films * 15 // 100, replace=False)
    cooc[rated] = rng.choice(rated, size=(len(rated), 50))
    popularity = rng.pareto(1.5, size=films).astype(np.float32)
    return NeighbourTable(
        ids=tuple(f"film+{i}+{1950 + i % 70}" for i in range(films)), popularity=popularity,
        popular_order=np.argsort(-popularity)[:1000].astype(np.int32),
        content_idx=content, content_sim=rng.uniform(0.3, 0.9, size=content.shape).astype(np.float32),
        cooc_idx=cooc, cooc_sim=np.where(cooc >= 0, rng.uniform(0, 0.5, size=cooc.shape), 0).astype(np.float32),
        catalog_hash=f"synthetic-{films}",
    )


def seed_users(url: str, ids: tuple[str, ...], seed: int = 1) -> dict[int, list[int]]:
    """USERS_PER_SIZE users per history size; returns size -> user ids. A third of the films are rated."""
    rng = random.Random(seed)
    engine = make_engine(url)
    t0 = datetime(2024, 1, 1)
    users: dict[int, list[int]] = {}
    watches: list[WatchRow] = []
    ratings: list[RatingRow] = []
    next_user = 1
    for size in HISTORY_SIZES:
        users[size] = []
        for _ in range(USERS_PER_SIZE):
            user, next_user = next_user, next_user + 1
            users[size].append(user)
            for i, movie in enumerate(rng.sample(ids, size)):
                when = t0 + timedelta(minutes=i)
                watches.append(WatchRow(user, movie, 90, when, when))
                if rng.random() < 1 / 3:
                    ratings.append(RatingRow(user, movie, rng.randint(1, 5), when))
    with engine.begin() as conn:
        bulk_upsert_watches(conn, watches)
        bulk_upsert_ratings(conn, ratings)
    engine.dispose()
    return users


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/plain\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def run_rate(port: int, users: list[int], rate: float, seconds: float,
                   connections: int = 64) -> tuple[list[float], int, float]:
    """Open loop: request i is due at start + i/rate; returns latencies (s) from due time, errors, elapsed."""
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    async def one(i: int, due: float) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            status = await _request(*conn, f"/recommend/{users[i % len(users)]}")
            if status != 200:
                errors += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            conn = await asyncio.open_connection("127.0.0.1", port)
        latencies.append(loop.time() - due)
        pool.put_nowait(conn)

    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    while not pool.empty():
        _, writer = pool.get_nowait()
        writer.close()
    return latencies, errors, elapsed


def server_cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    """CPU time (user + system) of the gunicorn master and its workers so far."""
    import psutil

    total = 0.0
    parent = psutil.Process(process.pid)
    for proc in [parent, *parent.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def start_server(port: int, env: dict[str, str], workers: int, threads: int, strategy: str,
                 log_path: Path) -> subprocess.Popen[bytes]:
    log = open(log_path, "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "movierec.cli", "inference", "--port", str(port), "--workers", str(workers),
         "--threads", str(threads), "--strategy", strategy],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    wait_for_port("127.0.0.1", port, timeout_seconds=60)
    return process


async def warm_up(port: int, users: list[int]) -> None:
    """Wait until every worker answers, then 3 s at 100 req/s (pools, caches and connections warm)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            lat, errors, _ = await run_rate(port, users, 50, 1, connections=4)
            if errors == 0:
                await run_rate(port, users, 100, 3)
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the service does not answer")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MOVIEREC_DATA_DIR", "var")))
    parser.add_argument("--synthetic-films", type=int, default=0, help="random table of N films instead")
    parser.add_argument("--rates", default="100,300", help="request rates (req/s), comma separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each (size, rate) run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--strategy", default="blend")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-recommend-") as tmp, postgres_schema_url() as url:
        data_dir = args.data_dir.resolve()
        if args.synthetic_films:
            data_dir = Path(tmp) / "var"
            save_table(data_dir / "index" / NEIGHBOURS_FILE, synthetic_table(args.synthetic_films))
        table = load_table(data_dir / "index" / NEIGHBOURS_FILE)
        upgrade_database(url)
        users = seed_users(url, table.ids)
        port = free_port()
        env = {**os.environ, "MOVIEREC_DATA_DIR": str(data_dir), "DATABASE_URL": url, "CHROMA_URL": "",
               "LOG_LEVEL": "WARNING"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        print(f"index: {len(table)} films ({table.catalog_hash}); strategy {args.strategy}; "
              f"gunicorn {args.workers} workers x {args.threads} threads; {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.2f}")
        process = start_server(port, env, args.workers, args.threads, args.strategy, Path(tmp) / "server.log")
        try:
            asyncio.run(warm_up(port, [u for size in HISTORY_SIZES for u in users[size]]))
            print(f"{'watched':>8} {'rate':>6} {'achieved':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
                  f"{'errors':>6} {'server CPU ms/req':>18}")
            rows: list[dict[str, object]] = []
            for size in HISTORY_SIZES:
                for rate in rates:
                    cpu_before = server_cpu_seconds(process)
                    lat, errors, elapsed = asyncio.run(run_rate(port, users[size], rate, args.seconds))
                    cpu_ms = (server_cpu_seconds(process) - cpu_before) * 1000.0 / max(len(lat), 1)
                    ms = np.array(lat) * 1000.0
                    print(f"{size:>8} {rate:>6.0f} {len(lat) / elapsed:>9.1f} {np.percentile(ms, 50):>8.2f} "
                          f"{np.percentile(ms, 99):>8.2f} {ms.max():>8.2f} {errors:>6} {cpu_ms:>18.2f}", flush=True)
                    rows.append({"watched": size, "rate": rate, "achieved_rps": round(len(lat) / elapsed, 1),
                                 "p50_ms": round(float(np.percentile(ms, 50)), 2),
                                 "p99_ms": round(float(np.percentile(ms, 99)), 2), "errors": errors,
                                 "server_cpu_ms_per_req": round(cpu_ms, 2)})
            record_run("recommend", {"films": len(table), "strategy": args.strategy, "workers": args.workers,
                                     "threads": args.threads, "table": rows},
                       notes="Goal: p99 <= 25 ms at 300 req/s on 2 cores. Latency from scheduled send time.")
        finally:
            process.terminate()
            process.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
