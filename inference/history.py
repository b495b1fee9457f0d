"""The database edge: a user's history in one query, with short timeouts and a circuit breaker (inference.breaker).

A dead database must cost a request almost nothing: PostgreSQL connects time out after
`connect_timeout` seconds, statements after `statement_timeout`, and after a failure the breaker
skips the database for `retry_seconds` (requests get the fallback list at once; no retry storm).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from db_utils.engine import make_engine
from db_utils.queries import HistoryItem, HistoryQuery
from inference.breaker import CircuitBreaker

log = logging.getLogger(__name__)


class DatabaseUnavailable(RuntimeError):
    """The history could not be read (database down, slow, or the breaker is open)."""


def postgres_url_with_timeouts(url: str, statement_timeout_ms: int) -> Any:
    """The URL with `-c statement_timeout=...` appended to any libpq `options` it already has."""
    parsed = make_url(url)
    existing = parsed.query.get("options", "")
    if isinstance(existing, tuple):
        existing = " ".join(existing)
    options = f"{existing} -c statement_timeout={int(statement_timeout_ms)}".strip()
    return parsed.update_query_dict({"options": options})


def history_engine(url: str, connect_timeout_seconds: int, statement_timeout_ms: int, pool_size: int) -> Engine:
    """An engine tuned to fail fast: short connect and statement timeouts on PostgreSQL."""
    if not url.startswith("postgresql"):
        return make_engine(url, pool_size=pool_size)
    # Read-only autocommit: no BEGIN/ROLLBACK round trips; no pre-ping either (a stale connection
    # fails once, invalidates the pool, and HistoryStore retries once on a fresh connection).
    return create_engine(
        postgres_url_with_timeouts(url, statement_timeout_ms),
        isolation_level="AUTOCOMMIT",
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=1,
        pool_pre_ping=False,
        connect_args={"connect_timeout": max(1, int(connect_timeout_seconds))},
    )


class HistoryStore:
    """Reads histories through the breaker; every failure becomes DatabaseUnavailable.

    `history` runs on the pooled connection's DBAPI cursor (HistoryQuery): the request path's
    one query without SQLAlchemy's per-call Connection and Result objects.
    """

    def __init__(self, engine: Engine, retry_seconds: float) -> None:
        self.engine = engine
        self.breaker = CircuitBreaker(retry_seconds)
        self._query = HistoryQuery.for_dialect(engine.dialect)
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error

    def _fail(self, exc: Exception) -> DatabaseUnavailable:
        self.breaker.failure()
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        log.warning("history query failed: %s", first_line)
        return DatabaseUnavailable(first_line)

    def _on_cursor(self, action: Callable[[Any, dict[str, Any]], Any]) -> Any:
        """`action(cursor, connection_info)` on a pooled DBAPI connection, through the breaker; a connection
        the server dropped (restart) is discarded and the action retried once on a fresh one."""
        if not self.breaker.allow():
            raise DatabaseUnavailable("database marked down; retrying after the breaker delay")
        for attempt in (1, 2):
            try:
                connection = self.engine.raw_connection()
            except (SQLAlchemyError, self._driver_error) as exc:
                raise self._fail(exc) from exc
            try:
                cursor = connection.cursor()
                try:
                    result = action(cursor, connection.info)
                finally:
                    cursor.close()
            except self._driver_error as exc:
                disconnected = self.engine.dialect.is_disconnect(exc, connection.dbapi_connection, None)
                connection.invalidate(exc)
                if disconnected and attempt == 1:
                    continue
                raise self._fail(exc) from exc
            finally:
                connection.close()  # back to the pool (a no-op once invalidated)
            self.breaker.success()
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _guarded(self, action: Callable[[Any], Any]) -> Any:
        if not self.breaker.allow():
            raise DatabaseUnavailable("database marked down; retrying after the breaker delay")
        try:
            try:
                with self.engine.connect() as conn:
                    result = action(conn)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                with self.engine.connect() as conn:  # the server restarted: one retry, fresh connection
                    result = action(conn)
        except SQLAlchemyError as exc:
            raise self._fail(exc) from exc
        self.breaker.success()
        return result

    def history(self, user_id: int) -> list[HistoryItem]:
        """The user's watched and rated films, most recent first (one query)."""
        return self._on_cursor(lambda cursor, info: self._query.run(cursor, user_id, info))

    def ping(self) -> None:
        """Raise DatabaseUnavailable unless `SELECT 1` answers."""
        self._guarded(lambda conn: conn.execute(text("SELECT 1")).scalar())

    def dispose(self) -> None:
        self.engine.dispose()
