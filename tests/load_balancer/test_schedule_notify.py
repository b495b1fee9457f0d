"""The crontab file and its scheduler, the Slack payloads, the undecided -> extend -> roll back path."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from load_balancer.release.notify import notify, slack_payload
from load_balancer.release.online_eval import run_online_eval
from load_balancer.release.schedule import ceil_minute, run_scheduler, schedule_once, scheduled_once, take_due_jobs
from load_balancer.release.settings import ReleaseSettings
from load_balancer.router.state import find_release, register_backend, update_release_metrics
from tests.load_balancer.helpers import ADMIN_TOKEN, router_settings


def test_ceil_minute() -> None:
    assert ceil_minute(datetime(2024, 1, 1, 10, 0, 0)) == datetime(2024, 1, 1, 10, 0)
    assert ceil_minute(datetime(2024, 1, 1, 10, 0, 1)) == datetime(2024, 1, 1, 10, 1)
    assert ceil_minute(datetime(2024, 12, 31, 23, 59, 30)) == datetime(2025, 1, 1, 0, 0)


def test_one_shot_jobs_run_once_when_due_even_if_the_minute_was_missed(tmp_path: Path) -> None:
    path = tmp_path / "crontab"
    at = schedule_once(path, "r1", "echo hello", datetime(2024, 5, 1, 10, 0, 30))
    assert at == datetime(2024, 5, 1, 10, 1)
    schedule_once(path, "r1", "echo again", datetime(2024, 5, 1, 10, 5))  # same key: replaced
    assert scheduled_once(path) == {"r1": datetime(2024, 5, 1, 10, 5)}
    assert "5 10 1 5 *" in path.read_text()
    assert take_due_jobs(path, datetime(2024, 5, 1, 10, 4, 59), datetime(2024, 5, 1, 10, 4)) == []
    # The scheduler was down at 10:05; at 10:07 the job still runs, once.
    due = take_due_jobs(path, datetime(2024, 5, 1, 10, 7), datetime(2024, 5, 1, 10, 6, 59))
    assert [command for _, command in due] == ["echo again"]
    assert scheduled_once(path) == {}
    assert take_due_jobs(path, datetime(2024, 5, 1, 10, 8), datetime(2024, 5, 1, 10, 7)) == []


def test_scheduler_runs_the_crontab_file(tmp_path: Path) -> None:
    path = tmp_path / "crontab"
    marker = tmp_path / "ran.txt"
    schedule_once(path, "k", f"{sys.executable} -c \"open('{marker}', 'a').write('x')\"",
                  datetime.now() - timedelta(minutes=1))
    run_scheduler(path, tick_seconds=0.2, log_path=tmp_path / "scheduler.log", max_seconds=1.5)
    assert marker.read_text() == "x"  # ran exactly once
    assert scheduled_once(path) == {}
    # `movierec scheduler --check` (the compose healthcheck) sees its heartbeat
    env = {**os.environ, "MOVIEREC_DATA_DIR": str(tmp_path)}
    check = [sys.executable, "-m", "movierec.cli", "scheduler", "--check"]
    assert subprocess.run(check, env=env, capture_output=True).returncode == 0
    (tmp_path / "crontab.heartbeat").unlink()
    assert subprocess.run(check, env=env, capture_output=True).returncode == 1


def test_slack_payload_format_and_delivery(slack_receiver) -> None:
    payload = slack_payload("promote", "Nightly v2 promoted", "better", {f"k{i}": i for i in range(12)})
    assert payload["text"].startswith(":rocket: Nightly v2 promoted")
    assert payload["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": "Nightly v2 promoted"}}
    assert [len(b["fields"]) for b in payload["blocks"] if "fields" in b] == [10, 2]
    assert notify(slack_receiver.url, payload)
    assert slack_receiver.payloads == [payload]
    assert not notify("", payload)  # no URL: log only
    assert not notify("http://127.0.0.1:9/hook", payload, timeout_seconds=1)  # unreachable: never raises


def test_undecided_looks_extend_until_the_maximum_window_then_roll_back(
        postgres_url, pg_engine: Engine, data_dir, start_backend, start_router, slack_receiver) -> None:
    _, main_server = start_backend("main-v1")
    _, nightly_server = start_backend("nightly-v2")
    _, router = start_router(router_settings(postgres_url, data_dir, LB_MAIN_URL=main_server.url))
    registered = datetime.now()
    with Session(pg_engine) as session:
        register_backend(session, "main", main_server.url, "main-v1")
        register_backend(session, "nightly", nightly_server.url, "nightly-v2", release_id="r-quiet", weight=0.2,
                         details={"registered_at": registered.isoformat()})
    settings = ReleaseSettings.from_env({
        "MOVIEREC_DATA_DIR": str(data_dir), "DATABASE_URL": postgres_url, "LB_ADMIN_URL": router.url,
        "LB_ADMIN_TOKEN": ADMIN_TOKEN, "RELEASE_WINDOW_MINUTES": "50", "RELEASE_LOOK_MINUTES": "30",
        "SLACK_WEBHOOK_URL": slack_receiver.url})
    assert run_online_eval("r-quiet", settings) == "extend"  # no traffic at all: too few users
    when = scheduled_once(settings.crontab_path)["r-quiet"]
    assert timedelta(minutes=29) < when - registered <= timedelta(minutes=31)  # one look interval later
    assert "window extended" in slack_receiver.payloads[-1]["text"]
    assert run_online_eval("r-quiet", settings) == "extend"
    # The next look would pass the maximum window: it is moved to the window's end.
    assert scheduled_once(settings.crontab_path)["r-quiet"] - registered <= timedelta(minutes=51)
    with Session(pg_engine) as session:  # the maximum window has passed: the last look decides
        update_release_metrics(session, "r-quiet", {"registered_at": (registered - timedelta(minutes=50)).isoformat()})
    assert run_online_eval("r-quiet", settings) == "rollback"
    with Session(pg_engine) as session:
        row = find_release(session, "r-quiet")
        assert row is not None and row.status == "rolled_back"
        assert "too few users" in row.metrics["decision_reason"]
        assert "maximum window" in row.metrics["decision_reason"]
        assert len(row.metrics["evaluations"]) == 3 and row.metrics["evaluations"][-1]["final_look"]
    assert "rolled back" in slack_receiver.payloads[-1]["text"]
    with pytest.raises(Exception, match="no longer the nightly"):
        run_online_eval("r-quiet", settings)


def test_scheduler_heartbeat_freshness() -> None:
    from load_balancer.release.schedule import heartbeat_is_fresh

    assert heartbeat_is_fresh(100.0, 120.0, 5.0)
    assert not heartbeat_is_fresh(100.0, 131.0, 5.0)
    assert heartbeat_is_fresh(100.0, 159.0, 20.0)  # three ticks when they are long
    assert not heartbeat_is_fresh(None, 100.0, 5.0)
