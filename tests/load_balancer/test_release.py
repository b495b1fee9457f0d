"""End-to-end releases on loopback: real git refs, the ref's own gate, a gunicorn nightly started
from a worktree, the router and the scheduler as `movierec` processes, a one-minute window, traffic
from a client loop that logs requests and watches through db_utils, Slack payloads captured."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from db_utils.models import Deployment
from load_balancer.release.deploy import stop_backend
from load_balancer.release.schedule import scheduled_once
from tests.load_balancer.helpers import wait_until
from tests.load_balancer.platform import (
    ClientLoop,
    Platform,
    clone_with_behaviours,
    git,
    platform_with_bad_main,
    release_row,
)

WINDOW_DEADLINE_SECONDS = 240  # one-minute window rounded up to cron's minute, plus the evaluation


@pytest.fixture
def clone(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "repo"
    return repo, clone_with_behaviours(repo, ["good", "flaky", "bad"])


@pytest.fixture
def platform(postgres_url: str, pg_engine: Engine, data_dir: Path, clone, slack_receiver) -> Iterator[Platform]:
    with platform_with_bad_main(postgres_url, pg_engine, data_dir, clone[0], slack_receiver.url) as running:
        yield running


def decided(engine: Engine, status: str):  # type: ignore[no-untyped-def]
    row = release_row(engine)
    return row if row is not None and row.status == status else None


def test_tagged_nightly_with_better_ranking_is_promoted(platform, clone, pg_engine, slack_receiver) -> None:
    repo, shas = clone
    installed = platform.run("hooks", "install", "--repo", str(repo))
    assert installed.returncode == 0, installed.stderr
    platform.start("scheduler", "scheduler", "--tick", "1")
    with ClientLoop(platform.router_url, pg_engine) as client:
        # The hook starts the release; it sees the tagging user's environment (DATABASE_URL, token, ...).
        git(repo, "tag", "release-recommender-nightly-good", shas["good"], environ=platform.env)
        row = wait_until(lambda: release_row(pg_engine), timeout_seconds=60, interval=0.5)
        release_id = row.metrics["release_id"]
        assert release_id.endswith(shas["good"][:8])
        wait_until(lambda: (platform.admin("GET", "/backends")["nightly"] or {}).get("release_id") == release_id,
                   timeout_seconds=90, interval=0.5)
        assert release_id in scheduled_once(platform.data_dir / "crontab")
        promoted = wait_until(lambda: decided(pg_engine, "promoted"), timeout_seconds=WINDOW_DEADLINE_SECONDS,
                              interval=1)
        wait_until(lambda: any("promoted to main" in p["text"] for p in slack_receiver.payloads),
                   timeout_seconds=30)
        # Every router worker follows the promotion within LB_STATE_POLL_SECONDS (the one that took the admin
        # call at once): a request may reach a worker that has not polled yet.
        after = wait_until(lambda: (r := requests.get(f"{platform.router_url}/recommend/3", timeout=5)).headers.get(
            "X-Served-By") == "main" and r, timeout_seconds=15, interval=0.2, what="the router serving the new main")
    assert client.stats.failures == []
    assert client.stats.versions.get(promoted.version, 0) > 50 and client.stats.versions.get("main-v1", 0) > 50
    assert promoted.role == "main" and promoted.metrics["decision"] == "promote"
    verdict = promoted.metrics["evaluations"][-1]
    assert verdict["verdict"]["decision"] == "promote"
    assert verdict["nightly"]["mean_user_hit_rate"] > verdict["main"]["mean_user_hit_rate"]
    listing = platform.admin("GET", "/backends")
    assert listing["main"]["version"] == promoted.version and listing["nightly"] is None
    assert after.headers["X-Model-Version"] == promoted.version and after.headers["X-Served-By"] == "main"
    assert release_id not in scheduled_once(platform.data_dir / "crontab")  # the job removed itself
    texts = [p["text"] for p in slack_receiver.payloads]
    assert any("is live" in t for t in texts) and any("promoted to main" in t for t in texts)
    assert all(isinstance(p["blocks"], list) and p["blocks"][0]["type"] == "header" for p in slack_receiver.payloads)
    assert 'movierec_release_decisions_total{decision="promote"}' in requests.get(
        f"{platform.router_url}/metrics", timeout=5).text

    # `movierec down` stops the promoted main with the rest (it is a release process, not an `up` service);
    # the next `up` (here: the same step on its own) starts it again from its worktree and the router follows.
    handle = promoted.metrics["handle"]
    assert stop_backend(handle)
    restored = platform.run("release", "restore")
    assert restored.returncode == 0 and f"main {promoted.version}: started again" in restored.stdout, restored.stdout
    with Session(pg_engine) as session:
        row = session.get(Deployment, promoted.id)
    assert row is not None and row.role == "main" and row.metrics["handle"]["pid"] != handle["pid"]
    assert row.metrics["restored"][-1]["from"] == promoted.url
    again = wait_until(lambda: (r := requests.get(f"{platform.router_url}/recommend/3", timeout=5)).status_code == 200
                       and r.headers.get("X-Model-Version") == promoted.version and r, timeout_seconds=30,
                       interval=0.25, what="the router serving the restored main")
    assert again.headers["X-Served-By"] == "main"
    assert "every release backend" in platform.run("release", "restore").stdout  # running: nothing to do
    stop_backend(row.metrics["handle"])


def test_failing_nightly_is_rolled_back_and_clients_see_no_failure(platform, clone, pg_engine,
                                                                   slack_receiver) -> None:
    repo, shas = clone
    platform.start("scheduler", "scheduler", "--tick", "1")
    with ClientLoop(platform.router_url, pg_engine) as client:
        released = platform.run("release", "nightly", shas["flaky"])
        assert released.returncode == 0, released.stderr + released.stdout
        row = release_row(pg_engine)
        pid = row.metrics["handle"]["pid"]
        assert psutil.pid_exists(pid)
        rolled = wait_until(lambda: decided(pg_engine, "rolled_back"), timeout_seconds=WINDOW_DEADLINE_SECONDS,
                            interval=1)
    assert client.stats.failures == []  # 500s and hangs were retried on main within the request
    assert client.stats.served_by.get("nightly", 0) == 0 and client.stats.requests > 100
    assert rolled.role == "retired" and rolled.weight == 0.0
    assert "answered only" in rolled.metrics["decision_reason"]
    assert platform.admin("GET", "/backends")["nightly"] is None
    # After the decision the job stops the nightly, removes its worktree, then notifies.
    wait_until(lambda: any("rolled back" in p["text"] for p in slack_receiver.payloads), timeout_seconds=30)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not Path(row.metrics["worktree"]).exists()
    metrics = requests.get(f"{platform.router_url}/metrics", timeout=5).text
    assert 'movierec_lb_backend_errors_total{backend="nightly",kind="http_5xx"}' in metrics
    assert 'movierec_lb_backend_errors_total{backend="nightly",kind="timeout"}' in metrics


def test_nightly_failing_the_offline_gate_is_never_started(platform, clone, pg_engine, slack_receiver) -> None:
    repo, shas = clone
    nightly_port = int(platform.env["RELEASE_NIGHTLY_PORT"])
    released = platform.run("release", "nightly", shas["good"], extra_env={"RELEASE_GATE_MIN_HR": "1.01"})
    assert released.returncode == 3
    assert "offline gate failed" in released.stderr and "exited 1" in released.stderr
    row = release_row(pg_engine)
    assert row.status == "gate_failed" and row.role == "retired" and "handle" not in row.metrics
    assert platform.admin("GET", "/backends")["nightly"] is None
    assert scheduled_once(platform.data_dir / "crontab") == {}
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{nightly_port}/health", timeout=2)
    assert not Path(row.metrics["worktree"]).exists()
    gate_log = platform.data_dir / "releases" / row.metrics["release_id"] / "gate.log"
    assert "HR 1.000 (minimum 1.01)" in gate_log.read_text()  # the ref's own evaluation ran and judged
    payload = slack_receiver.payloads[-1]
    assert "stopped" in payload["text"] and payload["blocks"][0]["type"] == "header"


def test_release_mirrors_a_read_only_checkout(tmp_path: Path) -> None:
    """RELEASE_REPO_URL (compose: the CI checkout mounted at /repo): a bare mirror under the data dir,
    created once, refreshed with new tags later."""
    from load_balancer.release.pipeline import mirror_repo

    source = tmp_path / "src"
    source.mkdir()
    run = lambda *a: subprocess.run(["git", "-C", str(source), *a], check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    (source / "f").write_text("1")
    run("add", "f")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    run("tag", "release-a")
    def owned_by_someone_else(owner: str) -> None:  # as a checkout mounted into the scheduler's container
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", owner, str(source)], check=True)

    owned_by_someone_else("12345:12345")
    mirror = mirror_repo(str(source), tmp_path / "data" / "releases" / "repo.git")
    tags = lambda: subprocess.run(["git", "-C", str(mirror), "tag"], capture_output=True, text=True).stdout.split()  # noqa: E731
    assert tags() == ["release-a"]
    owned_by_someone_else("0:0")
    run("tag", "release-b")
    owned_by_someone_else("12345:12345")
    assert mirror_repo(str(source), mirror) == mirror
    assert tags() == ["release-a", "release-b"]
