"""End to end: `movierec inference` under gunicorn on a free loopback port, PostgreSQL behind a proxy we cut."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from movierec.base.ports import free_port, wait_for_port
from tests.inference.conftest import add_history
from tests.inference.small_catalog import CLUSTERS
from tests.support import TcpProxy


@pytest.fixture
def db_proxy(postgres_url: str) -> Iterator[TcpProxy]:
    url = make_url(postgres_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def server(indexed_data_dir: Path, postgres_url: str, db_proxy: TcpProxy, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proxied = make_url(postgres_url).set(port=db_proxy.port).render_as_string(hide_password=False)
    env = {**os.environ, "MOVIEREC_DATA_DIR": str(indexed_data_dir), "DATABASE_URL": proxied, "CHROMA_URL": "",
           "INFERENCE_DB_RETRY_SECONDS": "0.5"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # `movierec inference` sets up multiprocess metrics itself
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "movierec.cli", "inference", "--port", str(port), "--workers", "2",
         "--strategy", "blend"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout_seconds=60)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # workers load the table after the port opens
            try:
                if requests.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_gunicorn_serves_the_contract_and_survives_the_database_going_away(
    server: str, pg_engine: Engine, db_proxy: TcpProxy
) -> None:
    watched = CLUSTERS["horror"][:3]
    add_history(pg_engine, 4242, watched, {watched[0]: 5})
    response = requests.get(f"{server}/recommend/4242", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.headers["X-Model-Version"] == "blend-v1"
    ids = response.text.strip().split(",")
    assert len(ids) == 20 and not set(ids) & set(watched)
    assert set(ids[:2]) <= set(CLUSTERS["horror"])
    assert requests.get(f"{server}/recommend/abc", timeout=5).status_code == 400

    db_proxy.stop()  # the database becomes unreachable
    for _ in range(6):  # both workers, breaker open and half-open: every answer is a 200 fallback
        started = time.monotonic()
        body = requests.get(f"{server}/recommend/4242?format=json", timeout=5).json()
        assert body["kind"] == "fallback" and body["fallback_reason"] == "database"
        assert len(body["recommendations"]) == 20
        assert time.monotonic() - started < 3.0  # connect refused at once, never a hang
    health = requests.get(f"{server}/health", timeout=5).json()
    assert health["status"] == "degraded"

    db_proxy.start()  # back on the same port: the service recovers by itself
    time.sleep(0.6)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body = requests.get(f"{server}/recommend/4242?format=json", timeout=5).json()
        if body["kind"] == "personalised":
            break
        time.sleep(0.2)
    assert body["kind"] == "personalised"

    metrics = requests.get(f"{server}/metrics", timeout=5).text
    fallbacks = [line for line in metrics.splitlines()
                 if line.startswith("movierec_recommend_fallbacks_total{") and 'reason="database"' in line]
    assert fallbacks and sum(float(line.rsplit(" ", 1)[1]) for line in fallbacks) >= 6
    assert 'movierec_build_info{service="inference",version="blend-v1"}' in metrics
