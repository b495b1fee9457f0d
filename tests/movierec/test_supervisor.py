"""The supervisor's restart policy, progress display and admin token, with real child processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from load_balancer.release.settings import ReleaseSettings
from load_balancer.router.admin_token import ensure_token, read_token, token_path
from load_balancer.router.settings import RouterSettings
from movierec.base.ports import free_port
from movierec.services import ServiceSpec, UpSettings
from movierec.supervisor import (
    RestartPolicy,
    Supervisor,
    cmd_status,
    describe_progress,
    last_progress_line,
)
from tests.support import wait_until

REPO = Path(__file__).resolve().parents[2]


def test_backoff_doubles_to_the_max_and_gives_up_after_n_crashes_in_the_window() -> None:
    policy = RestartPolicy(initial_seconds=1, max_seconds=30, max_crashes=8, window_seconds=600)
    crashes: list[float] = []
    delays = []
    for k in range(8):
        crashes.append(100.0 + k)
        delays.append(policy.delay_after_crash(crashes, 100.0 + k))
    assert delays == [1, 2, 4, 8, 16, 30, 30, None]
    # Crashes older than the window no longer count: a service that crashes rarely restarts at once.
    assert policy.delay_after_crash([0.0, 1.0, 2.0, 1000.0], 1000.0) == 1
    assert policy.recent([0.0, 500.0, 1000.0], 1000.0) == [500.0, 1000.0]


def test_progress_line_is_the_latest_tqdm_state() -> None:
    output = b"embedding:  10%|#  | 100/1000\rembedding:  20%|## | 200/1000\r"
    assert last_progress_line(output) == "embedding:  20%|## | 200/1000"
    assert last_progress_line(b"line one\nline two\n\n") == "line two"
    state = {"phase": "preparing", "progress": {"step": "vector index", "index": 4, "total": 4, "detail": "20%"}}
    assert describe_progress(state) == "preparing: step 4/4 vector index - 20%"


def test_admin_token_is_created_once_owner_only_and_the_variable_wins(tmp_path: Path) -> None:
    assert read_token(tmp_path) == ""
    path = ensure_token(tmp_path)
    assert path == token_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    token = read_token(tmp_path)
    assert len(token) >= 40
    ensure_token(tmp_path)
    assert read_token(tmp_path) == token  # kept across runs
    environ = {"MOVIEREC_DATA_DIR": str(tmp_path)}
    assert RouterSettings.from_env(environ).admin_token == token
    assert ReleaseSettings.from_env(environ).admin_token == token
    assert RouterSettings.from_env({**environ, "LB_ADMIN_TOKEN": "mine"}).admin_token == "mine"
    assert token not in repr(RouterSettings.from_env(environ))


def test_admin_token_command_prints_the_file_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"LB_ADMIN_TOKEN", "MOVIEREC_ENV_FILE"}}
    env.update({"MOVIEREC_DATA_DIR": str(tmp_path), "PYTHONPATH": str(REPO)})
    missing = subprocess.run([sys.executable, "-m", "movierec.cli", "admin", "token"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "movierec up" in missing.stderr
    ensure_token(tmp_path)
    shown = subprocess.run([sys.executable, "-m", "movierec.cli", "admin", "token"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and shown.stdout.strip() == read_token(tmp_path)


def _crashing(seconds: float) -> tuple[str, ...]:
    return (sys.executable, "-c", f"import time; time.sleep({seconds}); raise SystemExit(3)")


def test_a_crashing_service_is_restarted_with_backoff_then_marked_failed(tmp_path: Path, capsys) -> None:
    metrics_port = free_port()
    settings = UpSettings.from_env({
        "MOVIEREC_DATA_DIR": str(tmp_path), "UP_RESTART_BACKOFF_INITIAL_SECONDS": "0.2",
        "UP_RESTART_BACKOFF_MAX_SECONDS": "0.8", "UP_RESTART_MAX_CRASHES": "5", "UP_RESTART_WINDOW_SECONDS": "120",
        "UP_SUPERVISOR_METRICS_PORT": str(metrics_port),
    })
    specs = [ServiceSpec("crasher", _crashing(0.1)),
             ServiceSpec("steady", (sys.executable, "-c", "import time; time.sleep(120)"))]
    supervisor = Supervisor(settings, specs)
    supervisor.metrics.serve(metrics_port)
    supervisor.start_all()
    crasher = supervisor.services[0]
    starts = []
    original_start = crasher.start

    def recording_start() -> None:
        starts.append(time.monotonic())
        original_start()

    crasher.start = recording_start  # type: ignore[method-assign]
    watcher = threading.Thread(target=supervisor.watch, daemon=True)
    watcher.start()
    try:
        wait_until(lambda: crasher.failed, timeout_seconds=60, interval=0.1)
        assert crasher.restarts == 4 and len(crasher.crashes) == 5
        # Gaps between restarts: 0.1 s of running + a backoff of 0.2, 0.4, 0.8, 0.8 (capped).
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        for gap, backoff in zip(gaps, (0.4, 0.8, 0.8), strict=False):
            assert gap >= backoff + 0.1 - 0.05, gaps
        assert gaps[1] > gaps[0] + 0.1, gaps
        steady = supervisor.services[1]
        assert steady.alive() and steady.restarts == 0 and not steady.failed
        assert cmd_status(settings) == 1  # a failed service: degraded
        out = capsys.readouterr().out
        assert "crasher" in out and "failed" in out
        crasher_row = next(line for line in out.splitlines() if line.startswith("crasher"))
        assert crasher_row.split()[3] == "4"  # restarts column
        text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert 'movierec_supervisor_service_failed{service="crasher"} 1.0' in text
        assert 'movierec_supervisor_service_failed{service="steady"} 0.0' in text
        assert 'movierec_supervisor_restarts_total{service="crasher"} 4.0' in text
        assert 'movierec_supervisor_service_up{service="steady"} 1.0' in text
    finally:
        supervisor.stop_all()
        watcher.join(timeout=10)
    assert not any(m.alive() for m in supervisor.services)


def test_a_service_killed_twice_comes_back_both_times(tmp_path: Path) -> None:
    settings = UpSettings.from_env({"MOVIEREC_DATA_DIR": str(tmp_path), "UP_SUPERVISOR_METRICS_PORT": "0"})
    supervisor = Supervisor(settings, [ServiceSpec("sleeper", (sys.executable, "-c", "import time; time.sleep(120)"))])
    supervisor.start_all()
    watcher = threading.Thread(target=supervisor.watch, daemon=True)
    watcher.start()
    try:
        managed = supervisor.services[0]
        for kill in (1, 2):
            pid = managed.process.pid
            os.kill(pid, 9)
            wait_until(lambda pid=pid: managed.alive() and managed.process.pid != pid, timeout_seconds=30,
                       interval=0.1)
            assert managed.restarts == kill and not managed.failed
    finally:
        supervisor.stop_all()
        watcher.join(timeout=10)


@pytest.mark.parametrize("phase", ["preparing", "starting"])
def test_status_exits_4_while_preparing(tmp_path: Path, phase: str, capsys) -> None:
    settings = UpSettings.from_env({"MOVIEREC_DATA_DIR": str(tmp_path), "UP_SUPERVISOR_METRICS_PORT": "0"})
    supervisor = Supervisor(settings, [])
    supervisor.write_state(phase, step="data fetch", index=2, total=4, detail="extracting ml-1m")
    assert cmd_status(settings) == 4
    assert "step 2/4 data fetch - extracting ml-1m" in capsys.readouterr().out


def test_preparation_fingerprint_changes_with_the_outputs_and_settings_only(tmp_path: Path) -> None:
    from movierec.supervisor import preparation_fingerprint

    (tmp_path / "catalog").mkdir()
    (tmp_path / "index").mkdir()
    (tmp_path / "catalog" / "movies.parquet").write_bytes(b"x" * 100)
    (tmp_path / "index" / "neighbours.npz").write_bytes(b"y" * 100)
    settings = UpSettings.from_env({"MOVIEREC_DATA_DIR": str(tmp_path)})
    first = preparation_fingerprint(settings, {})
    assert preparation_fingerprint(settings, {}) == first
    assert preparation_fingerprint(settings, {"MOVIEREC_CATALOG_SIZE": "100"}) != first
    (tmp_path / "index" / "neighbours.npz").write_bytes(b"z" * 101)
    second = preparation_fingerprint(settings, {})
    assert second != first
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "parser.log").write_text("what the services write does not count")
    assert preparation_fingerprint(settings, {}) == second
    other_db = UpSettings.from_env({"MOVIEREC_DATA_DIR": str(tmp_path), "DATABASE_URL": "sqlite:////elsewhere.db"})
    assert preparation_fingerprint(other_db, {}) != second
