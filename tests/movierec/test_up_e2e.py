"""`movierec up` end to end: the whole local platform for about a minute, then a clean stop.

The data dir is a temporary copy of the real test data (catalogue, vector index, taste model), so
`up` runs every preparation step for real (each finds its work done) and a fresh SQLite database.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from movierec.base.ports import free_port
from tests.movierec.leftovers import processes_using

pytestmark = pytest.mark.slow

COPIED = ("raw", "catalog", "chroma", "index", "simulator")


def _environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UP_", "LB_", "SIM_", "PARSER_", "DATABASE_URL"))}
    env.update({
        "MOVIEREC_DATA_DIR": str(data_dir),
        "UP_KAFKA_PORT": str(free_port()),
        "PARSER_METRICS_PORT": str(free_port()),
        "UP_MAIN_PORT": str(free_port()),
        "UP_NIGHTLY_PORT": str(free_port()),
        "UP_ROUTER_PORT": str(free_port()),
        "SIM_METRICS_PORT": str(free_port()),
        "UP_DASHBOARD_PORT": str(free_port()),
        "UP_PROMETHEUS_PORT": str(free_port()),
        "UP_ALERTMANAGER_PORT": str(free_port()),
        "UP_SIMULATOR_RATE": "300",
        "UP_SIMULATOR_USERS": "20000",
        "SIM_SPEED": "60",
        "LB_ADMIN_TOKEN": "e2e-token",
        "PARSER_BATCH_MAX_SECONDS": "0.5",
        "PARSER_SESSION_TIMEOUT_MS": "6000",
    })
    return env


def _state(data_dir: Path) -> dict | None:
    try:
        return json.loads((data_dir / "run" / "supervisor.json").read_text())
    except (OSError, ValueError):
        return None


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_up_runs_the_platform_and_stops_cleanly(real_index_dir: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    for name in COPIED:
        if (real_index_dir / name).exists():
            shutil.copytree(real_index_dir / name, data_dir / name)
    env = _environment(data_dir)
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    up = subprocess.Popen([sys.executable, "-m", "movierec.cli", "up"], env=env, stdout=log,
                          stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            state = _state(data_dir)
            if state and state["phase"] == "ready":
                break
            assert up.poll() is None, (tmp_path / "up.log").read_text()[-4000:]
            time.sleep(1)
        else:
            pytest.fail("movierec up was not ready in time:\n" + (tmp_path / "up.log").read_text()[-4000:])
        services = state["services"]
        for required in ("broker", "parser", "inference-main", "inference-nightly", "router", "scheduler",
                         "dashboard", "simulator"):
            assert required in services and not services[required]["failed"], required

        router = f"http://127.0.0.1:{env['UP_ROUTER_PORT']}"
        answer = requests.get(f"{router}/recommend/42", timeout=5)
        assert answer.status_code == 200
        assert len(answer.text.strip().split(",")) == 20
        assert answer.headers["X-Served-By"] in {"main", "nightly"}

        for name, info in services.items():
            if name in {"broker", "scheduler"} or info["failed"]:
                continue
            port = info["port"]
            path = "/-/healthy" if name in {"prometheus", "alertmanager"} else "/metrics"
            assert requests.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 200, name

        status = subprocess.run([sys.executable, "-m", "movierec.cli", "status"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "router" in status.stdout and "healthy" in status.stdout

        # The simulator's events travel through the broker and the parser into the database.
        db = data_dir / "movierec.db"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if _count(db, "watches") > 0 and _count(db, "recommendations") > 0:
                break
            time.sleep(2)
        assert _count(db, "watches") > 0, (data_dir / "logs" / "parser.log").read_text()[-3000:]
        assert _count(db, "recommendations") > 0
        assert _count(db, "movies") > 27000

        down = subprocess.run([sys.executable, "-m", "movierec.cli", "down"], env=env, capture_output=True,
                              text=True, timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        up.wait(timeout=60)
        assert up.returncode == 0
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=60)
        log.close()
    time.sleep(1)
    assert processes_using(data_dir) == [], "processes left behind after movierec down"
    assert _state(data_dir) is None
    text = (tmp_path / "up.log").read_text()
    assert "platform ready" in text and "[up] stopped" in text
