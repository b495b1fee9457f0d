"""`movierec up | status | down`: the whole platform as local processes on embedded defaults.

`up` creates the router's admin token once (when LB_ADMIN_TOKEN is unset), prepares the data
(migrations, data, catalogue, index, the simulator's taste model: each step idempotent, all
skipped when the stamp of the last successful preparation still matches), starts every service of
`movierec.services.plan_services` in order, waits for each health check, prints one table of
URLs, and stops everything on Ctrl-C / SIGTERM. A service that dies is restarted every time after
an exponential backoff (1 s doubling to 30 s by default); after UP_RESTART_MAX_CRASHES crashes
within UP_RESTART_WINDOW_SECONDS it is marked failed, which `status` shows and the supervisor's
/metrics turn into the ServiceFailed alert. The state file `<data_dir>/run/supervisor.json` is
written from the first moment (phase preparing, step, progress), so `status` and `down` work
while the data is still being prepared. Children get PDEATHSIG, so even a killed supervisor
leaves no orphan behind.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

from movierec.base.broker import tansu_binary
from movierec.base.ports import wait_for_port
from movierec.base.settings import environment
from movierec.base.waiting import wait_until
from movierec.services import ServiceSpec, UpSettings, movierec_argv, plan_services, scrape_targets

log = logging.getLogger("movierec.supervisor")

HEALTH_TIMEOUT_SECONDS = 180.0
STOP_GRACE_SECONDS = 15.0
WATCH_TICK_SECONDS = 0.25

# `movierec status` exit codes.
STATUS_OK = 0
STATUS_DEGRADED = 1
STATUS_NOT_RUNNING = 3
STATUS_PREPARING = 4  # preparing the data or starting the services: not ready yet

STAMP_VERSION = 1
# Source files whose change must re-run the preparation (they decide what the steps build).
PREPARATION_SOURCES = ("vectordb_scripts/*.py", "vectordb_scripts/requirements-data.txt",
                       "db_utils/models.py", "db_utils/migrations/versions/*.py", "simulator/tastes*.py",
                       "simulator/factorization.py")


class StartupFailed(RuntimeError):
    """A required service did not become healthy, or a preparation step failed."""


class Stopped(RuntimeError):
    """`movierec down` (or Ctrl-C) arrived while preparing."""


def _set_parent_death_signal() -> None:
    # Linux: the child receives SIGTERM when the supervisor dies, however it dies.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# --- restart policy (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class RestartPolicy:
    """Restart after every crash, waiting `initial * 2**(k-1)` (at most `max`) for the k-th crash in
    the window; give up when `max_crashes` crashes fall within `window_seconds`."""

    initial_seconds: float = 1.0
    max_seconds: float = 30.0
    max_crashes: int = 10
    window_seconds: float = 600.0

    @classmethod
    def from_settings(cls, settings: UpSettings) -> RestartPolicy:
        return cls(settings.restart_backoff_initial_seconds, settings.restart_backoff_max_seconds,
                   settings.restart_max_crashes, settings.restart_window_seconds)

    def recent(self, crashes: list[float], now: float) -> list[float]:
        return [t for t in crashes if now - t <= self.window_seconds]

    def delay_after_crash(self, crashes: list[float], now: float) -> float | None:
        """Seconds to wait before the next start, or None: too many crashes, mark it failed.
        `crashes` holds the monotonic times of the crashes so far, this one included."""
        recent = self.recent(crashes, now)
        if len(recent) >= self.max_crashes:
            return None
        return min(self.initial_seconds * 2 ** max(len(recent) - 1, 0), self.max_seconds)


# --- preparation stamp (cheap second start) --------------------------------------------------------


def _file_stamp(path: Path) -> list[Any]:
    try:
        stat = path.stat()
    except OSError:
        return [str(path), None]
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _tree_stamp(directory: Path) -> list[list[Any]]:
    if not directory.is_dir():
        return [[str(directory), None]]
    return [_file_stamp(p) for p in sorted(directory.rglob("*")) if p.is_file()]


def preparation_fingerprint(settings: UpSettings, environ: dict[str, str]) -> str:
    """What the preparation steps produced and from what: sizes and mtimes of their outputs (never
    their contents), the source of the code that builds them, and the settings they read."""
    data_dir = settings.common.data_dir
    repo = Path(__file__).resolve().parents[1]
    sources = sorted(p for pattern in PREPARATION_SOURCES for p in repo.glob(pattern))
    code = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()
    read = ("MOVIEREC_CATALOG_SIZE", "MOVIEREC_CATALOG_LOAD_DB", "INDEX_NEIGHBOURS", "MOVIEREC_MODEL_PATH", "SIM_RANK")
    document = {
        "version": STAMP_VERSION,
        "code": code,
        "database_url": settings.common.database_url,
        "chroma": [settings.common.chroma_url, settings.common.chroma_collection],
        "settings": {name: environ.get(name, "") for name in read},
        "files": [_file_stamp(data_dir / "raw" / "manifest.json"), *_tree_stamp(data_dir / "catalog"),
                  *_tree_stamp(data_dir / "index"),
                  *(_tree_stamp(data_dir / "simulator") if settings.simulator else [])],
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def stamp_path(settings: UpSettings) -> Path:
    return settings.common.data_dir / "run" / "prepared.stamp"


def database_ready(database_url: str) -> bool:
    """The migrated database holds the catalogue (one cheap query)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(text("SELECT 1 FROM movies LIMIT 1")).first())
    except SQLAlchemyError:
        return False
    finally:
        engine.dispose()


