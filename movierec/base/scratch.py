"""Scratch resources of the tests and the benchmarks: the cached real-data directory, a throwaway
PostgreSQL schema. Nothing of the running platform uses them."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

DEFAULT_TEST_POSTGRES = "postgresql+psycopg2://root@127.0.0.1:5432/test"


def test_data_dir() -> Path:
    """Where the tests and benchmarks keep the real data they build (catalogue, index, taste model).

    `MOVIEREC_TEST_DATA_DIR`, else `~/.cache/movierec/test-data`: outside the work tree so that fresh
    clones on the same machine (CI) reuse it; everything in it is rebuilt when missing or stale.
    The home directory comes from the password database: the test session replaces $HOME.
    """
    import pwd

    explicit = os.environ.get("MOVIEREC_TEST_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache")
    return Path(cache) / "movierec" / "test-data"


def postgres_base_url() -> str:
    return os.environ.get("MOVIEREC_TEST_POSTGRES", DEFAULT_TEST_POSTGRES)


@contextlib.contextmanager
def postgres_schema_url(base_url: str | None = None) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    from sqlalchemy import create_engine, text

    base = base_url or postgres_base_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
