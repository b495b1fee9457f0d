"""Live gunicorn servers for the contract tests: inference on the small real index, a router in front
of it, and a second router with the admin API enabled (its own database, so admin changes cannot
disturb the routing test)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from movierec.base.ports import free_port
from tests.inference.conftest import indexed_data_dir  # noqa: F401 (session fixture: the real small index)
from tests.support import wait_until

ADMIN_TOKEN = "contract-admin-token"


@contextlib.contextmanager
def live_service(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[str]:
    """`movierec <args> --port <free>` under gunicorn until /health answers 200; stopped afterwards."""
    port = free_port()
    environ = {**os.environ, **env}
    environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each service sets up its own
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "movierec.cli", *args, "--port", str(port)],
                                   env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"{args[0]} exited {process.returncode}: {log_path.read_text()[-3000:]}")
            with contextlib.suppress(requests.RequestException):
                return requests.get(f"{base}/health", timeout=2).status_code == 200
            return False

        try:
            wait_until(healthy, 90, f"{args[0]} /health")
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def inference_url(indexed_data_dir: Path, postgres_url: str,  # noqa: F811
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from db_utils.engine import make_engine
    from tests.inference.conftest import add_history
    from tests.inference.small_catalog import CLUSTERS

    engine = make_engine(postgres_url)  # users 1-9 get a history: personalised answers, not only cold starts
    for user, films in enumerate(CLUSTERS.values(), start=1):
        if user < 10:
            add_history(engine, user, list(films)[:3], {list(films)[0]: 5})
    engine.dispose()
    logs = tmp_path_factory.mktemp("inference-logs")
    env = {"MOVIEREC_DATA_DIR": str(indexed_data_dir), "DATABASE_URL": postgres_url, "CHROMA_URL": "",
           "INFERENCE_DB_RETRY_SECONDS": "0"}
    with live_service(["inference", "--workers", "1", "--strategy", "blend"], env, logs / "server.log") as url:
        yield url


def _router_env(tmp: Path, main_url: str, admin_token: str) -> dict[str, str]:
    return {"MOVIEREC_DATA_DIR": str(tmp), "DATABASE_URL": f"sqlite:///{tmp / 'router.db'}",
            "LB_MAIN_URL": main_url, "LB_NIGHTLY_URL": "", "LB_ADMIN_TOKEN": admin_token,
            "LB_BACKEND_TIMEOUT_SECONDS": "2", "LB_HEALTH_INTERVAL_SECONDS": "0.5", "LB_STATE_POLL_SECONDS": "0.5"}


@pytest.fixture(scope="module")
def router_url(inference_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("router")
    from db_utils.engine import upgrade_database

    env = _router_env(tmp, inference_url, "")
    upgrade_database(env["DATABASE_URL"])
    with live_service(["lb", "--workers", "1", "--threads", "4"], env, tmp / "router.log") as url:
        yield url


@pytest.fixture(scope="module")
def admin_router_url(inference_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("admin-router")
    from db_utils.engine import upgrade_database

    env = _router_env(tmp, inference_url, ADMIN_TOKEN)
    upgrade_database(env["DATABASE_URL"])
    with live_service(["lb", "--workers", "1", "--threads", "4"], env, tmp / "router.log") as url:
        yield url