# --- managed processes -----------------------------------------------------------------------------


@dataclass
class Managed:
    spec: ServiceSpec
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    failed: bool = False
    crashes: list[float] = field(default_factory=list)  # monotonic times
    restart_at: float | None = None  # a restart is pending at this monotonic time
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, **self.spec.env}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each gunicorn service makes its own
        self.process = subprocess.Popen(
            self.spec.argv, stdout=self._log_file, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, preexec_fn=_set_parent_death_signal,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        if not self.alive():
            return False
        if self.spec.health_url:
            return _http_ok(self.spec.health_url)
        if self.spec.port:
            try:
                wait_for_port("127.0.0.1", self.spec.port, timeout_seconds=0.5)
                return True
            except TimeoutError:
                return False
        return True

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait()
            # Whatever the leader left in its session (gunicorn workers of a killed master).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def run_dir(settings: UpSettings) -> Path:
    return settings.common.data_dir / "run"


def state_path(settings: UpSettings) -> Path:
    return run_dir(settings) / "supervisor.json"


def write_monitoring_config(settings: UpSettings, specs: list[ServiceSpec], directory: Path) -> None:
    """Render the local Prometheus and Alertmanager configs for the planned ports."""
    from monitoring.local import write_local_configs

    targets = scrape_targets(specs)
    if settings.supervisor_metrics_port:
        targets["supervisor"] = [f"127.0.0.1:{settings.supervisor_metrics_port}"]
    write_local_configs(
        directory,
        targets=targets,
        alertmanager=f"127.0.0.1:{settings.alertmanager_port}",
        slack_webhook_url=settings.slack_webhook_url or None,
    )


class SupervisorMetrics:
    """The supervisor's /metrics: per service up, failed, restarts; and whether it is still preparing."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        self.up = Gauge("movierec_supervisor_service_up", "1 while the service's process runs", ["service"],
                        registry=self.registry)
        self.failed = Gauge("movierec_supervisor_service_failed",
                            "1 when the supervisor gave up restarting the service", ["service"],
                            registry=self.registry)
        self.restarts = Counter("movierec_supervisor_restarts", "restarts of a crashed service", ["service"],
                                registry=self.registry)
        self.preparing = Gauge("movierec_supervisor_preparing", "1 while preparing data or starting services",
                               registry=self.registry)

    def serve(self, port: int) -> None:
        from prometheus_client import start_http_server

        try:
            start_http_server(port, addr="127.0.0.1", registry=self.registry)
        except OSError as exc:
            print(f"[up] WARNING: supervisor /metrics not served on :{port} ({exc})", flush=True)

    def observe(self, services: list[Managed]) -> None:
        for m in services:
            self.up.labels(m.spec.name).set(1 if m.alive() else 0)
            self.failed.labels(m.spec.name).set(1 if m.failed else 0)
            self.restarts.labels(m.spec.name)  # present (0) before the first restart


class Supervisor:
    def __init__(self, settings: UpSettings, specs: list[ServiceSpec] | None = None) -> None:
        self.settings = settings
        self.logs = settings.common.data_dir / "logs"
        self.monitoring_dir = run_dir(settings) / "monitoring"
        self.services: list[Managed] = []
        self.stopping = False
        self.policy = RestartPolicy.from_settings(settings)
        self.metrics = SupervisorMetrics()
        self._specs = specs
        self._progress: dict[str, Any] = {}
        self._healthy: set[str] = set()
        self._last_state_write = 0.0

    def plan(self) -> list[ServiceSpec]:
        if self._specs is not None:
            return self._specs
        from monitoring.local import find_binary

        return plan_services(
            self.settings, tansu=tansu_binary(), prometheus=find_binary("prometheus"),
            alertmanager=find_binary("prometheus-alertmanager"), monitoring_dir=self.monitoring_dir,
        )

    # -- state file ---------------------------------------------------------------------------------

    def write_state(self, phase: str, **progress: Any) -> None:
        self._progress = progress
        state = {
            "pid": os.getpid(),
            "phase": phase,
            "progress": self._progress,
            "data_dir": str(self.settings.common.data_dir),
            "services": {
                m.spec.name: {"pid": m.process.pid if m.process else None, "url": m.spec.url,
                              "health_url": m.spec.health_url, "port": m.spec.port,
                              "log": str(m.log_path), "restarts": m.restarts, "failed": m.failed,
                              "restart_pending": m.restart_at is not None}
                for m in self.services
            },
        }
        path = state_path(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)
        self._last_state_write = time.monotonic()
        self.metrics.preparing.set(1 if phase in {"preparing", "starting"} else 0)
        self.metrics.observe(self.services)

    # -- preparation --------------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Migrations, data, catalogue and index; all skipped when nothing changed since the last run."""
        settings = self.settings
        data_dir = settings.common.data_dir
        env = {**environment(), "MOVIEREC_DATA_DIR": str(data_dir), "DATABASE_URL": settings.common.database_url}
        started = time.monotonic()
        self.write_state("preparing", step="checking the preparation stamp", index=0, total=5)
        fingerprint = preparation_fingerprint(settings, env)
        stamp = stamp_path(settings)
        if stamp.is_file() and stamp.read_text().strip() == fingerprint and database_ready(
                settings.common.database_url):
            print(f"[up] database, data, catalogue, index: unchanged (stamp checked in "
                  f"{time.monotonic() - started:.1f}s)", flush=True)
            return
        stamp.unlink(missing_ok=True)
        steps: list[tuple[str, tuple[str, ...]]] = [
            ("database migrations", movierec_argv("db", "upgrade")),
            ("data fetch", movierec_argv("data", "fetch")),
            # Reuses its files when the data is unchanged and (re)loads the movies table.
            ("catalogue", movierec_argv("catalog", "build")),
            ("vector index", movierec_argv("index", "build")),
        ]
        if settings.simulator:  # its taste model is fitted once and cached in <data_dir>/simulator
            steps.append(("simulator model", movierec_argv("simulate", "--fit-only", "--metrics-port", "0")))
        for index, (title, argv) in enumerate(steps, start=1):
            print(f"[up] {title} ...", flush=True)
            step_started = time.monotonic()
            self.write_state("preparing", step=title, index=index, total=len(steps), detail="")
            code = self._run_step(title, index, len(steps), argv, env)
            if code != 0:
                raise StartupFailed(f"{title} failed (exit {code}); see the output above")
            print(f"[up] {title}: done in {time.monotonic() - step_started:.0f}s", flush=True)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(preparation_fingerprint(settings, env) + "\n")

    def _run_step(self, title: str, index: int, total: int, argv: tuple[str, ...], env: dict[str, str]) -> int:
        """Run one step, echo its output, record its last progress line; stop it on `down`."""
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=_set_parent_death_signal)
        assert process.stdout is not None
        fd = process.stdout.fileno()
        pending = b""
        try:
            while True:
                if self.stopping:
                    raise Stopped(title)
                ready, _, _ = select.select([fd], [], [], 0.5)
                if ready:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
                    pending = (pending + chunk)[-4096:]
                    detail = last_progress_line(pending)
                    if detail and time.monotonic() - self._last_state_write > 1.0:
                        self.write_state("preparing", step=title, index=index, total=total, detail=detail)
            return process.wait()
        finally:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            process.stdout.close()

    # -- services -----------------------------------------------------------------------------------

    def _wait_healthy(self, managed: Managed) -> bool:
        def outcome() -> str | None:
            if self.stopping:
                return "stopping"
            if managed.healthy():
                return "healthy"
            return None if managed.alive() else "exited"

        return wait_until(outcome, HEALTH_TIMEOUT_SECONDS, 0.25) == "healthy"

    def start_all(self) -> None:
        """Start the plan in order: a service starts once those it waits for are healthy."""
        specs = self.plan()
        self.logs.mkdir(parents=True, exist_ok=True)
        self.monitoring_dir.mkdir(parents=True, exist_ok=True)
        if any(s.name == "prometheus" for s in specs):
            write_monitoring_config(self.settings, specs, self.monitoring_dir)
        started: dict[str, Managed] = {}
        for spec in specs:
            for name in spec.wait_for:
                if name in started:
                    self._await(started[name], len(specs))
            if self.stopping:
                return
            managed = Managed(spec, self.logs / f"{spec.name}.log")
            self.services.append(managed)
            started[spec.name] = managed
            print(f"[up] starting {spec.name} ...", flush=True)
            managed.start()
            self._starting_state(len(specs), f"starting {spec.name}")
        for managed in self.services:
            self._await(managed, len(specs))
        if not self.stopping:
            self._starting_state(len(specs), "restoring release backends")
            restore_release_backends()
            self.write_state("ready")

    def _starting_state(self, total: int, step: str) -> None:
        self.write_state("starting", step=step, index=len(self._healthy), total=total)

    def _await(self, managed: Managed, total: int) -> None:
        """Wait until the service is healthy (once); a required one that is not aborts `up`."""
        if managed.spec.name in self._healthy or managed.failed or self.stopping:
            return
        self._starting_state(total, f"waiting for {managed.spec.name}")
        if self._wait_healthy(managed):
            self._healthy.add(managed.spec.name)
            print(f"[up] {managed.spec.name} is healthy", flush=True)
            self._starting_state(total, f"{managed.spec.name} healthy")
            return
        if self.stopping:
            return
        tail = _tail(managed.log_path)
        if managed.spec.required:
            raise StartupFailed(f"{managed.spec.name} did not become healthy; last log lines:\n{tail}")
        print(f"[up] WARNING: optional {managed.spec.name} is not healthy; log {managed.log_path}\n{tail}")
        managed.failed = True
        managed.stop()

    def table(self) -> str:
        rows = [("service", "status", "url", "log")]
        for m in self.services:
            status = "failed" if m.failed else ("healthy" if m.healthy() else "DOWN")
            rows.append((m.spec.name, status, m.spec.url or "-", str(m.log_path)))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)

    def check_once(self, now: float) -> bool:
        """Restart what crashed and is due, schedule restarts of new crashes; True when anything changed."""
        changed = False
        for m in self.services:
            if m.failed or self.stopping:
                continue
            if m.restart_at is not None:
                if now >= m.restart_at:
                    m.restart_at = None
                    m.restarts += 1
                    self.metrics.restarts.labels(m.spec.name).inc()
                    print(f"[up] restarting {m.spec.name} (restart {m.restarts})", flush=True)
                    m.start()
                    changed = True
                continue
            if m.alive():
                continue
            code = m.process.returncode if m.process else None
            m.stop()  # closes its log, reaps what is left of its session
            m.crashes.append(now)
            m.crashes = self.policy.recent(m.crashes, now)
            delay = self.policy.delay_after_crash(m.crashes, now)
            if delay is None:
                m.failed = True
                print(f"[up] {m.spec.name} died (exit {code}) {len(m.crashes)} times within "
                      f"{self.policy.window_seconds:g}s: marked failed. Log: {m.log_path}", flush=True)
            else:
                m.restart_at = now + delay
                print(f"[up] {m.spec.name} died (exit {code}); restarting in {delay:g}s. Log: {m.log_path}",
                      flush=True)
            changed = True
        return changed

    def watch(self) -> None:
        """Restart every service that dies (backoff), until it crashes too often; until stopped."""
        while not self.stopping:
            if self.check_once(time.monotonic()):
                self.write_state("ready")
            else:
                self.metrics.observe(self.services)
            time.sleep(WATCH_TICK_SECONDS)

    def stop_all(self) -> None:
        self.stopping = True
        self.write_state("stopping")
        stop_release_backends(self.settings)
        for m in reversed(self.services):
            if m.alive():
                print(f"[up] stopping {m.spec.name}", flush=True)
            m.stop()
        state_path(self.settings).unlink(missing_ok=True)


