"""db_utils on PostgreSQL and SQLite: migrations, idempotent writes, latest rating wins, history."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, inspect, select

from db_utils.engine import make_engine, upgrade_database
from db_utils.models import DeadLetter, Rating, Recommendation, Watch
from db_utils.queries import (
    HistoryQuery,
    bulk_insert_recommendations,
    bulk_upsert_ratings,
    bulk_upsert_watches,
    history_for,
    insert_dead_letters,
    upsert_movies,
)
from db_utils.rows import DeadLetterRow, RatingRow, RecommendationRow, WatchRow

T0 = datetime(2023, 10, 25, 0, 56, 34)
EXPECTED_TABLES = {"users", "movies", "watches", "ratings", "recommendations", "dead_letters",
                   "deployments", "alembic_version"}


def _rows(engine: Engine, model: type) -> list[tuple]:
    with engine.connect() as conn:
        table = model.__table__
        return [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]


def test_migrations_create_every_table(db_engine: Engine) -> None:
    assert set(inspect(db_engine).get_table_names()) >= EXPECTED_TABLES


def test_upgrade_is_idempotent(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'again.db'}"
    upgrade_database(url)
    upgrade_database(url)
    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) >= EXPECTED_TABLES
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_watch_upsert_keeps_max_minute_and_time_bounds(db_engine: Engine) -> None:
    batch = [
        WatchRow(1, "the+dark+knight+2008", 35, T0, T0),
        WatchRow(1, "the+dark+knight+2008", 12, T0 - timedelta(hours=1), T0 - timedelta(hours=1)),
        WatchRow(2, "heat+1995", 3, T0, T0),
    ]
    with db_engine.begin() as conn:
        assert bulk_upsert_watches(conn, batch) == 2
    later = [WatchRow(1, "the+dark+knight+2008", 20, T0 + timedelta(hours=2), T0 + timedelta(hours=2))]
    with db_engine.begin() as conn:
        bulk_upsert_watches(conn, later)
    rows = {(r[0], r[1]): r for r in _rows(db_engine, Watch)}
    knight = rows[(1, "the+dark+knight+2008")]
    assert knight[2] == 35
    assert knight[3] == T0 - timedelta(hours=1)
    assert knight[4] == T0 + timedelta(hours=2)
    assert rows[(2, "heat+1995")][2] == 3


def test_replaying_a_batch_leaves_identical_rows(db_engine: Engine) -> None:
    watches = [WatchRow(u, f"movie+{m}+2000", m * 3, T0 + timedelta(minutes=m), T0 + timedelta(minutes=m + u))
               for u in range(1, 30) for m in range(5)]
    ratings = [RatingRow(u, f"movie+{u % 5}+2000", 1 + u % 5, T0 + timedelta(seconds=u)) for u in range(1, 30)]
    recs = [RecommendationRow(f"{u:040x}", T0, u, "lb:8082", 200, ("a+2000", "b+2001"), 42, "seed")
            for u in range(1, 10)]
    dead = [DeadLetterRow(f"movielog:0:{i}", "malformed", f"garbage {i}") for i in range(5)]

    def write() -> None:
        with db_engine.begin() as conn:
            bulk_upsert_watches(conn, watches)
            bulk_upsert_ratings(conn, ratings)
            bulk_insert_recommendations(conn, recs)
            insert_dead_letters(conn, dead)

    write()
    first = [_rows(db_engine, m) for m in (Watch, Rating, Recommendation)]
    first_dead = [r[1:] for r in _rows(db_engine, DeadLetter)]
    write()
    assert [_rows(db_engine, m) for m in (Watch, Rating, Recommendation)] == first
    assert [r[1:] for r in _rows(db_engine, DeadLetter)] == first_dead
    assert len(first[0]) == 29 * 5 and len(first[1]) == 29 and len(first[2]) == 9


def test_latest_rating_wins_in_any_arrival_order(db_engine: Engine) -> None:
    old = RatingRow(7, "heat+1995", 5, T0)
    new = RatingRow(7, "heat+1995", 2, T0 + timedelta(days=1))
    with db_engine.begin() as conn:
        bulk_upsert_ratings(conn, [new])
    with db_engine.begin() as conn:
        bulk_upsert_ratings(conn, [old])  # arrives late: must not overwrite
    assert _rows(db_engine, Rating) == [(7, "heat+1995", 2, T0 + timedelta(days=1))]
    with db_engine.begin() as conn:
        bulk_upsert_ratings(conn, [RatingRow(7, "heat+1995", 4, T0 + timedelta(days=2))])
    assert _rows(db_engine, Rating)[0][2] == 4


def test_history_joins_watches_and_ratings_in_one_query(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        bulk_upsert_watches(conn, [WatchRow(3, "a+2000", 90, T0, T0),
                                   WatchRow(3, "b+2001", 5, T0, T0 + timedelta(hours=1))])
        bulk_upsert_ratings(conn, [RatingRow(3, "a+2000", 4, T0 + timedelta(hours=2)), RatingRow(3, "c+2002", 1, T0)])
        bulk_upsert_watches(conn, [WatchRow(4, "z+1999", 1, T0, T0)])
    with db_engine.connect() as conn:
        history = history_for(conn, 3)
    assert [(h.movie_id, h.max_minute, h.rating) for h in history] == [
        ("a+2000", 90, 4), ("b+2001", 5, None), ("c+2002", None, 1)]
    assert history[0].last_event == T0 + timedelta(hours=2)
    with db_engine.connect() as conn:
        assert history_for(conn, 999) == []


def test_history_on_a_driver_cursor_matches_history_for(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        bulk_upsert_watches(conn, [WatchRow(5, "a+2000", 90, T0, T0),
                                   WatchRow(5, "b+2001", 5, T0, T0 + timedelta(hours=1))])
        bulk_upsert_ratings(conn, [RatingRow(5, "a+2000", 4, T0 + timedelta(hours=2)), RatingRow(5, "c+2002", 1, T0)])
    query = HistoryQuery.for_dialect(db_engine.dialect)
    connection = db_engine.raw_connection()
    try:
        cursor = connection.cursor()
        got = query.run(cursor, 5)
        assert query.run(cursor, 999) == []
        info: dict[str, object] = {}
        assert query.run(cursor, 5, info) == query.run(cursor, 5, info) == got  # prepared once on PostgreSQL
        cursor.close()
    finally:
        connection.close()
    with db_engine.connect() as conn:
        assert got == history_for(conn, 5)
    assert got[0].last_event == T0 + timedelta(hours=2)  # a datetime on SQLite too


def test_large_batches_are_chunked(db_engine: Engine) -> None:
    rows = [WatchRow(u, "m+2000", 1, T0, T0) for u in range(5000)]
    with db_engine.begin() as conn:
        assert bulk_upsert_watches(conn, rows) == 5000
    assert len(_rows(db_engine, Watch)) == 5000


def test_movies_upsert(db_engine: Engine) -> None:
    movie = {"id": "heat+1995", "title": "Heat", "year": 1995, "adult": False, "popularity": 1.5,
             "description_source": "template", "field_sources": {"runtime": "imdb"}}
    with db_engine.begin() as conn:
        upsert_movies(conn, [movie])
        upsert_movies(conn, [{**movie, "popularity": 2.5}])
    with db_engine.connect() as conn:
        pop = conn.exec_driver_sql("SELECT popularity FROM movies WHERE id = 'heat+1995'").scalar()
        assert pop == 2.5


def test_dead_letters_keep_binary_and_nul_safely(db_engine: Engine) -> None:
    raw = "\x00\x01garbage\ufffd"
    with db_engine.begin() as conn:
        insert_dead_letters(conn, [DeadLetterRow("movielog:0:1", "not_utf8", raw)])
    assert "garbage" in _rows(db_engine, DeadLetter)[0][5]
