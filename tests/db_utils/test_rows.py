"""The merge rule of repeated events (db_utils.rows), pure: associative, commutative, idempotent, as declared."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from db_utils.rows import (
    RATING_MERGE,
    WATCH_MERGE,
    MergeRule,
    RatingRow,
    WatchRow,
    merge_rating,
    merge_rating_rows,
    merge_watch,
    merge_watch_rows,
    merge_watch_span,
)

T0 = datetime(2023, 10, 25, 0, 56, 34)
times = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1))


@st.composite
def watch_rows(draw: st.DrawFn, user: int = 1, movie: str = "heat+1995") -> WatchRow:
    first = draw(times)
    return WatchRow(user, movie, draw(st.integers(0, 999_999)), first,
                    first + draw(st.timedeltas(timedelta(0), timedelta(days=3))))


@st.composite
def rating_rows(draw: st.DrawFn, user: int = 1, movie: str = "heat+1995") -> RatingRow:
    # Few distinct times, so that equal times (ties to the higher rating) come up often.
    return RatingRow(user, movie, draw(st.integers(1, 5)), T0 + timedelta(seconds=draw(st.integers(0, 3))))


@given(watch_rows(), watch_rows(), watch_rows())
def test_watch_merge_is_associative_commutative_and_idempotent(a: WatchRow, b: WatchRow, c: WatchRow) -> None:
    assert merge_watch(merge_watch(a, b), c) == merge_watch(a, merge_watch(b, c))
    assert merge_watch(a, b) == merge_watch(b, a)
    assert merge_watch(a, a) == a
    assert merge_watch(merge_watch(a, b), b) == merge_watch(a, b)


@given(rating_rows(), rating_rows(), rating_rows())
def test_rating_merge_is_associative_commutative_and_idempotent(a: RatingRow, b: RatingRow, c: RatingRow) -> None:
    assert merge_rating(merge_rating(a, b), c) == merge_rating(a, merge_rating(b, c))
    assert merge_rating(a, b) == merge_rating(b, a)
    assert merge_rating(a, a) == a
    assert merge_rating(merge_rating(a, b), b) == merge_rating(a, b)


_PICK = {"max": max, "min": min}


@given(watch_rows(), watch_rows())
def test_watch_merge_is_what_watch_merge_declares(a: WatchRow, b: WatchRow) -> None:
    """The Python merge and the declaration the SQL is built from say the same, column by column."""
    merged = merge_watch(a, b)
    assert (merged.user_id, merged.movie_id) == (a.user_id, a.movie_id)
    for column, op in WATCH_MERGE.columns.items():
        assert getattr(merged, column) == _PICK[op](getattr(a, column), getattr(b, column))
    assert set(WATCH_MERGE.columns) | set(WATCH_MERGE.key) == set(WatchRow.__slots__)


@given(rating_rows(), rating_rows())
def test_rating_merge_is_what_rating_merge_declares(a: RatingRow, b: RatingRow) -> None:
    def newness(row: RatingRow) -> tuple:
        return tuple(getattr(row, column) for column in RATING_MERGE.newest_by)

    merged = merge_rating(a, b)
    newest = max(a, b, key=newness)
    assert set(RATING_MERGE.columns.values()) == {"newest"}
    for column in RATING_MERGE.columns:
        assert getattr(merged, column) == getattr(newest, column)
    assert set(RATING_MERGE.columns) | set(RATING_MERGE.key) == set(RatingRow.__slots__)


@given(st.lists(watch_rows(), min_size=1, max_size=8), st.lists(watch_rows(), min_size=1, max_size=8))
def test_the_span_form_on_iso_text_agrees_with_datetimes(xs: list[WatchRow], ys: list[WatchRow]) -> None:
    """The stream batch folds validated ISO text (bytes): it orders as the datetimes do."""
    rows = xs + ys

    def span(row: WatchRow) -> tuple[int, bytes, bytes]:
        return (row.max_minute, row.first_seen.isoformat().encode(), row.last_seen.isoformat().encode())

    minute, first, last = functools.reduce(merge_watch_span, map(span, rows))
    merged = functools.reduce(merge_watch, rows)
    assert (minute, datetime.fromisoformat(first.decode()), datetime.fromisoformat(last.decode())) == (
        merged.max_minute, merged.first_seen, merged.last_seen)


pairs = st.tuples(st.integers(1, 3), st.sampled_from(["heat+1995", "up+2009"]))


@given(st.lists(pairs.flatmap(lambda p: watch_rows(*p)), max_size=30), st.randoms())
def test_folding_watches_in_any_order_gives_the_same_rows(rows: list[WatchRow], rnd) -> None:
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    merged = merge_watch_rows(rows)
    assert sorted(merged, key=_key) == sorted(merge_watch_rows(shuffled), key=_key)
    assert len(merged) == len({_key(r) for r in rows})
    assert merge_watch_rows(merged) == merged


@given(st.lists(pairs.flatmap(lambda p: rating_rows(*p)), max_size=30), st.randoms())
def test_folding_ratings_in_any_order_gives_the_same_rows(rows: list[RatingRow], rnd) -> None:
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    merged = merge_rating_rows(rows)
    assert sorted(merged, key=_key) == sorted(merge_rating_rows(shuffled), key=_key)
    assert merge_rating_rows(merged) == merged


def _key(row: WatchRow | RatingRow) -> tuple[int, str]:
    return (row.user_id, row.movie_id)


def test_examples() -> None:
    assert merge_watch(WatchRow(1, "m", 4, T0, T0), WatchRow(1, "m", 9, T0 - timedelta(1), T0 - timedelta(1))) == (
        WatchRow(1, "m", 9, T0 - timedelta(1), T0))
    older, newer = RatingRow(7, "m", 5, T0), RatingRow(7, "m", 2, T0 + timedelta(days=1))
    assert merge_rating(newer, older) == merge_rating(older, newer) == newer
    low, high = RatingRow(1, "m", 3, T0), RatingRow(1, "m", 5, T0)  # same time: the higher rating
    assert merge_rating_rows([low, high]) == merge_rating_rows([high, low]) == [high]


def test_rows_of_different_pairs_do_not_merge() -> None:
    with pytest.raises(ValueError, match="different pairs"):
        merge_watch(WatchRow(1, "a", 1, T0, T0), WatchRow(1, "b", 1, T0, T0))
    with pytest.raises(ValueError, match="different pairs"):
        merge_rating(RatingRow(1, "a", 1, T0), RatingRow(2, "a", 1, T0))


def test_a_rule_cannot_mix_newest_with_max_or_min() -> None:
    with pytest.raises(ValueError, match="newest"):
        MergeRule("t", ("k",), {"a": "newest", "b": "max"}, newest_by=("a",))
    with pytest.raises(ValueError, match="newest"):
        MergeRule("t", ("k",), {"a": "newest"})
