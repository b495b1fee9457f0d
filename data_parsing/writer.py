"""Write one aggregated batch through db_utils in a single transaction."""

from __future__ import annotations

from sqlalchemy import Engine

from data_parsing.batch import BatchRows
from db_utils.queries import (
    bulk_insert_recommendations,
    bulk_upsert_ratings,
    bulk_upsert_watches,
    insert_dead_letters,
)


def write_batch(engine: Engine, rows: BatchRows) -> None:
    """All rows of a batch, or none of them (one transaction; every statement is idempotent)."""
    with engine.begin() as connection:
        bulk_upsert_watches(connection, rows.watches)
        bulk_upsert_ratings(connection, rows.ratings)
        bulk_insert_recommendations(connection, rows.recommendations)
        insert_dead_letters(connection, rows.dead_letters)
