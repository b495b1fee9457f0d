"""A small real platform for the release tests: a git clone with test commits, the router and the
scheduler as `movierec` subprocesses, a main backend, and a client loop that logs traffic."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from db_utils.models import Deployment
from db_utils.queries import bulk_insert_recommendations, bulk_upsert_watches
from db_utils.rows import RecommendationRow, WatchRow
from movierec.base.ports import free_port, wait_for_port
from tests.load_balancer import tiny_inference
from tests.load_balancer.helpers import ADMIN_TOKEN, wait_until

REPO = Path(__file__).resolve().parents[2]
TINY_SOURCE = Path(tiny_inference.__file__).read_text()


def git(repo: Path, *args: str, environ: dict[str, str] | None = None) -> str:
    env = {k: v for k, v in (environ or os.environ).items() if not k.startswith("GIT_")}
    env.update({"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@example.org"})
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def clone_with_behaviours(target: Path, behaviours: list[str]) -> dict[str, str]:
    """A clone of this repository's HEAD plus one commit per behaviour of the tiny inference."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(target)], check=True)
    shas = {}
    base = git(target, "rev-parse", "HEAD")
    for behaviour in behaviours:
        git(target, "checkout", "--quiet", "--detach", base)
        source = TINY_SOURCE.replace('BEHAVIOUR = "good"', f'BEHAVIOUR = "{behaviour}"')
        (target / "inference").mkdir(exist_ok=True)
        (target / "inference" / "cli.py").write_text(source)
        git(target, "add", "inference/cli.py")
        git(target, "commit", "--quiet", "-m", f"tiny inference: {behaviour}")
        shas[behaviour] = git(target, "rev-parse", "HEAD")
    return shas


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def kill_recorded_backends(engine: Engine) -> None:
    """Stop nightly processes the pipeline started (their pids are in the deployments table)."""
    with Session(engine) as session:
        for row in session.scalars(select(Deployment)):
            handle = (row.metrics or {}).get("handle") or {}
            if handle.get("kind") == "process" and psutil.pid_exists(int(handle["pid"])):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(handle["pid"]), signal.SIGKILL)


@dataclass
class Platform:
    env: dict[str, str]
    router_url: str
    data_dir: Path
    repo: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 180, extra_env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "movierec.cli", *args], env={**self.env, **(extra_env or {})},
                              capture_output=True, text=True, timeout=timeout, cwd=self.data_dir)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.data_dir / f"{name}.log", "ab") as out:
            process = subprocess.Popen([sys.executable, "-m", "movierec.cli", *args], env=self.env, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True, cwd=self.data_dir)
        self.processes.append(process)
        return process

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(method, f"{self.router_url}/admin{path}", timeout=10,
                                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, **kwargs)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_process(process)


def start_platform(postgres_url: str, data_dir: Path, repo: Path, main_url: str, webhook_url: str,
                   **overrides: str) -> Platform:
    router_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({
        "DATABASE_URL": postgres_url, "MOVIEREC_DATA_DIR": str(data_dir), "LB_ADMIN_TOKEN": ADMIN_TOKEN,
        "LB_ADMIN_URL": f"http://127.0.0.1:{router_port}", "LB_MAIN_URL": main_url, "LB_NIGHTLY_URL": "",
        "LB_STATE_POLL_SECONDS": "0.5", "LB_HEALTH_INTERVAL_SECONDS": "0.5", "LB_ONLINE_EVAL_INTERVAL_SECONDS": "5",
        "LB_CANARY_WEIGHT": "0.5", "RELEASE_REPO_DIR": str(repo), "RELEASE_WINDOW_MINUTES": "1",
        "RELEASE_NIGHTLY_PORT": str(free_port()), "RELEASE_MIN_USERS_PER_ARM": "15",
        "RELEASE_HIT_HORIZON_MINUTES": "0.25", "RELEASE_START_TIMEOUT_SECONDS": "60", "SLACK_WEBHOOK_URL": webhook_url,
        "SCHEDULER_TICK_SECONDS": "1", "RELEASE_GATE_STRATEGY": "blend",
    })
    env.update(overrides)
    platform = Platform(env, f"http://127.0.0.1:{router_port}", data_dir, repo)
    platform.start("router", "lb", "--port", str(router_port), "--workers", "2")
    wait_for_port("127.0.0.1", router_port, timeout_seconds=30)
    return platform


