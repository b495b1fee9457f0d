"""The database edge: one query per history, short timeouts, the circuit breaker, recovery."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from inference.breaker import CircuitBreaker
from inference.history import (
    DatabaseUnavailable,
    HistoryStore,
    history_engine,
    postgres_url_with_timeouts,
)
from movierec.base.ports import free_port
from tests.inference.conftest import add_history
from tests.support import TcpProxy


def test_breaker_opens_for_the_retry_delay_then_closes() -> None:
    now = [100.0]
    breaker = CircuitBreaker(2.0, clock=lambda: now[0])
    assert breaker.allow()
    breaker.failure()
    assert not breaker.allow() and breaker.is_open
    now[0] = 101.9
    assert not breaker.allow()
    now[0] = 102.0
    assert breaker.allow()  # half-open: one trial goes through
    breaker.success()
    assert breaker.allow()


def test_statement_timeout_is_added_to_existing_libpq_options(postgres_url: str) -> None:
    url = postgres_url_with_timeouts(postgres_url, 250)
    assert "statement_timeout=250" in url.query["options"] and "search_path" in url.query["options"]
    engine = history_engine(postgres_url, 1, 250, 2)
    with engine.connect() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar() == "250ms"
        assert conn.execute(text("SELECT count(*) FROM watches")).scalar() is not None  # schema still found
    engine.dispose()


def test_history_reads_watches_and_ratings_most_recent_first(postgres_url: str, pg_engine: Engine) -> None:
    add_history(pg_engine, 9, ["a+1990", "b+1991", "c+1992"], {"b+1991": 4, "z+2000": 2})
    store = HistoryStore(history_engine(postgres_url, 1, 500, 2), retry_seconds=1)
    items = store.history(9)
    assert [i.movie_id for i in items][:3] == ["c+1992", "b+1991", "a+1990"]
    assert {i.movie_id: i.rating for i in items} == {"a+1990": None, "b+1991": 4, "c+1992": None, "z+2000": 2}
    assert store.history(10) == []
    store.dispose()


def test_history_on_sqlite(tmp_path) -> None:
    from db_utils.engine import make_engine, upgrade_database

    url = f"sqlite:///{tmp_path / 'h.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    add_history(engine, 3, ["a+1990", "b+1991"], {"b+1991": 5})
    store = HistoryStore(history_engine(url, 1, 500, 1), retry_seconds=1)
    assert [(i.movie_id, i.rating) for i in store.history(3)] == [("b+1991", 5), ("a+1990", None)]
    store.dispose()
    engine.dispose()


def test_a_failing_statement_opens_the_breaker(postgres_url: str) -> None:
    store = HistoryStore(history_engine(postgres_url, 1, 500, 1), retry_seconds=5)
    with pytest.raises(DatabaseUnavailable):
        store._on_cursor(lambda cursor, _info: cursor.execute("SELECT * FROM no_such_table"))
    assert store.breaker.is_open
    store.breaker = CircuitBreaker(0)
    assert store.history(1) == []  # the pool handed out a working connection again
    store.dispose()


def test_history_is_prepared_once_per_connection(postgres_url: str, pg_engine: Engine) -> None:
    add_history(pg_engine, 13, ["a+1990", "b+1991"])
    store = HistoryStore(history_engine(postgres_url, 1, 500, 1), retry_seconds=1)
    assert [i.movie_id for i in store.history(13)] == ["b+1991", "a+1990"]
    assert [i.movie_id for i in store.history(13)] == ["b+1991", "a+1990"]
    prepared = store._on_cursor(lambda cursor, _info: cursor.execute(
        "SELECT count(*) FROM pg_prepared_statements WHERE name = 'movierec_history'") or cursor.fetchone()[0])
    assert prepared == 1
    store.dispose()


def test_slow_query_is_cut_by_the_statement_timeout(postgres_url: str) -> None:
    store = HistoryStore(history_engine(postgres_url, 1, 200, 1), retry_seconds=5)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable):
        store._guarded(lambda conn: conn.execute(text("SELECT pg_sleep(3)")).scalar())
    assert time.monotonic() - started < 2
    assert store.breaker.is_open  # later requests skip the database at once
    with pytest.raises(DatabaseUnavailable, match="marked down"):
        store.history(1)
    store.dispose()


def test_unreachable_database_fails_fast(tmp_path) -> None:
    url = f"postgresql+psycopg2://root@127.0.0.1:{free_port()}/test"
    store = HistoryStore(history_engine(url, 1, 500, 1), retry_seconds=0)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable):
        store.history(1)
    assert time.monotonic() - started < 1.5
    with pytest.raises(DatabaseUnavailable):
        store.ping()


def test_recovers_after_the_server_connection_is_cut(postgres_url: str, pg_engine: Engine) -> None:
    add_history(pg_engine, 12, ["a+1990"])
    target = make_url(postgres_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432).start()
    try:
        url = target.set(port=proxy.port).render_as_string(hide_password=False)
        store = HistoryStore(history_engine(url, 1, 500, 1), retry_seconds=0)
        assert len(store.history(12)) == 1
        proxy.stop()  # pooled connection dies, as on a database restart
        proxy.start()
        assert len(store.history(12)) == 1  # stale connection detected, one retry on a fresh one
        store.dispose()
    finally:
        proxy.stop()
