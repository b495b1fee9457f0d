"""docker-compose.yml on a real engine: the images from the real Dockerfile, the platform brought up by
docker-compose, a canary release through the engine API, and parser scale-out with a killed replica.

The tests share one platform (conftest `platform`) and run in file order: up, serve, monitor, release, scale;
test_release_pipelines.py runs .gitlab-ci.yml's tag pipelines against the same platform afterwards.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from datetime import datetime

import pytest
import requests

from data_parsing.parser import parse_line
from simulator.events import recommendation_line
from tests.containers.stack import ROOT, Stack, wait_for

pytestmark = pytest.mark.containers

COLD_USER = 999_999_999  # outside the simulated population (1..SIM_USERS): never seen


def _url(stack: Stack, port: str, path: str) -> str:
    return f"http://127.0.0.1:{stack.ports[port]}{path}"


def _admin_token(stack: Stack) -> str:
    for line in (stack.project_dir / ".env").read_text().splitlines():
        if line.startswith("LB_ADMIN_TOKEN="):
            return line.split("=", 1)[1]
    raise AssertionError("init-env wrote no LB_ADMIN_TOKEN")


def _inspect(stack: Stack, container: str) -> dict:
    return json.loads(stack.podman("inspect", container).stdout)[0]


def test_bootstrap_completes_and_router_recommends_for_a_simulated_user(platform: Stack) -> None:
    (bootstrap,) = platform.containers("bootstrap")
    state = _inspect(platform, bootstrap)["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0, platform.logs("bootstrap")
    films = int(platform.sql("SELECT count(*) FROM movies")[0][0])
    assert films > 1000

    # The simulator's events reach PostgreSQL through Kafka and the parser.
    def watched_user() -> str | None:
        rows = platform.sql("SELECT user_id FROM watches GROUP BY user_id "
                            "ORDER BY max(last_seen) DESC LIMIT 1")
        return rows[0][0] if rows else None

    try:
        user = wait_for(watched_user, 300, "simulated watches in PostgreSQL")
    except AssertionError:
        print(platform.logs("parser", "simulator", "router"))
        raise
    watched = {row[0] for row in platform.sql(f"SELECT movie_id FROM watches WHERE user_id = {int(user)}")}

    answer = requests.get(_url(platform, "ROUTER_PORT", f"/recommend/{user}"), timeout=10)
    assert answer.status_code == 200, answer.text
    ids = answer.text.strip().split(",")
    assert len(ids) == 20 and len(set(ids)) == 20
    assert not watched & set(ids), "a watched film was recommended"
    known = {row[0] for row in platform.sql(
        "SELECT id FROM movies WHERE id IN (" + ",".join(f"'{i}'" for i in ids) + ")")}
    assert known == set(ids)
    cold = requests.get(_url(platform, "ROUTER_PORT", f"/recommend/{COLD_USER}"), timeout=10).text.strip().split(",")
    assert ids != cold, "the simulated user got the cold-start list"


def test_every_prometheus_target_is_up(platform: Stack) -> None:
    def targets() -> list[dict] | None:
        body = requests.get(_url(platform, "PROMETHEUS_PORT", "/api/v1/targets"), timeout=5).json()
        active = body["data"]["activeTargets"]
        return active if active and all(t["health"] == "up" for t in active) else None

    try:
        active = wait_for(targets, 120, "every Prometheus target up")
    except AssertionError:
        body = requests.get(_url(platform, "PROMETHEUS_PORT", "/api/v1/targets"), timeout=5).json()
        raise AssertionError([(t["labels"]["job"], t["health"], t.get("lastError"))
                              for t in body["data"]["activeTargets"]]) from None
    jobs = {t["labels"]["job"] for t in active}
    assert {"parser", "inference-main", "inference-nightly", "router", "simulator", "prometheus",
            "alertmanager"} <= jobs


def test_dashboard_on_grafana_port_renders(platform: Stack) -> None:
    dashboard = json.loads((ROOT / "monitoring/grafana/dashboards/movierec.json").read_text())
    page = requests.get(_url(platform, "GRAFANA_PORT", "/?range=15m"), timeout=30)
    assert page.status_code == 200
    assert dashboard["title"] in page.text
    panel = dashboard["panels"][0]["id"]
    png = requests.get(_url(platform, "GRAFANA_PORT", f"/panels/{panel}.png?range=15m"), timeout=30)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    health = requests.get(_url(platform, "GRAFANA_PORT", "/api/health"), timeout=10).json()
    assert health["prometheus"] == "ready"


def test_canary_release_through_the_engine_api(platform: Stack) -> None:
    """`movierec release nightly` in the scheduler's container, as .gitlab-ci.yml runs it."""
    repo = platform.checkout  # mounted at /repo in the scheduler (RELEASE_CHECKOUT)
    tag = f"release-recommender-nightly-ct{uuid.uuid4().hex[:6]}"
    subprocess.run(["git", "-C", str(repo), "tag", tag], check=True)
    sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True,
                         text=True).stdout.strip()
    # What the build job of .gitlab-ci.yml pushes for this commit: <namespace>/movierec-inference:<sha12>.
    platform.podman("tag", "movierec/movierec-inference:containers-test", f"movierec/movierec-inference:{sha[:12]}")

    result = platform.compose("exec", "-T", "scheduler", "movierec", "release", "nightly", tag, check=False,
                              timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (release_id,) = {row[0] for row in platform.sql(
        f"SELECT metrics->>'release_id' FROM deployments WHERE git_ref = '{tag}' AND role = 'nightly'")}
    container = f"movierec-nightly-{release_id}"

    # The nightly joined the compose network and the router reaches it by name.
    info = _inspect(platform, container)
    assert f"{platform.name}-net" in info["NetworkSettings"]["Networks"]
    headers = {"Authorization": f"Bearer {_admin_token(platform)}"}
    backends = requests.get(_url(platform, "ROUTER_PORT", "/admin/backends"), headers=headers, timeout=10).json()
    assert backends["nightly"]["url"] == f"http://{container}:8002", backends

    # It serves its share: half of the users (LB_CANARY_WEIGHT=0.5) are answered by the nightly.
    def nightly_share() -> float | None:
        served = [requests.get(_url(platform, "ROUTER_PORT", f"/recommend/{user}"), timeout=10).headers
                  .get("X-Served-By") for user in range(1, 201)]
        share = served.count("nightly") / len(served)
        return share if 0.3 <= share <= 0.7 else None

    wait_for(nightly_share, 60, "the nightly serving about half of the users")

    # The scheduler runs the online evaluation one minute later: promote or roll back.
    def decided() -> str | None:
        rows = platform.sql(f"SELECT status FROM deployments WHERE metrics->>'release_id' = '{release_id}'")
        statuses = {row[0] for row in rows}
        return next(iter(statuses & {"promoted", "rolled_back"}), None)

    try:
        decision = wait_for(decided, 420, "the online evaluation's decision", interval=5)
    except AssertionError:
        print(platform.compose("exec", "-T", "scheduler", "sh", "-c",
                               "cat /data/crontab /data/scheduler.log /data/releases/*/online-eval.log",
                               check=False).stdout[-4000:])
        raise
    note = platform.sql(f"SELECT note FROM deployments WHERE metrics->>'release_id' = '{release_id}'")
    print(f"[containers] online evaluation: {decision}: {note}")

    def exists() -> bool:
        return platform.podman("container", "exists", container, check=False).returncode == 0

    if decision == "rolled_back":  # the loser's container is stopped (gracefully) and removed
        wait_for(lambda: not exists(), 90, f"{container} removed after the rollback")
        backends = requests.get(_url(platform, "ROUTER_PORT", "/admin/backends"), headers=headers, timeout=10).json()
        assert backends["main"]["url"] == "http://inference-main:8001"
    else:
        assert exists() and _inspect(platform, container)["State"]["Running"]
        backends = requests.get(_url(platform, "ROUTER_PORT", "/admin/backends"), headers=headers, timeout=10).json()
        assert backends["main"]["url"] == f"http://{container}:8002"


def _partitions(platform: Stack, container: str) -> set[int]:
    """The partitions the parser in `container` owns now: its last `partitions_assigned` log line
    (kafka-python's eager rebalance hands every member its whole new assignment)."""
    logs = platform.podman("logs", container, check=False)
    lines = [line for line in (logs.stdout + logs.stderr).decode(errors="replace").splitlines()
             if "partitions_assigned partitions=" in line]
    if not lines:
        return set()
    listed = lines[-1].split("partitions_assigned partitions=", 1)[1].strip()
    return {int(item.rsplit(":", 1)[1]) for item in listed.split(",") if item}


def test_parsers_scale_out_and_take_over_a_killed_replica(platform: Stack) -> None:
    platform.compose("stop", "-t", "5", "simulator")
    platform.compose("up", "-d", "--no-deps", "--scale", "parser=3", "parser")
    parsers = platform.containers("parser")
    assert len(parsers) == 3
    owners = wait_for(lambda: (lambda o: o if all(len(p) == 1 for p in o.values()) else None)(
        {c: _partitions(platform, c) for c in parsers}), 120, "each of 3 parsers owning one partition")
    assert set().union(*owners.values()) == {0, 1, 2}

    # Known lines, keyed by user over the 3 partitions, produced from inside the compose network;
    # one replica is SIGKILLed between the two halves.
    marker = f"ct-{uuid.uuid4().hex[:8]}:8082"  # the served_by of these lines only
    total = 3000
    sample = recommendation_line(datetime.now(), 500_000_000, marker, 200, ["the+matrix+1999"], 12)
    assert parse_line(sample.encode()) is not None
    code = ("import sys\nfrom datetime import datetime\nfrom data_parsing.producer import StreamProducer\n"
            "from simulator.events import recommendation_line\n"
            "marker, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n"
            "with StreamProducer('kafka:9092', 'movielog') as producer:\n"
            "    for user in range(500_000_000 + first, 500_000_000 + first + count):\n"
            "        line = recommendation_line(datetime.now(), user, marker, 200, ['the+matrix+1999'], 12)\n"
            "        producer.send(line, key=str(user).encode())\n"
            "    producer.flush()\n")

    def produce(first: int, count: int) -> None:
        platform.compose("run", "--rm", "--no-deps", "-T", "bootstrap", "python", "-c", code, marker, str(first),
                         str(count), timeout=300)

    produce(0, total // 2)
    victim = parsers[0]
    platform.podman("kill", "--signal", "KILL", victim)
    platform.podman("rm", "-f", victim)
    produce(total // 2, total - total // 2)

    def stored() -> int | None:
        count = int(platform.sql(f"SELECT count(*) FROM recommendations WHERE served_by = '{marker}'")[0][0])
        return count if count >= total else None

    try:
        wait_for(stored, 240, "every marked line in PostgreSQL")
    except AssertionError:
        print(platform.logs("parser"))
        raise
    survivors = platform.containers("parser")
    assert victim not in survivors and len(survivors) == 2
    owned = [_partitions(platform, c) for c in survivors]
    assert set().union(*owned) == {0, 1, 2} and all(owned), owned  # the victim's partition moved over
    time.sleep(5)  # a replayed batch would show up as extra rows now
    rows = platform.sql(f"SELECT count(*), count(DISTINCT user_id) FROM recommendations WHERE served_by = '{marker}'")
    assert rows[0] == [str(total), str(total)], rows  # 0 lost, 0 duplicated
