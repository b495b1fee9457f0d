"""db_utils bulk paths (COPY on PostgreSQL, executemany on SQLite) match the row-by-row upserts."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, text

from db_utils.models import Rating, Recommendation, Watch
from db_utils.queries import (
    RatingRow,
    RecommendationRow,
    WatchRow,
    bulk_insert_recommendations,
    bulk_upsert_ratings,
    bulk_upsert_watches,
    insert_recommendations,
    upsert_ratings,
    upsert_watches,
)

T0 = datetime(2023, 10, 25, 0, 56, 34)


def _rows(engine: Engine, model: type) -> list[tuple]:
    with engine.connect() as conn:
        table = model.__table__
        columns = [c for c in table.columns if c.name != "id"]
        return [tuple(r) for r in conn.execute(select(*columns).order_by(*table.primary_key.columns))]


def _clear(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in ("watches", "ratings", "recommendations"):
            conn.execute(text(f"DELETE FROM {table}"))


def _random_batches(seed: int) -> list[tuple[list[WatchRow], list[RatingRow], list[RecommendationRow]]]:
    rng = random.Random(seed)
    movies = ["the+dark+knight+2008", "amélie+2001", 'say+"hi"+1999', "back\\slash+2000", "heat+1995"]
    batches = []
    for _ in range(4):
        watches, ratings, recos = [], [], []
        for _ in range(300):
            when = T0 + timedelta(seconds=rng.randint(0, 5000), microseconds=rng.choice([0, 250_000]))
            user, movie = rng.randint(1, 20), rng.choice(movies)
            later = when + timedelta(minutes=rng.randint(0, 3))
            watches.append(WatchRow(user, movie, rng.randint(0, 120), when, later))
            ratings.append(RatingRow(user, movie, rng.randint(1, 5), when))
            key = f"{rng.randint(0, 400):040x}"
            recos.append(RecommendationRow(key, when, user, "v1@127.0.0.1:8082", 200, (movie, "heat+1995"),
                                           rng.choice([None, 40]), rng.choice([None, "v1"])))
        batches.append((watches, ratings, recos))
    return batches


def test_bulk_paths_write_the_same_rows_as_the_upserts(db_engine: Engine) -> None:
    batches = _random_batches(seed=3)
    for watches, ratings, recos in batches:
        with db_engine.begin() as conn:
            upsert_watches(conn, watches)
            upsert_ratings(conn, ratings)
            insert_recommendations(conn, recos)
    expected = [_rows(db_engine, model) for model in (Watch, Rating, Recommendation)]
    _clear(db_engine)
    for _ in range(2):  # a replay changes nothing
        for watches, ratings, recos in batches:
            with db_engine.begin() as conn:
                assert bulk_upsert_watches(conn, watches) == len({(r.user_id, r.movie_id) for r in watches})
                bulk_upsert_ratings(conn, ratings)
                bulk_insert_recommendations(conn, recos)
        assert [_rows(db_engine, model) for model in (Watch, Rating, Recommendation)] == expected
    assert len(expected[0]) > 50 and len(expected[2]) > 100


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
