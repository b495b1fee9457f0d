"""The nightly retraining end to end on small data: `movierec scheduler` installs the retrain entry,
runs `release model` (train on PostgreSQL's stream rows, the offline gate on the new artifact in a
worktree of a clone of this repository, the artifact served by a gunicorn nightly at the router);
a model that fails the gate is never started.

Small data: the hand-made 36-film catalogue with its real MiniLM index (tests/inference), and a
small ratings file in the place of ML-1M's (the offline gate's held-out data and the warm start).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from crontab import CronTab
from sqlalchemy import Engine

from db_utils.queries import bulk_upsert_watches
from db_utils.rows import WatchRow
from tests.inference.conftest import indexed_data_dir  # noqa: F401 (the small catalogue's real index)
from tests.inference.small_catalog import CLUSTERS
from tests.load_balancer.helpers import wait_until
from tests.load_balancer.platform import REPO, Platform, platform_with_bad_main, release_row
from vectordb_scripts.catalog_io import ml1m_ratings_path

ORDER = ["space", *[c for c in CLUSTERS if c != "space"]]


def sequences(users: int, seed: int) -> list[list[str]]:
    """Each user goes through three clusters, each in its fixed film order (sessions)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(users):
        clusters = rng.choice(len(ORDER), size=3, replace=False)
        out.append([m for c in clusters for m in CLUSTERS[ORDER[c]]])
    return out


@pytest.fixture
def model_data_dir(indexed_data_dir: Path, tmp_path: Path) -> Path:  # noqa: F811
    data_dir = tmp_path / "var"
    shutil.copytree(indexed_data_dir, data_dir)
    rows = [{"user_id": u + 1, "movie_id": m, "ml1m_id": 0, "rating": 4, "timestamp": 1_000_000 + 60 * t}
            for u, films in enumerate(sequences(60, seed=5)) for t, m in enumerate(films)]
    pd.DataFrame(rows).to_parquet(ml1m_ratings_path(data_dir), index=False)
    return data_dir


@pytest.fixture
def platform(postgres_url: str, pg_engine: Engine, model_data_dir: Path, tmp_path: Path,
             slack_receiver) -> Iterator[Platform]:
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(repo)], check=True)
    with platform_with_bad_main(postgres_url, pg_engine, model_data_dir, repo, slack_receiver.url,
                                RELEASE_GATE_ARGS="--strategies popularity", RETRAIN_SCHEDULE="* * * * *",
                                RELEASE_WINDOW_MINUTES="600") as running:
        yield running


def write_stream(engine: Engine) -> None:
    start = datetime(2026, 11, 30, 20, 0)
    rows = [WatchRow(u + 1, m, 90, start + timedelta(hours=u, minutes=t), start + timedelta(hours=u, minutes=t))
            for u, films in enumerate(sequences(40, seed=9)) for t, m in enumerate(films[:12])]
    with engine.begin() as conn:
        bulk_upsert_watches(conn, rows)


def test_scheduler_retrains_gates_and_releases_the_model(platform: Platform, pg_engine: Engine) -> None:
    write_stream(pg_engine)
    scheduler = platform.start("scheduler", "scheduler", "--tick", "1")
    crontab = platform.data_dir / "crontab"
    wait_until(lambda: crontab.exists() and "release model" in crontab.read_text(), timeout_seconds=30, interval=0.5)
    entries = [job for job in CronTab(tabfile=str(crontab)) if job.comment == "movierec-recurring retrain-model"]
    assert len(entries) == 1 and str(entries[0].slices) == "* * * * *"
    nightly = wait_until(lambda: platform.admin("GET", "/backends")["nightly"], timeout_seconds=240, interval=1)
    scheduler.terminate()  # one retraining is enough here (the entry runs every minute)
    version = nightly["version"]
    assert version.startswith("model-")
    manifest_dir = platform.data_dir / "models" / version
    assert (manifest_dir / "manifest.json").is_file() and (manifest_dir / "model.npz").is_file()
    row = release_row(pg_engine)
    assert row is not None and row.version == version and row.metrics["model"] == version
    gate_log = (Path(row.metrics["worktree"]).parent / "gate.log").read_text()
    assert "gate passed: model" in gate_log
    # The nightly serves the artifact and names it; a user with a space history gets the next space films.
    answer = requests.get(f"{nightly['url']}/recommend/1?format=json", timeout=10)
    assert answer.headers["X-Model-Version"] == version and answer.json()["kind"] == "personalised"

    # The same pipeline with a gate the model cannot pass: nothing is started, the nightly stays.
    failed = platform.run("release", "model", "--model", version, extra_env={"RELEASE_GATE_MIN_HR": "1.01"})
    assert failed.returncode == 3, failed.stderr + failed.stdout
    assert "offline gate failed" in failed.stderr
    assert platform.admin("GET", "/backends")["nightly"]["release_id"] == nightly["release_id"]
    assert release_row(pg_engine).status == "gate_failed"
