"""README's journey on a fresh clone, as a user runs it, with no LB_ADMIN_TOKEN anywhere.

A scratch clone of this repository gets its configuration the way README says: `.env.example`
copied to `.env` and edited (free ports, a one-minute release window, Slack pointing at a local
receiver). Its data dir (`./var`, the default) is seeded with the real catalogue and index the tests
build. Then, from the clone: `movierec up` (stopped by `movierec down` while still preparing, which
`movierec status` shows with exit code 4), `movierec up --detach`, `movierec hooks install`,
`git tag release-recommender-nightly-<x>`. Within 60 s the nightly is registered (the admin API is
reached with the token `movierec up` made, printed by `movierec admin token`) and serves its share
through the router; the parser is killed with SIGKILL twice and comes back both times with no event
of the stream lost; the online evaluation decides; Slack gets "release started" and the decision;
`movierec down` leaves no process behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from data_parsing.parser import MalformedLine, RatingEvent, RecommendationEvent, WatchEvent, parse_line
from movierec.base.ports import free_port
from tests.load_balancer.conftest import Webhook, slack_receiver  # noqa: F401 - the fixture
from tests.movierec.leftovers import processes_using
from tests.support import wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
COPIED = ("raw", "catalog", "chroma", "index", "simulator")
TAG = "release-recommender-nightly-acceptance"
# Variables that would let the test configure the product behind README's back.
FOREIGN_PREFIXES = ("UP_", "LB_", "SIM_", "PARSER_", "RELEASE_", "INFERENCE_", "DASHBOARD_", "PROMETHEUS_",
                    "KAFKA_", "CHROMA_", "SLACK_", "MOVIEREC_", "DATABASE_URL", "GIT_")


def user_environment() -> dict[str, str]:
    """This process's environment as a user's shell would have it: no platform variables at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
    env.pop("LB_ADMIN_TOKEN", None)  # explicit: the token must come from the product
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["PYTHONPATH"] = str(REPO)  # the code under test (README: the venv's editable install)
    return env


def edit_dotenv(path: Path, values: dict[str, str]) -> None:
    """What a user does after `cp .env.example .env`: change the values of some lines."""
    lines = path.read_text().splitlines()
    seen = set()
    for i, line in enumerate(lines):
        name = line.split("=", 1)[0]
        if not line.startswith("#") and name in values:
            lines[i] = f"{name}={values[name]}"
            seen.add(name)
    missing = set(values) - seen
    assert not missing, f"not documented in .env.example: {missing}"
    path.write_text("\n".join(lines) + "\n")


class User:
    """Runs `movierec ...` and `git ...` in the clone, with the user's environment."""

    def __init__(self, clone: Path, log_dir: Path) -> None:
        self.clone = clone
        self.env = user_environment()
        self.log_dir = log_dir

    def movierec(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "movierec.cli", *args], cwd=self.clone, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.log_dir / f"{name}.log", "ab") as out:
            return subprocess.Popen([sys.executable, "-m", "movierec.cli", *args], cwd=self.clone, env=self.env,
                                    stdout=out, stderr=subprocess.STDOUT)

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.clone, env=self.env, check=True, capture_output=True,
                              text=True, timeout=60).stdout.strip()


