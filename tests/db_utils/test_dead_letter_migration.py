"""Migration 0002 on both dialects: existing dead letters get a key, a reused offset no longer hides a
new bad line, a replay still adds nothing, and the downgrade goes back to one row per source."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from db_utils.engine import alembic_config, make_engine, upgrade_database
from db_utils.queries import insert_dead_letters
from db_utils.rows import DeadLetterRow, dead_letter_key
from movierec.base.scratch import postgres_schema_url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
    else:
        with postgres_schema_url() as url:
            yield url


def _letters(engine) -> list[tuple]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        query = text("SELECT source, raw_line, event_key FROM dead_letters ORDER BY id")
        return [tuple(r) for r in conn.execute(query)]


def test_dead_letter_identity_migration_up_and_down(empty_database_url: str) -> None:
    url = empty_database_url
    engine = make_engine(url)
    try:
        upgrade_database(url, "0001", engine=engine)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO dead_letters (source, reason, raw_line, received_at) "
                              "VALUES ('movielog:0:7', 'empty', 'old line', CURRENT_TIMESTAMP)"))
        upgrade_database(url, engine=engine)
        legacy = hashlib.sha1(b"movielog:0:7\nold line").hexdigest()
        assert _letters(engine) == [("movielog:0:7", "old line", legacy)]

        line = "new line at a reused offset"
        new = DeadLetterRow("movielog:0:7", "bad_time", line,
                            event_key=dead_letter_key("movielog:0:7", 1_700_000_000_000, line.encode()))
        with engine.begin() as conn:
            insert_dead_letters(conn, [new])
            insert_dead_letters(conn, [new])  # a replay of the same message
        assert [row[1] for row in _letters(engine)] == ["old line", "new line at a reused offset"]

        with engine.begin() as conn:
            config = alembic_config(url)
            config.attributes["connection"] = conn
            command.downgrade(config, "0001")
        with engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(text("SELECT source, raw_line FROM dead_letters"))]
        assert rows == [("movielog:0:7", "old line")]
    finally:
        engine.dispose()


def test_key_tells_a_replay_from_a_new_message_at_the_same_offset() -> None:
    key = dead_letter_key("movielog:0:7", 1000, b"x")
    assert key == dead_letter_key("movielog:0:7", 1000, b"x")  # replay
    assert len({key, dead_letter_key("movielog:0:7", 1001, b"x"), dead_letter_key("movielog:0:7", 1000, b"y"),
                dead_letter_key("movielog:0:8", 1000, b"x")}) == 4
