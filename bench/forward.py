"""The client side of the router's forward: CPU per GET of its httptools client against urllib3's.

    python bench/forward.py --data-dir ~/.cache/movierec/test-data [--requests 3000] [--rounds 2]

Starts the real inference service (gunicorn, on the data dir's index, an empty SQLite database: every
answer is the popular fallback, the same 20 ids and headers as any answer) and sends it `--requests`
sequential GET /recommend/1 on one kept-alive connection, per client, alternating the clients for
`--rounds` rounds. CPU is the calling thread's own (time.thread_time), so the server's work on the
other core does not count; wall time per GET is printed beside it.
- urllib3: what the router used before (an HTTPConnectionPool's urlopen, prepared Timeout, no retries);
- router: `load_balancer.router.backends.SessionPool` (llhttp through httptools on a plain socket).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import urllib3

from db_utils.engine import upgrade_database
from load_balancer.router.backends import SessionPool, fetch
from movierec.base.benchlog import record_run
from movierec.base.ports import free_port, wait_for_port
from movierec.base.scratch import test_data_dir

PATH = "/recommend/1"


def urllib3_client(port: int) -> Any:
    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=1, retries=False)
    timeout = urllib3.Timeout(connect=5.0, read=5.0)

    def get() -> None:
        response = pool.urlopen("GET", PATH, retries=False, timeout=timeout, redirect=False)
        _ = response.data, response.headers.get("Content-Type"), response.headers.get("X-Model-Version")
    return get


def router_client(port: int) -> Any:
    pool = SessionPool(pool_size=1)
    base = f"http://127.0.0.1:{port}"
    return lambda: fetch(pool, base, PATH, 5.0)


def timed(get: Any, requests: int) -> tuple[float, float]:
    """(client CPU us per GET, wall ms per GET) of `requests` sequential GETs after one warm-up GET."""
    get()
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(requests):
        get()
    return (time.thread_time() - cpu) / requests * 1e6, (time.perf_counter() - wall) / requests * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=test_data_dir(), help="data dir with a built index")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-forward-") as tmp:
        database = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade_database(database)
        port = free_port()
        env = {**os.environ, "MOVIEREC_DATA_DIR": str(args.data_dir.resolve()), "DATABASE_URL": database,
               "CHROMA_URL": "", "LOG_LEVEL": "WARNING"}
        server = subprocess.Popen([sys.executable, "-m", "movierec.cli", "inference", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for_port("127.0.0.1", port, timeout_seconds=90)
            clients = {"urllib3": urllib3_client(port), "router": router_client(port)}
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
            for round_number in range(args.rounds):
                for name, get in clients.items():
                    cpu_us, wall_ms = timed(get, args.requests)
                    results[name].append((cpu_us, wall_ms))
                    print(f"  round {round_number + 1} {name:8s}: client CPU {cpu_us:6.1f} us per GET, "
                          f"wall {wall_ms:.3f} ms per GET", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=20)
    rows = [{"client": name, "requests_per_round": args.requests, "rounds": args.rounds,
             "cpu_us_per_get_min": round(min(c for c, _ in runs), 1),
             "cpu_us_per_get_max": round(max(c for c, _ in runs), 1),
             "wall_ms_per_get_min": round(min(w for _, w in runs), 3)} for name, runs in results.items()]
    best = {row["client"]: row["cpu_us_per_get_min"] for row in rows}
    saved = best["urllib3"] - best["router"]
    print(f"the router's client saves {saved:.0f} us of CPU per forwarded GET ({best['urllib3']:.0f} -> "
          f"{best['router']:.0f} us, best rounds)")
    if not args.no_record:
        record_run("forward", {"saved_cpu_us_per_get": round(saved, 1), "table": rows},
                   notes="Client CPU per sequential keep-alive GET against the real inference service (the "
                         "calling thread's CPU time): urllib3 as the router used it before, and the router's "
                         "SessionPool (httptools on a plain socket).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