def state(data_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((data_dir / "run" / "supervisor.json").read_text())
    except (OSError, ValueError):
        return None


def stream_lines(bootstrap: str, topic: str) -> list[bytes]:
    """Every line on the topic up to its end offsets now (read with a fresh consumer, no group)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=5000, auto_offset_reset="earliest")
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(partitions)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        lines: list[bytes] = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=2000).values():
                lines += [r.value for r in records if r.offset < ends[TopicPartition(r.topic, r.partition)]]
        return lines
    finally:
        consumer.close()


def missing_events(lines: list[bytes], db: Path) -> dict[str, int]:
    """How many of the stream's watch / rating / recommendation events have no row in the database."""
    watches, ratings, recommendations = set(), set(), set()
    for line in lines:
        try:
            event = parse_line(line)
        except MalformedLine:  # dead-lettered, not an event
            continue
        if isinstance(event, WatchEvent):
            watches.add((event.user_id, event.movie_id))
        elif isinstance(event, RatingEvent):
            ratings.add((event.user_id, event.movie_id))
        elif isinstance(event, RecommendationEvent):
            recommendations.add(hashlib.sha1(event.raw.encode("utf-8")).hexdigest())
    with sqlite3.connect(db) as conn:
        stored_watches = set(conn.execute("SELECT user_id, movie_id FROM watches"))
        stored_ratings = set(conn.execute("SELECT user_id, movie_id FROM ratings"))
        stored_recs = {key for (key,) in conn.execute("SELECT event_key FROM recommendations")}
    return {"watches": len(watches - stored_watches), "ratings": len(ratings - stored_ratings),
            "recommendations": len(recommendations - stored_recs),
            "events": len(watches) + len(ratings) + len(recommendations)}


def test_the_readme_journey_on_a_fresh_clone(real_index_dir: Path, tmp_path: Path,
                                             slack_receiver: Webhook) -> None:  # noqa: F811
    clone = tmp_path / "movierec"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)], check=True)
    # README, Configuration: copy .env.example to .env and edit it.
    shutil.copy(clone / ".env.example", clone / ".env")
    ports = {name: str(free_port()) for name in (
        "UP_KAFKA_PORT", "PARSER_METRICS_PORT", "UP_MAIN_PORT", "UP_NIGHTLY_PORT", "UP_ROUTER_PORT",
        "SIM_METRICS_PORT", "UP_DASHBOARD_PORT", "UP_PROMETHEUS_PORT", "UP_ALERTMANAGER_PORT",
        "UP_SUPERVISOR_METRICS_PORT", "RELEASE_NIGHTLY_PORT")}
    edit_dotenv(clone / ".env", {
        **ports,
        "UP_SIMULATOR_RATE": "300", "UP_SIMULATOR_USERS": "3000", "SIM_SPEED": "60",
        "PARSER_BATCH_MAX_SECONDS": "0.5", "PARSER_SESSION_TIMEOUT_MS": "6000",
        "LB_BACKEND_TIMEOUT_SECONDS": "2", "LB_CANARY_WEIGHT": "0.3",
        "RELEASE_WINDOW_MINUTES": "1", "RELEASE_HIT_HORIZON_MINUTES": "5", "RELEASE_MIN_USERS_PER_ARM": "10",
        "RELEASE_GATE_ARGS": "--max-users 300 --strategies blend --report-dir reports",
        "SCHEDULER_TICK_SECONDS": "1", "SLACK_WEBHOOK_URL": slack_receiver.url,
    })
    data_dir = clone / "var"  # MOVIEREC_DATA_DIR=./var, as .env.example has it
    data_dir.mkdir()
    for name in COPIED:
        if (real_index_dir / name).exists():
            shutil.copytree(real_index_dir / name, data_dir / name)
    user = User(clone, tmp_path)
    assert "LB_ADMIN_TOKEN" not in user.env
    router = f"http://127.0.0.1:{ports['UP_ROUTER_PORT']}"
    up: subprocess.Popen[bytes] | None = None
    try:
        # 1. While `up` prepares the data, `status` says so (exit 4) and `down` stops it.
        up = user.start("up-interrupted", "up")
        seen = wait_until(lambda: (r := user.movierec("status")).returncode == 4 and r, timeout_seconds=120,
                          interval=0.5, what="status exit 4 while preparing")
        assert "preparing: step" in seen.stdout or "starting: step" in seen.stdout, seen.stdout
        assert user.movierec("down", timeout=120).returncode == 0
        assert up.wait(timeout=60) == 0
        up = None
        assert state(data_dir) is None and processes_using(data_dir) == []
        assert user.movierec("status").returncode == 3

        # 2. README quick start: up --detach (makes the admin token), hooks install, git tag.
        started = user.movierec("up", "--detach", timeout=900)
        assert started.returncode == 0, started.stdout + started.stderr + (data_dir / "logs" /
                                                                           "supervisor.log").read_text()[-4000:]
        token_file = data_dir / "secrets" / "admin-token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        token = user.movierec("admin", "token").stdout.strip()
        assert token and token == token_file.read_text().strip()
        for log in (data_dir / "logs").glob("*.log"):
            assert token not in log.read_text(errors="replace"), f"the admin token leaked into {log}"
        assert requests.get(f"{router}/admin/backends", timeout=5).status_code == 401
        assert requests.get(f"{router}/admin/backends", timeout=5,
                            headers={"Authorization": "Bearer wrong"}).status_code == 401
        installed = user.movierec("hooks", "install")
        assert installed.returncode == 0, installed.stderr
        user.git("tag", TAG)
        tagged_at = time.monotonic()

        def nightly() -> dict[str, Any] | None:
            listing = requests.get(f"{router}/admin/backends", timeout=5,
                                   headers={"Authorization": f"Bearer {token}"}).json()
            found = listing.get("nightly") or {}
            return found if found.get("release_id") and found.get("git_ref") == TAG else None

        registered = wait_until(nightly, timeout_seconds=60, interval=1)
        print(f"nightly {registered['version']} registered {time.monotonic() - tagged_at:.0f}s after the tag")
        # The router's workers poll the deployments state every LB_STATE_POLL_SECONDS: wait until each one
        # routes the canary share to the registered nightly, not the one `up` started.
        def routed_to_registered() -> bool:
            probe = [requests.get(f"{router}/recommend/{user_id}", timeout=10) for user_id in range(1, 41)]
            return {r.headers["X-Model-Version"] for r in probe
                    if r.headers["X-Served-By"] == "nightly"} == {registered["version"]}

        wait_until(routed_to_registered, timeout_seconds=30, interval=0.5, what="every worker on the new nightly")
        served = [requests.get(f"{router}/recommend/{user_id}", timeout=10) for user_id in range(1, 301)]
        assert all(r.status_code == 200 for r in served)
        by_nightly = [r for r in served if r.headers["X-Served-By"] == "nightly"]
        assert {r.headers["X-Model-Version"] for r in by_nightly} == {registered["version"]}
        assert 0.15 <= len(by_nightly) / len(served) <= 0.45, len(by_nightly)

        # 3. The parser is killed twice; the supervisor brings it back both times; nothing is lost.
        for kill in (1, 2):
            killed = state(data_dir)["services"]["parser"]["pid"]
            os.kill(killed, signal.SIGKILL)

            def back(kill: int = kill, killed: int = killed) -> bool:
                parser = state(data_dir)["services"]["parser"]
                return parser["restarts"] == kill and parser["pid"] != killed and not parser["restart_pending"]

            wait_until(back, timeout_seconds=60, interval=0.5, what=f"the parser back after kill {kill}")
        status = user.movierec("status")
        parser_row = next(line for line in status.stdout.splitlines() if line.startswith("parser"))
        assert parser_row.split()[3] == "2", status.stdout
        # Enough of a stream to lose something in: the simulator writes it at UP_SIMULATOR_RATE.
        def enough_lines() -> list | None:
            got = stream_lines(f"127.0.0.1:{ports['UP_KAFKA_PORT']}", "movielog")
            return got if len(got) > 1000 else None

        lines = wait_until(enough_lines, timeout_seconds=120, interval=2, what="1,000 stream lines")
        db = data_dir / "movierec.db"

        def all_written() -> dict[str, int] | None:
            gaps = missing_events(lines, db)
            return gaps if gaps["watches"] + gaps["ratings"] + gaps["recommendations"] == 0 else None

        gaps = wait_until(all_written, timeout_seconds=120, interval=2, what="every stream event in the database")
        print(f"{len(lines)} stream lines, {gaps['events']} distinct events, all in the database after 2 kills")

        # 4. The online evaluation decides; Slack heard the start and the decision.
        def decision() -> str | None:
            texts = [p["text"] for p in slack_receiver.payloads]
            return next((t for t in texts if "promoted to main" in t or "rolled back" in t), None)

        decided = wait_until(decision, timeout_seconds=330, interval=2)
        print(f"decision: {decided}")
        assert any("is live" in p["text"] and registered["version"] in p["text"] for p in slack_receiver.payloads)
    finally:
        stopped = user.movierec("down", timeout=180)
        if up is not None and up.poll() is None:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=60)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    wait_until(lambda: processes_using(data_dir) == [], timeout_seconds=30, interval=0.5)
    assert state(data_dir) is None
