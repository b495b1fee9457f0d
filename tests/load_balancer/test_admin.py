"""Admin API: bearer token, backends and weights, register/deregister, promote, roll back, restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from db_utils.models import Deployment
from movierec.base.ports import free_port, wait_for_port
from tests.load_balancer.helpers import ADMIN_TOKEN, auth, router_settings, wait_until


@pytest.fixture
def db_url(db_engine: Engine) -> str:
    return db_engine.url.render_as_string(hide_password=False)


def test_admin_requires_the_bearer_token(db_url, data_dir, start_backend, start_router) -> None:
    _, main_server = start_backend("main-v1")
    _, router = start_router(router_settings(db_url, data_dir, LB_MAIN_URL=main_server.url))
    assert requests.get(f"{router.url}/admin/backends", timeout=5).status_code == 401
    wrong = requests.get(f"{router.url}/admin/backends", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    basic = requests.put(f"{router.url}/admin/canary-weight", json={"weight": 1}, timeout=5,
                         headers={"Authorization": f"Basic {ADMIN_TOKEN}"})
    assert basic.status_code == 401
    assert requests.get(f"{router.url}/admin/backends", headers=auth(), timeout=5).status_code == 200


def test_admin_is_disabled_without_a_configured_token(db_url, data_dir, start_backend, start_router) -> None:
    _, main_server = start_backend("main-v1")
    _, router = start_router(router_settings(db_url, data_dir, LB_MAIN_URL=main_server.url, LB_ADMIN_TOKEN=""))
    answer = requests.get(f"{router.url}/admin/backends", headers={"Authorization": "Bearer "}, timeout=5)
    assert answer.status_code == 403 and "LB_ADMIN_TOKEN" in answer.json()["error"]


def test_register_weight_promote_rollback(db_engine, db_url, data_dir, start_backend, start_router) -> None:
    _, main_server = start_backend("main-v1")
    nightly, nightly_server = start_backend("nightly-v2")
    _, router = start_router(router_settings(db_url, data_dir, LB_MAIN_URL=main_server.url))
    admin = f"{router.url}/admin"
    listing = requests.get(f"{admin}/backends", headers=auth(), timeout=5).json()
    assert listing["main"]["url"] == main_server.url and listing["nightly"] is None
    assert requests.put(f"{admin}/canary-weight", json={"weight": 0.5}, headers=auth(), timeout=5).status_code == 409

    created = requests.post(f"{admin}/backends", headers=auth(), timeout=5, json={
        "name": "nightly", "url": nightly_server.url, "version": "nightly-v2", "weight": 0.3, "release_id": "r1"})
    assert created.status_code == 201
    assert created.json()["nightly"]["weight"] == 0.3 and created.json()["main"]["weight"] == pytest.approx(0.7)
    assert requests.put(f"{admin}/canary-weight", json={"weight": 1.0}, headers=auth(), timeout=5).status_code == 200
    assert requests.get(f"{router.url}/recommend/7", timeout=5).headers["X-Served-By"] == "nightly"
    assert requests.put(f"{admin}/canary-weight", json={"weight": 2}, headers=auth(), timeout=5).status_code == 400
    assert requests.post(f"{admin}/backends", json={"name": "x", "url": "u"}, headers=auth(),
                         timeout=5).status_code == 400

    promoted = requests.post(f"{admin}/promote", json={"metrics": {"p": 0.01}}, headers=auth(), timeout=5).json()
    assert promoted["new_main"]["version"] == "nightly-v2" and promoted["old_main"]["url"] == main_server.url
    assert promoted["state"]["nightly"] is None
    answer = requests.get(f"{router.url}/recommend/7", timeout=5)
    assert answer.headers["X-Served-By"] == "main" and answer.headers["X-Model-Version"] == "nightly-v2"
    assert requests.post(f"{admin}/rollback", headers=auth(), timeout=5).status_code == 409  # no nightly

    requests.post(f"{admin}/backends", headers=auth(), timeout=5,
                  json={"name": "nightly", "url": main_server.url, "version": "main-v1", "weight": 1.0})
    rolled = requests.post(f"{admin}/rollback", json={"note": "worse"}, headers=auth(), timeout=5).json()
    assert rolled["rolled_back"]["version"] == "main-v1" and rolled["state"]["nightly"] is None
    assert requests.get(f"{router.url}/recommend/7", timeout=5).headers["X-Served-By"] == "main"
    with Session(db_engine) as session:
        rows = session.scalars(select(Deployment).order_by(Deployment.id)).all()
    assert [(r.role, r.status) for r in rows] == [("retired", "replaced"), ("main", "promoted"),
                                                   ("retired", "rolled_back")]
    assert rows[1].metrics["decision"] == "promote" and rows[1].metrics["p"] == 0.01
    assert rows[2].weight == 0.0 and rows[2].note == "worse"
    metrics = requests.get(f"{router.url}/metrics", timeout=5).text
    assert 'movierec_release_decisions_total{decision="promote"}' in metrics

    deleted = requests.delete(f"{admin}/backends/main", headers=auth(), timeout=5)
    assert deleted.status_code == 200 and deleted.json()["main"] is None
    assert requests.get(f"{router.url}/recommend/7", timeout=5).status_code == 503


def _start_lb(port: int, env: dict[str, str], log_path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "movierec.cli", "lb", "--port", str(port), "--workers", "2"],
                                   env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port("127.0.0.1", port, timeout_seconds=30)
    # The port opens before the workers have built the app: wait until one answers (a busy machine takes seconds).
    wait_until(lambda: _answers(f"http://127.0.0.1:{port}/health"), timeout_seconds=60, what="a router worker")
    return process


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=20)


def test_gunicorn_router_restart_keeps_state_and_workers_follow(postgres_url, pg_engine, data_dir, tmp_path,
                                                                start_backend) -> None:
    _, main_server = start_backend("main-v1")
    _, nightly_server = start_backend("nightly-v2")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": postgres_url, "MOVIEREC_DATA_DIR": str(data_dir),
           "LB_ADMIN_TOKEN": ADMIN_TOKEN, "LB_MAIN_URL": main_server.url, "LB_NIGHTLY_URL": "",
           "LB_STATE_POLL_SECONDS": "0.5", "LB_HEALTH_INTERVAL_SECONDS": "0.5"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    router = f"http://127.0.0.1:{port}"
    process = _start_lb(port, env, tmp_path / "lb.log")
    try:
        requests.post(f"{router}/admin/backends", headers=auth(), timeout=5, json={
            "name": "nightly", "url": nightly_server.url, "version": "nightly-v2", "weight": 0.25, "salt": "s1"})
        # Both workers pick the change up from the database (each answers /health from its own snapshot).
        wait_until(lambda: all(requests.get(f"{router}/health", timeout=5).json()["canary_weight"] == 0.25
                               for _ in range(10)), timeout_seconds=10)
        # Ten answers may all come from one worker: give every worker three state polls (0.5 s) to reload.
        time.sleep(1.5)
        before = {u: requests.get(f"{router}/recommend/{u}", timeout=5).headers["X-Served-By"] for u in range(1, 61)}
        listing = requests.get(f"{router}/admin/backends", headers=auth(), timeout=5).json()
    finally:
        _stop(process)
    process = _start_lb(port, env, tmp_path / "lb.log")
    try:
        after_listing = wait_until(lambda: requests.get(f"{router}/admin/backends", headers=auth(), timeout=5).json())
        for name in ("main", "nightly"):
            for key in ("url", "version", "weight", "deployment_id"):
                assert after_listing[name][key] == listing[name][key]
        assert after_listing["salt"] == "s1"
        after = {u: requests.get(f"{router}/recommend/{u}", timeout=5).headers["X-Served-By"] for u in range(1, 61)}
        assert after == before  # same users on the same arms after the restart
        assert "nightly" in after.values()
        metrics = requests.get(f"{router}/metrics", timeout=5).text
        assert "movierec_lb_canary_weight 0.25" in metrics
    finally:
        _stop(process)
