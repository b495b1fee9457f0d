"""db_utils' write path (COPY on PostgreSQL, executemany on SQLite) writes what the pure merge rule says."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text

from db_utils.models import Rating, Recommendation, Watch
from db_utils.queries import bulk_insert_recommendations, bulk_upsert_ratings, bulk_upsert_watches
from db_utils.rows import RatingRow, RecommendationRow, WatchRow, merge_rating_rows, merge_watch_rows

T0 = datetime(2023, 10, 25, 0, 56, 34)
MOVIES = ["the+dark+knight+2008", "amélie+2001", 'say+"hi"+1999', "back\\slash+2000", "heat+1995"]


def _rows(engine: Engine, model: type) -> list[tuple]:
    with engine.connect() as conn:
        table = model.__table__
        columns = [c for c in table.columns if c.name != "id"]
        return [tuple(r) for r in conn.execute(select(*columns).order_by(*table.primary_key.columns))]


def _clear(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in ("watches", "ratings", "recommendations"):
            conn.execute(text(f"DELETE FROM {table}"))


def _when(seconds: int, quarter: int) -> datetime:
    return T0 + timedelta(seconds=seconds, microseconds=250_000 * quarter)


@st.composite
def event_batches(draw: st.DrawFn) -> list[tuple[list[WatchRow], list[RatingRow]]]:
    """A few batches of watch and rating rows on a small key space (many repeats, equal times and ratings)."""
    pairs = st.tuples(st.integers(1, 4), st.sampled_from(MOVIES))
    when = st.builds(_when, st.integers(0, 50), st.integers(0, 3))
    batches = []
    for _ in range(draw(st.integers(1, 4))):
        watches = [WatchRow(u, m, minute, first, first + timedelta(minutes=extra))
                   for (u, m), minute, first, extra in draw(st.lists(
                       st.tuples(pairs, st.integers(0, 120), when, st.integers(0, 3)), max_size=25))]
        ratings = [RatingRow(u, m, rating, at)
                   for (u, m), rating, at in draw(st.lists(st.tuples(pairs, st.integers(1, 5), when), max_size=25))]
        batches.append((watches, ratings))
    return batches


def _as_table(rows: list) -> list[tuple]:
    return sorted(tuple(getattr(r, name) for name in r.__slots__) for r in rows)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=event_batches())
def test_the_sql_merge_and_the_pure_merge_agree(db_engine: Engine, batches: list) -> None:
    """The same events, written batch by batch (and replayed), leave the rows merge_*_rows folds them into."""
    _clear(db_engine)
    for _ in range(2):  # a replay changes nothing
        for watches, ratings in batches:
            with db_engine.begin() as conn:
                assert bulk_upsert_watches(conn, watches) == len({(r.user_id, r.movie_id) for r in watches})
                assert bulk_upsert_ratings(conn, ratings) == len({(r.user_id, r.movie_id) for r in ratings})
        assert _rows(db_engine, Watch) == _as_table(merge_watch_rows(w for ws, _ in batches for w in ws))
        assert _rows(db_engine, Rating) == _as_table(merge_rating_rows(r for _, rs in batches for r in rs))


def test_recommendations_are_written_once_per_event_key(db_engine: Engine) -> None:
    """A recommendation's key is the sha1 of its line: a repeated key is the same row, written once."""
    rng = random.Random(3)

    def row(key: int) -> RecommendationRow:
        draw = random.Random(key)
        when = T0 + timedelta(seconds=draw.randint(0, 5000), microseconds=draw.choice([0, 250_000]))
        return RecommendationRow(f"{key:040x}", when, draw.randint(1, 20), "v1@127.0.0.1:8082", 200,
                                 (draw.choice(MOVIES), "heat+1995"), draw.choice([None, 40]), draw.choice([None, "v1"]))

    recos = [row(rng.randint(0, 400)) for _ in range(300)]
    expected = sorted({r.event_key: (r.event_key, r.requested_at, r.user_id, r.served_by, r.model_version, r.status,
                                     list(r.results), r.latency_ms) for r in recos}.values())
    for _ in range(2):  # a replay changes nothing
        for start in range(0, len(recos), 100):
            with db_engine.begin() as conn:
                bulk_insert_recommendations(conn, recos[start:start + 100])
        assert sorted(_rows(db_engine, Recommendation)) == expected
    assert len(expected) > 100


def test_bulk_upsert_extends_existing_rows(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        bulk_upsert_watches(conn, [WatchRow(1, "heat+1995", 10, T0, T0)])
        bulk_upsert_ratings(conn, [RatingRow(1, "heat+1995", 4, T0)])
    with db_engine.begin() as conn:
        bulk_upsert_watches(conn, [WatchRow(1, "heat+1995", 5, T0 - timedelta(hours=1), T0 + timedelta(hours=1))])
        bulk_upsert_ratings(conn, [RatingRow(1, "heat+1995", 2, T0 - timedelta(days=1))])  # older: ignored
    assert _rows(db_engine, Watch) == [(1, "heat+1995", 10, T0 - timedelta(hours=1), T0 + timedelta(hours=1))]
    assert _rows(db_engine, Rating) == [(1, "heat+1995", 4, T0)]
    with db_engine.begin() as conn:
        bulk_upsert_ratings(conn, [RatingRow(1, "heat+1995", 1, T0 + timedelta(seconds=1))])
    assert _rows(db_engine, Rating) == [(1, "heat+1995", 1, T0 + timedelta(seconds=1))]


def test_bulk_write_rolls_back_with_its_transaction(db_engine: Engine) -> None:
    try:
        with db_engine.begin() as conn:
            bulk_upsert_watches(conn, [WatchRow(1, "heat+1995", 10, T0, T0)])
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert _rows(db_engine, Watch) == []
    with db_engine.begin() as conn:  # the scratch table is usable again on the same connection
        bulk_upsert_watches(conn, [WatchRow(2, "heat+1995", 3, T0, T0)])
    assert _rows(db_engine, Watch) == [(2, "heat+1995", 3, T0, T0)]
