"""Local Prometheus and Alertmanager (Debian binaries) on loopback ports, for the supervisor and tests.

`write_local_configs` renders prometheus.yml, alert_rules.yml and alertmanager.yml into a
directory; `start_prometheus` / `start_alertmanager` run the binaries with their storage in
that directory and wait until `/-/ready` answers; `MonitoringProcess.stop()` ends them.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from monitoring.config import render_alert_rules, render_alertmanager_config, render_prometheus_config
from movierec.base.waiting import wait_until

LOOPBACK = "127.0.0.1"


class MonitoringUnavailable(RuntimeError):
    """A Prometheus/Alertmanager binary is missing or did not become ready."""


@dataclass(frozen=True)
class LocalConfigPaths:
    directory: Path
    prometheus: Path
    rules: Path
    alertmanager: Path


@dataclass
class MonitoringProcess:
    """A running Prometheus or Alertmanager."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout_seconds: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> MonitoringProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def find_binary(name: str) -> Path | None:
    """Absolute path of a binary on PATH (e.g. `prometheus`, `promtool`, `prometheus-alertmanager`)."""
    found = shutil.which(name)
    return Path(found) if found else None


def write_local_configs(
    directory: Path,
    targets: Mapping[str, list[str]],
    *,
    alertmanager: str | None,
    slack_webhook_url: str | None = None,
    slack_channel: str = "#movierec-alerts",
    scrape_interval: str = "15s",
    evaluation_interval: str = "15s",
    alert_for: str | None = None,
    group_wait: str = "30s",
    group_interval: str = "5m",
    repeat_interval: str = "4h",
) -> LocalConfigPaths:
    """Render the local variants into `directory` (targets: job -> ["127.0.0.1:port"]).

    `alert_for` replaces every rule's `for:` (short windows in tests and demos); the group_*
    intervals tune how fast Alertmanager notifies.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = LocalConfigPaths(
        directory=directory,
        prometheus=directory / "prometheus.yml",
        rules=directory / "alert_rules.yml",
        alertmanager=directory / "alertmanager.yml",
    )
    paths.rules.write_text(render_alert_rules(alert_for))
    paths.prometheus.write_text(render_prometheus_config(
        targets, alertmanager, paths.rules.name,
        scrape_interval=scrape_interval, evaluation_interval=evaluation_interval,
    ))
    paths.alertmanager.write_text(render_alertmanager_config(
        slack_api_url=slack_webhook_url or None, channel=slack_channel,
        group_wait=group_wait, group_interval=group_interval, repeat_interval=repeat_interval,
    ))
    return paths


def wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_seconds: float) -> None:
    """Poll `<url>/-/ready` until it answers 200; fail early if the process exits."""

    def ready() -> bool:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise MonitoringUnavailable(f"{url} exited with code {process.returncode}:\n{tail}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/-/ready", timeout=1.0).status_code == 200:
                return True
        return False

    if wait_until(ready, timeout_seconds, 0.1):
        return
    process.kill()
    process.wait()
    raise MonitoringUnavailable(f"{url} not ready after {timeout_seconds}s (log: {log_path})")


def prometheus_argv(executable: Path, config_path: Path, port: int, storage_dir: Path) -> list[str]:
    """The command line of a local Prometheus on 127.0.0.1:`port` (used here and by `movierec up`)."""
    return [
        str(executable), f"--config.file={config_path}", f"--storage.tsdb.path={storage_dir}",
        f"--web.listen-address={LOOPBACK}:{port}", "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=7d",
    ]


def alertmanager_argv(executable: Path, config_path: Path, port: int, storage_dir: Path) -> list[str]:
    """The command line of a local Alertmanager, clustering off (one machine)."""
    return [
        str(executable), f"--config.file={config_path}", f"--storage.path={storage_dir}",
        f"--web.listen-address={LOOPBACK}:{port}", "--cluster.listen-address=",
    ]


def _start(name: str, argv: list[str], url: str, log_path: Path, timeout_seconds: float) -> MonitoringProcess:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_ready(url, process, log_path, timeout_seconds)
    return MonitoringProcess(name=name, url=url, process=process, log_path=log_path)


def start_prometheus(
    config_path: Path, port: int, storage_dir: Path, *, binary: str = "prometheus",
    log_path: Path | None = None, timeout_seconds: float = 30.0,
) -> MonitoringProcess:
    """Run Prometheus on 127.0.0.1:`port` with its TSDB in `storage_dir`; returns once ready."""
    executable = find_binary(binary)
    if executable is None:
        raise MonitoringUnavailable(f"{binary} not found (apt-get install -y prometheus)")
    storage_dir.mkdir(parents=True, exist_ok=True)
    argv = prometheus_argv(executable, config_path, port, storage_dir)
    return _start("prometheus", argv, f"http://{LOOPBACK}:{port}", log_path or storage_dir / "prometheus.log",
                  timeout_seconds)


def start_alertmanager(
    config_path: Path, port: int, storage_dir: Path, *, binary: str = "prometheus-alertmanager",
    log_path: Path | None = None, timeout_seconds: float = 30.0,
) -> MonitoringProcess:
    """Run Alertmanager on 127.0.0.1:`port`, clustering off (one machine); returns once ready."""
    executable = find_binary(binary)
    if executable is None:
        raise MonitoringUnavailable(f"{binary} not found (apt-get install -y prometheus-alertmanager)")
    storage_dir.mkdir(parents=True, exist_ok=True)
    argv = alertmanager_argv(executable, config_path, port, storage_dir)
    return _start("alertmanager", argv, f"http://{LOOPBACK}:{port}", log_path or storage_dir / "alertmanager.log",
                  timeout_seconds)