def restore_release_backends() -> None:
    """Start again the release processes the router still names (a promoted main, a nightly under
    evaluation) that the last `down` stopped; a failure is reported, never fatal to `up`."""
    from sqlalchemy.exc import SQLAlchemyError

    from load_balancer.release.restore import restore_backends
    from load_balancer.release.settings import ReleaseSettings

    try:
        for restored in restore_backends(ReleaseSettings.from_env()):
            print(f"[up] release backend {restored.text}", flush=True)
    except (SQLAlchemyError, OSError) as exc:
        print(f"[up] warning: could not restore the release backends: {exc}", flush=True)


def stop_release_backends(settings: UpSettings) -> None:
    """Stop the nightly processes that releases started for this data dir (the deployments table
    records them): they belong to the local platform, so `down` leaves none behind."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session

    from db_utils.models import Deployment
    from load_balancer.release.deploy import stop_backend
    from load_balancer.release.restore import process_running

    url = settings.common.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            handles = [(row.version, (row.metrics or {}).get("handle")) for row in session.scalars(select(Deployment))]
    except SQLAlchemyError:
        return
    finally:
        engine.dispose()
    for version, handle in handles:
        if not isinstance(handle, dict) or handle.get("kind") != "process":
            continue
        if process_running(handle, settings.common.data_dir):  # a recorded pid may have been reused
            print(f"[up] stopping release backend {version} (pid {handle['pid']})", flush=True)
            stop_backend(handle)


_PROGRESS_SPLIT = re.compile(rb"[\r\n]+")


def last_progress_line(output: bytes) -> str:
    """The last non-empty line or carriage-return segment (a tqdm bar's latest state)."""
    for segment in reversed(_PROGRESS_SPLIT.split(output)):
        text = segment.decode(errors="replace").strip()
        if text:
            return text[:200]
    return ""


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def ensure_admin_token(settings: UpSettings) -> None:
    """Without LB_ADMIN_TOKEN: the token file every admin client reads (created once, 0600)."""
    if settings.admin_token:
        return
    from load_balancer.router.admin_token import ensure_token

    path = ensure_token(settings.common.data_dir)
    print(f"[up] admin token: {path} (`movierec admin token` prints it)", flush=True)


def cmd_up(settings: UpSettings, args: argparse.Namespace) -> int:
    if args.detach:
        return _detach(settings, args)
    existing = _read_state(settings)
    if existing and _pid_alive(existing["pid"]):
        print(f"movierec is already running (supervisor pid {existing['pid']}); `movierec down` stops it.")
        return 1
    supervisor = Supervisor(settings)

    def _stop(signum: int, _frame: object) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    started = time.monotonic()
    supervisor.write_state("preparing", step="starting", index=0, total=5)
    if settings.supervisor_metrics_port:
        supervisor.metrics.serve(settings.supervisor_metrics_port)
    try:
        ensure_admin_token(settings)
        if not args.skip_data:
            supervisor.prepare_data()
        supervisor.start_all()
        if supervisor.stopping:
            return 0
        print(f"\n[up] platform ready in {time.monotonic() - started:.1f}s\n{supervisor.table()}\n", flush=True)
        print("[up] Ctrl-C stops everything.", flush=True)
        if args.run_seconds:
            wait_until(lambda: supervisor.stopping, args.run_seconds, 0.5)
            supervisor.stopping = True
        supervisor.watch()
        return 0
    except Stopped as exc:
        print(f"[up] stopped while preparing ({exc})", flush=True)
        return 0
    except StartupFailed as exc:
        print(f"[up] ERROR: {exc}", file=sys.stderr)
        return 1
    finally:
        supervisor.stop_all()
        print("[up] stopped", flush=True)


def _detach(settings: UpSettings, args: argparse.Namespace) -> int:
    logs = settings.common.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = open(logs / "supervisor.log", "ab")  # noqa: SIM115 - handed to the child
    argv = movierec_argv("up", *(["--skip-data"] if args.skip_data else []))
    process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    print(f"[up] supervisor started in the background (pid {process.pid}); log {logs / 'supervisor.log'}",
          flush=True)
    shown = ""

    def outcome() -> str | None:  # "exited" or "ready"; meanwhile prints each new progress line
        nonlocal shown
        if process.poll() is not None:
            return "exited"
        state = _read_state(settings)
        if state and state.get("pid") == process.pid:
            if state.get("phase") == "ready":
                return "ready"
            line = describe_progress(state)
            if line != shown:
                print(f"[up] {line}", flush=True)
                shown = line
        return None

    result = wait_until(outcome, 3600, 0.5)
    if result == "exited":
        print(f"[up] supervisor exited ({process.returncode}); see {logs / 'supervisor.log'}")
        return 1
    if result == "ready":
        return cmd_status(settings)
    return 1


def _read_state(settings: UpSettings) -> dict | None:  # type: ignore[type-arg]
    try:
        return json.loads(state_path(settings).read_text())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def describe_progress(state: dict[str, Any]) -> str:
    """`preparing: step 2/4 data fetch - <last output line>` for a state that is not ready yet."""
    progress = state.get("progress") or {}
    text = f"{state.get('phase')}"
    if progress.get("step"):
        counter = f" {progress['index']}/{progress['total']}" if progress.get("total") else ""
        text += f": step{counter} {progress['step']}"
    if progress.get("detail"):
        text += f" - {progress['detail']}"
    return text


def cmd_status(settings: UpSettings) -> int:
    state = _read_state(settings)
    if not state or not _pid_alive(state.get("pid")):
        print("movierec is not running (no live supervisor for data dir "
              f"{settings.common.data_dir})")
        return STATUS_NOT_RUNNING
    print(f"supervisor pid {state['pid']} ({describe_progress(state)}), data dir {state['data_dir']}")
    rows = [("service", "pid", "status", "restarts", "url")]
    all_ok = True
    for name, info in state["services"].items():
        alive = _pid_alive(info["pid"])
        ok = alive and (info["health_url"] is None or _http_ok(info["health_url"]))
        if info.get("failed"):
            status = "failed"
        elif info.get("restart_pending"):
            status = "restarting"
        else:
            status = "healthy" if ok else "running" if alive else "DOWN"
        all_ok &= status in {"healthy", "running"}
        rows.append((name, str(info["pid"]), status, str(info.get("restarts", 0)), info["url"] or "-"))
    if len(rows) > 1:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        print("\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows))
    if state.get("phase") in {"preparing", "starting"}:
        return STATUS_PREPARING
    return STATUS_OK if all_ok else STATUS_DEGRADED


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.RequestException:
        return False


def cmd_down(settings: UpSettings) -> int:
    state = _read_state(settings)
    if not state or not _pid_alive(state.get("pid")):
        print("movierec is not running")
        return 0
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not _pid_alive(pid), 90, 0.25)
    if _pid_alive(pid):
        print(f"supervisor {pid} did not stop in time; killing it (children receive SIGTERM)")
        os.kill(pid, signal.SIGKILL)
    print("movierec stopped")
    return 0


def main(argv: list[str]) -> int:
    command = argv[0]
    parser = argparse.ArgumentParser(prog=f"movierec {command}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="status exit codes: 0 all healthy, 1 a service is down or failed, "
                                            "3 not running, 4 still preparing or starting")
    if command == "up":
        parser.add_argument("--detach", "-d", action="store_true", help="run in the background")
        parser.add_argument("--skip-data", action="store_true", help="do not run data/catalogue/index steps")
        parser.add_argument("--run-seconds", type=float, default=0.0,
                            help="stop by itself after this long (demos and tests); 0 = until Ctrl-C")
    args = parser.parse_args(argv[1:])
    settings = UpSettings.from_env()
    if command == "up":
        return cmd_up(settings, args)
    if command == "status":
        return cmd_status(settings)
    return cmd_down(settings)
