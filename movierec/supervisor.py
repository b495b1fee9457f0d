"""`movierec up | status | down`: the whole platform as local processes on embedded defaults.

`up` prepares the data (migrations, data, catalogue, index: each step idempotent), starts every
service of `movierec.services.plan_services` in order, waits for each health check, prints one
table of URLs, restarts a service that dies (once) and stops everything on Ctrl-C / SIGTERM.
Children get PDEATHSIG, so even a killed supervisor leaves no orphan behind.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import requests

from movierec.services import ServiceSpec, UpSettings, movierec_argv, plan_services, scrape_targets
from movierec.testing import tansu_binary, wait_for_port

log = logging.getLogger("movierec.supervisor")

HEALTH_TIMEOUT_SECONDS = 180.0
STOP_GRACE_SECONDS = 15.0


class StartupFailed(RuntimeError):
    """A required service did not become healthy."""


def _set_parent_death_signal() -> None:
    # Linux: the child receives SIGTERM when the supervisor dies, however it dies.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Managed:
    spec: ServiceSpec
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    failed: bool = False
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
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def run_dir(settings: UpSettings) -> Path:
    return settings.common.data_dir / "run"


def state_path(settings: UpSettings) -> Path:
    return run_dir(settings) / "supervisor.json"


def prepare_data(settings: UpSettings) -> None:
    """Migrations, data, catalogue and index: each step is skipped or incremental when done."""
    data_dir = settings.common.data_dir
    steps: list[tuple[str, tuple[str, ...], bool]] = [
        ("database migrations", movierec_argv("db", "upgrade"), True),
        ("data fetch", movierec_argv("data", "fetch"), True),
        # Reuses its files when the data is unchanged (under a second) and (re)loads the movies table.
        ("catalogue", movierec_argv("catalog", "build"), True),
        ("vector index", movierec_argv("index", "build"), True),
    ]
    env = {**os.environ, "MOVIEREC_DATA_DIR": str(data_dir), "DATABASE_URL": settings.common.database_url}
    for title, argv, needed in steps:
        if not needed:
            print(f"[up] {title}: ready")
            continue
        print(f"[up] {title} ...", flush=True)
        started = time.monotonic()
        result = subprocess.run(argv, env=env)
        if result.returncode != 0:
            raise StartupFailed(f"{title} failed (exit {result.returncode}); see the output above")
        print(f"[up] {title}: done in {time.monotonic() - started:.0f}s", flush=True)


def write_monitoring_config(settings: UpSettings, specs: list[ServiceSpec], directory: Path) -> None:
    """Render the local Prometheus and Alertmanager configs for the planned ports."""
    from monitoring.local import write_local_configs

    write_local_configs(
        directory,
        targets=scrape_targets(specs),
        alertmanager=f"127.0.0.1:{settings.alertmanager_port}",
        slack_webhook_url=settings.slack_webhook_url or None,
    )


class Supervisor:
    def __init__(self, settings: UpSettings) -> None:
        self.settings = settings
        self.logs = settings.common.data_dir / "logs"
        self.monitoring_dir = run_dir(settings) / "monitoring"
        self.services: list[Managed] = []
        self.stopping = False

    def plan(self) -> list[ServiceSpec]:
        from monitoring.local import find_binary

        return plan_services(
            self.settings, tansu=tansu_binary(), prometheus=find_binary("prometheus"),
            alertmanager=find_binary("prometheus-alertmanager"), monitoring_dir=self.monitoring_dir,
        )

    def _write_state(self, phase: str) -> None:
        state = {
            "pid": os.getpid(),
            "phase": phase,
            "data_dir": str(self.settings.common.data_dir),
            "services": {
                m.spec.name: {"pid": m.process.pid if m.process else None, "url": m.spec.url,
                              "health_url": m.spec.health_url, "port": m.spec.port,
                              "log": str(m.log_path), "restarts": m.restarts, "failed": m.failed}
                for m in self.services
            },
        }
        path = state_path(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)

    def _wait_healthy(self, managed: Managed) -> bool:
        deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not self.stopping:
            if managed.healthy():
                return True
            if not managed.alive():
                return False
            time.sleep(0.25)
        return False

    def start_all(self) -> None:
        specs = self.plan()
        self.logs.mkdir(parents=True, exist_ok=True)
        self.monitoring_dir.mkdir(parents=True, exist_ok=True)
        if any(s.name == "prometheus" for s in specs):
            write_monitoring_config(self.settings, specs, self.monitoring_dir)
        for spec in specs:
            if self.stopping:
                return
            managed = Managed(spec, self.logs / f"{spec.name}.log")
            self.services.append(managed)
            print(f"[up] starting {spec.name} ...", flush=True)
            managed.start()
            self._write_state("starting")
            if not self._wait_healthy(managed):
                tail = _tail(managed.log_path)
                if spec.required:
                    raise StartupFailed(f"{spec.name} did not become healthy; last log lines:\n{tail}")
                print(f"[up] WARNING: optional {spec.name} is not healthy; log {managed.log_path}\n{tail}")
                managed.failed = True
                managed.stop()
        self._write_state("ready")

    def table(self) -> str:
        rows = [("service", "status", "url", "log")]
        for m in self.services:
            status = "failed" if m.failed else ("healthy" if m.healthy() else "DOWN")
            rows.append((m.spec.name, status, m.spec.url or "-", str(m.log_path)))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)

    def watch(self) -> None:
        """Restart a service that dies, once; a second death is reported and left down."""
        while not self.stopping:
            for m in self.services:
                if m.failed or m.alive() or self.stopping:
                    continue
                code = m.process.returncode if m.process else None
                if m.restarts >= 1:
                    m.failed = True
                    print(f"[up] {m.spec.name} died again (exit {code}); left down. Log: {m.log_path}", flush=True)
                else:
                    m.restarts += 1
                    print(f"[up] {m.spec.name} died (exit {code}); restarting once. Log: {m.log_path}", flush=True)
                    m.stop()
                    m.start()
                self._write_state("ready")
            time.sleep(1.0)

    def stop_all(self) -> None:
        self.stopping = True
        for m in reversed(self.services):
            if m.alive():
                print(f"[up] stopping {m.spec.name}", flush=True)
            m.stop()
        state_path(self.settings).unlink(missing_ok=True)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def cmd_up(settings: UpSettings, args: argparse.Namespace) -> int:
    if args.detach:
        return _detach(settings)
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
    try:
        if not args.skip_data:
            prepare_data(settings)
        supervisor.start_all()
        if supervisor.stopping:
            return 0
        print(f"\n[up] platform ready in {time.monotonic() - started:.0f}s\n{supervisor.table()}\n", flush=True)
        print("[up] Ctrl-C stops everything.", flush=True)
        if args.run_seconds:
            deadline = time.monotonic() + args.run_seconds
            while time.monotonic() < deadline and not supervisor.stopping:
                time.sleep(0.5)
            supervisor.stopping = True
        supervisor.watch()
        return 0
    except StartupFailed as exc:
        print(f"[up] ERROR: {exc}", file=sys.stderr)
        return 1
    finally:
        supervisor.stop_all()
        print("[up] stopped", flush=True)


def _detach(settings: UpSettings) -> int:
    logs = settings.common.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = open(logs / "supervisor.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(movierec_argv("up"), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    print(f"[up] supervisor started in the background (pid {process.pid}); log {logs / 'supervisor.log'}")
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            print(f"[up] supervisor exited ({process.returncode}); see {logs / 'supervisor.log'}")
            return 1
        state = _read_state(settings)
        if state and state.get("phase") == "ready":
            return cmd_status(settings)
        time.sleep(1)
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
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def cmd_status(settings: UpSettings) -> int:
    state = _read_state(settings)
    if not state or not _pid_alive(state.get("pid")):
        print("movierec is not running (no live supervisor for data dir "
              f"{settings.common.data_dir})")
        return 3
    rows = [("service", "pid", "status", "url")]
    all_ok = True
    for name, info in state["services"].items():
        alive = _pid_alive(info["pid"])
        ok = alive and (info["health_url"] is None or _http_ok(info["health_url"]))
        status = "failed" if info.get("failed") else "healthy" if ok else "running" if alive else "DOWN"
        all_ok &= status in {"healthy", "running"} or info.get("failed", False)
        rows.append((name, str(info["pid"]), status, info["url"] or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print(f"supervisor pid {state['pid']} ({state['phase']}), data dir {state['data_dir']}")
    print("\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows))
    return 0 if all_ok else 1


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
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.25)
    if _pid_alive(pid):
        print(f"supervisor {pid} did not stop in time; killing it (children receive SIGTERM)")
        os.kill(pid, signal.SIGKILL)
    print("movierec stopped")
    return 0


def main(argv: list[str]) -> int:
    command = argv[0]
    parser = argparse.ArgumentParser(prog=f"movierec {command}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
