"""`movierec simulate` as users run it: options, file output, JSON summary, /metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from flask import Flask, Response

from data_parsing.parser import parse_line
from movierec.base.ports import free_port, wait_for_port
from simulator.cli import main
from simulator.tastes import TasteParams, Tastes
from simulator.tastes_store import fingerprint_for, save_tastes
from tests.simulator.conftest import http_server


@pytest.fixture
def sim_data_dir(tmp_path: Path, small_tastes: Tastes) -> Path:
    """A data dir whose cached taste model (rank 8) is the synthetic one: no real data needed."""
    data_dir = tmp_path / "var"
    fingerprint = fingerprint_for(data_dir, TasteParams(rank=8))
    save_tastes(small_tastes, data_dir / "simulator" / "tastes-r8-s0.npz", fingerprint)
    return data_dir


def cli_args(data_dir: Path, *extra: str) -> list[str]:
    return ["simulate", "--data-dir", str(data_dir), "--rank", "8", "--users", "5000", "--metrics-port", "0",
            "--start", "2024-01-01T00:00:00", *extra]


def test_file_output_is_reproducible_and_parses(sim_data_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    outputs = []
    for name in ("a.txt", "b.txt"):
        path = tmp_path / name
        args = cli_args(sim_data_dir, "--speed", "0", "--max-events", "800", "--recommend-fraction", "0",
                        "--seed", "9", "--output", f"file:{path}")
        assert main(args) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["events_total"] == 800
        outputs.append(path.read_text())
    assert outputs[0] == outputs[1]
    lines = outputs[0].splitlines()
    assert len(lines) == 800 and all(parse_line(line.encode()) for line in lines)
    assert lines[0].startswith("2024-01-01T")


def test_speed_zero_needs_a_bound(sim_data_dir: Path) -> None:
    assert main(cli_args(sim_data_dir, "--speed", "0")) == 2


def test_metrics_and_summary_of_a_running_simulator(sim_data_dir: Path, tmp_path: Path) -> None:
    app = Flask("lists")

    @app.get("/recommend/<int:user_id>")
    def recommend(user_id: int) -> Response:
        return Response("film+1+2000,film+2+2001", headers={"X-Model-Version": "cli-v1"})

    metrics_port = free_port()
    out = tmp_path / "stream.txt"
    with http_server(app) as url:
        process = subprocess.Popen(
            [sys.executable, "-m", "movierec.cli", *cli_args(sim_data_dir, "--speed", "0", "--rate", "300",
             "--duration", "6", "--recommend-fraction", "1", "--sessions-per-user-day", "50",
             "--recommend-url", url, "--output", f"file:{out}"), "--metrics-port", str(metrics_port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "LOG_LEVEL": "WARNING"},
        )
        try:
            wait_for_port("127.0.0.1", metrics_port, timeout_seconds=30)
            time.sleep(2)
            text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            stdout, stderr = process.communicate(timeout=60)
        finally:
            process.kill()
    assert process.returncode == 0, stderr
    for name in ('movierec_sim_events_total{type="watch"}', 'movierec_sim_recommendation_requests_total{status="200"}',
                 'movierec_sim_hit_rate{version="cli-v1"}', 'movierec_sim_best_hit_rate{version="cli-v1"}',
                 "movierec_sim_active_sessions", 'movierec_build_info{service="simulator"'):
        assert name in text
    summary = json.loads(stdout)
    assert summary["versions"]["cli-v1"]["requests"] > 0
    assert summary["events_total"] == len(out.read_text().splitlines())
