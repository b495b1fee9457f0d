"""Engines and sessions from DATABASE_URL; migrations applied with Alembic."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def _prepare_sqlite(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str, *, pool_size: int = 5, echo: bool = False) -> Engine:
    """An engine for PostgreSQL or SQLite; SQLite files run in WAL mode with a busy timeout."""
    if url.startswith("sqlite"):
        _prepare_sqlite(url)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        pool_pre_ping=True,
        # Fail fast when the server is unreachable; callers retry with backoff.
        connect_args={"connect_timeout": 5} if url.startswith("postgresql") else {},
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    """The Alembic config for the packaged migrations, pointed at `url`."""
    from alembic.config import Config

    ini = resources.files("db_utils") / "alembic.ini"
    config = Config(str(ini))
    config.set_main_option("script_location", str(resources.files("db_utils") / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str, revision: str = "head", engine: Engine | None = None) -> None:
    """Apply migrations up to `revision` (idempotent). Uses `engine` when given (e.g. a schema)."""
    from alembic import command

    config = alembic_config(url)
    if url.startswith("sqlite"):
        _prepare_sqlite(url)
    if engine is not None:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    else:
        command.upgrade(config, revision)
