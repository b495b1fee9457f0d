"""Where the serving CPU goes: py-spy flame graphs of inference and the router under open-loop load.

    python bench/profile_serving.py --data-dir ~/.cache/movierec/test-data --rate 300 --seconds 10
    python bench/profile_serving.py --code /tmp/before --label before   # another checkout's serving code

Starts inference (and, for `--target router`, the router in front of it) on the built index with
users of `--watched` films in a fresh PostgreSQL schema (bench/recommend.py), loads it at `--rate`
req/s, and samples the gunicorn master and workers with py-spy (`--gil`: only the thread holding the
GIL, i.e. Python on the CPU, not threads waiting on sockets or locks). Writes, per target,
reports/profiles/<label>-<target>.svg (flame graph) and .txt (collapsed stacks), and prints the
share of samples in each part of a request (`summarise`), with the CPU per request measured
meanwhile. py-spy (dev extra) must be installed; it needs ptrace permission on the processes.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from db_utils.engine import upgrade_database
from movierec.base.benchlog import REPORTS_DIR
from movierec.base.ports import free_port, wait_for_port
from movierec.base.scratch import postgres_schema_url

_spec = importlib.util.spec_from_file_location("bench_recommend", Path(__file__).with_name("recommend.py"))
recommend = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = recommend
_spec.loader.exec_module(recommend)  # type: ignore[union-attr]

# Parts of a request, by the first frame (innermost wins) whose text contains the marker.
PARTS = (
    ("history query", ("inference/history.py", "db_utils/queries.py")),
    ("ranking", ("inference/recommender.py", "inference/ranking.py")),
    ("metrics", ("prometheus_client/", "movierec/base/metrics.py")),
    ("forwarding", ("load_balancer/router/backends.py", "urllib3/", "http/client.py")),
    ("view", ("inference/app.py", "load_balancer/router/app.py", "inference/service.py")),
    ("flask + werkzeug", ("flask/", "werkzeug/")),
    ("gunicorn", ("gunicorn/", "concurrent/futures", "selectors.py")),
)


def stacks(collapsed_lines: list[str]) -> Iterator[tuple[str, int]]:
    """(stack, samples) of each well-formed line of py-spy's collapsed output (`frame;frame;... count`)."""
    for line in collapsed_lines:
        stack, _, number = line.rstrip().rpartition(" ")
        if stack and number.isdigit():
            yield stack, int(number)


def summarise(collapsed_lines: list[str]) -> dict[str, float]:
    """Share of samples per part of a request, from py-spy's collapsed stacks (`frame;frame;... count`).

    A sample belongs to the innermost frame that names a part (a numpy call inside the ranking is
    ranking); samples naming none are `other` (threads of the service, the interpreter).
    """
    counts: Counter[str] = Counter()
    total = 0
    for stack, samples in stacks(collapsed_lines):
        total += samples
        part = "other"
        for frame in reversed(stack.split(";")):
            found = next((name for name, markers in PARTS if any(m in frame for m in markers)), None)
            if found:
                part = found
                break
        counts[part] += samples
    return {part: round(100.0 * n / total, 1) for part, n in counts.most_common()} if total else {}


def top_frames(collapsed_lines: list[str], limit: int = 25) -> list[tuple[str, float]]:
    """The functions with the most samples on their own (self time), as (function, % of samples)."""
    counts: Counter[str] = Counter()
    total = 0
    for stack, samples in stacks(collapsed_lines):
        total += samples
        counts[re.sub(r":\d+\)", ")", stack.split(";")[-1])] += samples
    return [(frame, round(100.0 * n / total, 1)) for frame, n in counts.most_common(limit)] if total else []


def spy(pid: int, seconds: int, out: Path, fmt: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["py-spy", "record", "--subprocesses", "--gil", "--rate", "200", "--format", fmt,
                             "-o", str(out), "--duration", str(seconds), "--pid", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MOVIEREC_DATA_DIR", "var")))
    parser.add_argument("--target", default="inference,router", help="inference, router or both")
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--watched", type=int, default=50, choices=recommend.HISTORY_SIZES)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--label", default="after", help="file name prefix in reports/profiles/")
    parser.add_argument("--code", type=Path, default=None, help="serve another checkout's code (PYTHONPATH)")
    parser.add_argument("--out", type=Path, default=REPORTS_DIR / "profiles")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp, postgres_schema_url() as url:
        tmp_path = Path(tmp)
        table = recommend.load_table(args.data_dir.resolve() / "index" / recommend.NEIGHBOURS_FILE)
        upgrade_database(url)
        users = recommend.seed_users(url, table.ids)[args.watched]
        env = {**os.environ, "MOVIEREC_DATA_DIR": str(args.data_dir.resolve()), "DATABASE_URL": url,
               "CHROMA_URL": "", "LOG_LEVEL": "WARNING"}
        if args.code:
            env["PYTHONPATH"] = str(args.code.resolve())
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)

        def start(argv: list[str], port: int, extra: dict[str, str], log: str) -> subprocess.Popen[bytes]:
            process = subprocess.Popen([sys.executable, "-m", "movierec.cli", *argv, "--port", str(port)],
                                       env={**env, **extra}, stdout=open(tmp_path / log, "wb"),  # noqa: SIM115
                                       stderr=subprocess.STDOUT, start_new_session=True,
                                       cwd=str(args.code.resolve()) if args.code else None)
            wait_for_port("127.0.0.1", port, timeout_seconds=90)
            return process

        inference_port = free_port()
        processes = [start(["inference"], inference_port, {}, "inference.log")]
        targets = {"inference": (processes[0], inference_port)}
        if "router" in args.target:
            router_port = free_port()
            router_db = f"sqlite:///{tmp_path / 'router.db'}"
            upgrade_database(router_db)
            processes.append(start(["lb"], router_port, {"LB_MAIN_URL": f"http://127.0.0.1:{inference_port}",
                                                         "LB_NIGHTLY_URL": "", "DATABASE_URL": router_db},
                                   "router.log"))
            targets["router"] = (processes[1], router_port)
        try:
            for name in [t.strip() for t in args.target.split(",")]:
                process, port = targets[name]
                asyncio.run(recommend.warm_up(port, users))
                collapsed = args.out / f"{args.label}-{name}.txt"
                spies = [spy(process.pid, args.seconds + 2, collapsed, "raw")]
                time.sleep(1)
                before = recommend.server_cpu_seconds(process)
                latencies, errors, _ = asyncio.run(recommend.run_rate(port, users, args.rate, args.seconds))
                cpu_ms = (recommend.server_cpu_seconds(process) - before) * 1000.0 / max(len(latencies), 1)
                for waiting in spies:
                    waiting.wait()
                # The flame graph: a second, shorter window (py-spy writes one format per recording).
                svg = spy(process.pid, max(4, args.seconds // 2), args.out / f"{args.label}-{name}.svg", "flamegraph")
                time.sleep(0.5)
                asyncio.run(recommend.run_rate(port, users, args.rate, max(3, args.seconds // 2 - 1)))
                svg.wait()
                lines = collapsed.read_text().splitlines()
                print(f"{args.label} {name}: {args.rate:.0f} req/s, {args.watched}-film users, {cpu_ms:.2f} ms CPU "
                      f"per request ({name} processes), errors {errors}, load average {os.getloadavg()[0]:.1f}")
                for part, share in summarise(lines).items():
                    print(f"    {share:5.1f} %  {part}")
                print("  top self time:")
                for frame, share in top_frames(lines, 12):
                    print(f"    {share:5.1f} %  {frame}")
        finally:
            for process in reversed(processes):
                recommend.stop(process, 20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
