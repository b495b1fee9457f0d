"""The rows the stream writes (the parser's output, db_utils' input) and the rule that merges repeated events.

A (user, movie) pair comes back again and again on the stream: every streamed minute is a watch line, a
user may rate a film twice. The merge rule says what the one row of a pair holds, whatever the arrival
order and however often a batch is replayed:

- watches: the furthest minute, the earliest first seen, the latest last seen;
- ratings: the newest rating wins (latest event time; equal times go to the higher rating).

It is stated once, here: `WATCH_MERGE` and `RATING_MERGE` declare it per column (db_utils.queries builds
the SQL `ON CONFLICT` clauses from them), and `merge_watch` / `merge_rating` apply it in Python (the
in-memory batch of data_parsing.batch and the bulk writers fold with them). The merges are associative,
commutative and idempotent, so any grouping of the events gives the same row (tests/db_utils/test_rows.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Literal, TypeVar


@dataclass(frozen=True, slots=True)
class WatchRow:
    user_id: int
    movie_id: str
    max_minute: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class RatingRow:
    user_id: int
    movie_id: str
    rating: int
    rated_at: datetime


@dataclass(frozen=True, slots=True)
class RecommendationRow:
    event_key: str
    requested_at: datetime
    user_id: int
    served_by: str
    status: int
    results: tuple[str, ...]
    latency_ms: int | None
    model_version: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    source: str
    reason: str
    raw_line: str
    detail: str | None = None
    received_at: datetime | None = None
    # Identity of the message (see dead_letter_key); None: sha1 of source and raw line.
    event_key: str | None = None


def dead_letter_key(source: str, timestamp_ms: int, raw: bytes) -> str:
    """A dead letter's identity: the same for a replayed message, new for a new message at a reused offset."""
    return hashlib.sha1(f"{source}@{timestamp_ms}\n".encode() + raw).hexdigest()


# --- The merge rule ---------------------------------------------------------------------------------

MergeOp = Literal["max", "min", "newest"]


@dataclass(frozen=True)
class MergeRule:
    """How a table's row absorbs a repeated event of its key, column by column.

    `columns`: column -> "max" (the larger value stays), "min" (the smaller stays) or "newest" (the value of
    the newest row). `newest_by`: the columns that order rows by newness, compared left to right.
    """

    table: str
    key: tuple[str, ...]
    columns: Mapping[str, MergeOp]
    newest_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        ops = set(self.columns.values())
        if "newest" in ops and (ops != {"newest"} or not self.newest_by):
            # SQL keeps a newest-wins row whole (`DO UPDATE ... WHERE newer`): no max/min column beside it.
            raise ValueError(f"{self.table}: 'newest' columns need newest_by and no 'max'/'min' column beside them")
        if not ops <= {"max", "min", "newest"}:
            raise ValueError(f"{self.table}: unknown merge operation in {sorted(ops)}")


WATCH_MERGE = MergeRule(
    table="watches",
    key=("user_id", "movie_id"),
    columns={"max_minute": "max", "first_seen": "min", "last_seen": "max"},
)
RATING_MERGE = MergeRule(
    table="ratings",
    key=("user_id", "movie_id"),
    columns={"rating": "newest", "rated_at": "newest"},
    newest_by=("rated_at", "rating"),
)

# A time is a datetime, or (in the stream batch) its validated ISO text, which sorts the same way.
Time = TypeVar("Time", datetime, bytes)
WatchSpan = tuple[int, Time, Time]  # (max_minute, first_seen, last_seen) of one (user, movie)


def merge_watch_span(a: WatchSpan[Time], b: WatchSpan[Time]) -> WatchSpan[Time]:
    """WATCH_MERGE on the merged columns alone, (max_minute, first_seen, last_seen): the hot loop's form."""
    return (a[0] if a[0] >= b[0] else b[0], a[1] if a[1] <= b[1] else b[1], a[2] if a[2] >= b[2] else b[2])


def merge_watch(a: WatchRow, b: WatchRow) -> WatchRow:
    """Two watch rows of the same (user, movie) as one: furthest minute, earliest first seen, latest last seen."""
    _same_key(a.user_id, a.movie_id, b.user_id, b.movie_id)
    span = merge_watch_span((a.max_minute, a.first_seen, a.last_seen), (b.max_minute, b.first_seen, b.last_seen))
    return WatchRow(a.user_id, a.movie_id, *span)


_newness = attrgetter(*RATING_MERGE.newest_by)  # (rated_at, rating)


def merge_rating(a: RatingRow, b: RatingRow) -> RatingRow:
    """Two ratings of the same (user, movie) as one: the latest event time wins, equal times the higher rating."""
    _same_key(a.user_id, a.movie_id, b.user_id, b.movie_id)
    return b if _newness(b) > _newness(a) else a


def _same_key(user_a: int, movie_a: str, user_b: int, movie_b: str) -> None:
    if user_a != user_b or movie_a != movie_b:
        raise ValueError(f"cannot merge rows of different pairs: ({user_a}, {movie_a}) and ({user_b}, {movie_b})")


Row = TypeVar("Row", WatchRow, RatingRow)


def _fold(rows: Iterable[Row], merge: Callable[[Row, Row], Row]) -> list[Row]:
    """One row per (user, movie), folded with `merge`, in order of first appearance."""
    merged: dict[tuple[int, str], Row] = {}
    for row in rows:
        key = (row.user_id, row.movie_id)
        old = merged.get(key)
        merged[key] = row if old is None else merge(old, row)
    return list(merged.values())


def merge_watch_rows(rows: Iterable[WatchRow]) -> list[WatchRow]:
    """One row per (user, movie), folded with merge_watch, in order of first appearance."""
    return _fold(rows, merge_watch)


def merge_rating_rows(rows: Iterable[RatingRow]) -> list[RatingRow]:
    """One rating per (user, movie), folded with merge_rating, in order of first appearance."""
    return _fold(rows, merge_rating)