def answers(url: str) -> bool:
    """True when `url` answers 2xx now."""
    try:
        return requests.get(url, timeout=5).ok
    except requests.RequestException:
        return False


@contextlib.contextmanager
def platform_with_bad_main(postgres_url: str, engine: Engine, data_dir: Path, repo: Path, webhook_url: str,
                           **overrides: str) -> Iterator[Platform]:
    """Router + scheduler (start_platform) with a tiny `bad` main registered; everything stopped after."""
    from tests.load_balancer.conftest import serve_in_thread

    main = serve_in_thread(tiny_inference.create_app("main-v1", behaviour="bad"))
    running = start_platform(postgres_url, data_dir, repo, main.url, webhook_url, **overrides)
    try:
        wait_until(lambda: answers(f"{running.router_url}/health"), timeout_seconds=60, interval=0.5)
        running.admin("POST", "/backends", json={"name": "main", "url": main.url, "version": "main-v1"})
        yield running
    finally:
        running.stop()
        kill_recorded_backends(engine)
        main.stop()


@dataclass
class TrafficStats:
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    served_by: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)


class ClientLoop:
    """Users asking the router for recommendations; each answer is logged as the stream parser
    would store it (recommendations.model_version from X-Model-Version), and a user starts
    watching a recommended film that matches their taste (tiny_inference.taste)."""

    def __init__(self, router_url: str, engine: Engine, users: int = 120, pause_seconds: float = 0.01) -> None:
        self.router_url = router_url
        self.engine = engine
        self.users = users
        self.pause = pause_seconds
        self.stats = TrafficStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ClientLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        session = requests.Session()
        port = self.router_url.rsplit(":", 1)[1]
        user = 0
        while not self._stop.is_set():
            user = user % self.users + 1
            now = datetime.utcnow()
            try:
                response = session.get(f"{self.router_url}/recommend/{user}", timeout=2)
            except requests.RequestException as exc:
                self.stats.failures.append(f"user {user}: {exc}")
                continue
            self.stats.requests += 1
            if response.status_code != 200:
                self.stats.failures.append(f"user {user}: status {response.status_code}")
                continue
            version = response.headers.get("X-Model-Version", "")
            served = response.headers.get("X-Served-By", "")
            self.stats.served_by[served] = self.stats.served_by.get(served, 0) + 1
            self.stats.versions[version] = self.stats.versions.get(version, 0) + 1
            films = tuple(response.text.split(","))
            liked = [f for f in films if f in set(tiny_inference.taste(user))]
            with self.engine.begin() as conn:
                bulk_insert_recommendations(conn, [RecommendationRow(
                    uuid.uuid4().hex, now, user, f"{version}@127.0.0.1:{port}", 200, films,
                    int(response.elapsed.total_seconds() * 1000), version)])
                if liked:
                    seen = now + timedelta(seconds=1)
                    bulk_upsert_watches(conn, [WatchRow(user, liked[(self.stats.requests // 7) % len(liked)], 10,
                                                        seen, seen)])
            time.sleep(self.pause)


def deployment_rows(engine: Engine) -> list[Deployment]:
    with Session(engine) as session:
        return list(session.scalars(select(Deployment).order_by(Deployment.id)))


def release_row(engine: Engine, release_id_prefix: str = "") -> Deployment | None:
    rows = [r for r in deployment_rows(engine) if (r.metrics or {}).get("release_id", "").startswith(
        release_id_prefix) and (r.metrics or {}).get("release_id")]
    return rows[-1] if rows else None
