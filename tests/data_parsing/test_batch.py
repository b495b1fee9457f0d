"""Batch aggregation (pure): one row per pair, latest rating, dead letters with their source."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from data_parsing.batch import Batch
from data_parsing.parser import RatingEvent, WatchEvent, parse_line
from db_utils.rows import RatingRow, WatchRow, merge_rating_rows, merge_watch_rows

T0 = datetime(2023, 10, 25, 0, 56, 34)

LINES = [
    b"2023-10-25T00:56:34,7,GET /data/m/heat+1995/1.mpg",
    b"2023-10-25T00:57:34.5,7,GET /data/m/heat+1995/2.mpg",
    b"2023-10-25T00:55:00,7,GET /data/m/heat+1995/0.mpg",  # out of order: earlier first_seen
    b"2023-10-25T00:58:00,7,GET /data/m/heat+1995/1.mpg",  # rewind: max minute stays 2
    b"2023-10-25T00:56:34,8,GET /data/m/heat+1995/9.mpg",
    b"2023-10-25T01:00:00,7,GET /rate/heat+1995=3",
    b"2023-10-25T01:05:00,7,GET /rate/heat+1995=5",
    b"2023-10-25T01:01:00,7,GET /rate/heat+1995=1",  # older than the 5: ignored
    b"2023-10-25T01:01:00,7,recommendation request v2@127.0.0.1:8082, status 200, result: heat+1995, 20 ms",
    b"2023-10-25T01:01:00,7,recommendation request v2@127.0.0.1:8082, status 200, result: heat+1995, 20 ms",
    b"2023-10-25T01:01:00,7,GET /rate/heat+1995=9",
    b"\xff\xfe",
]


@dataclass
class Message:
    offset: int
    value: bytes | None


def _batch() -> Batch:
    batch = Batch()
    messages = [Message(100 + i, line) for i, line in enumerate(LINES)]
    batch.add_records("movielog", 0, messages[:5])
    batch.add_records("movielog", 0, messages[5:])
    batch.add_records("movielog", 1, [Message(7, None)])
    return batch


def test_watches_fold_into_one_row_per_pair() -> None:
    rows = _batch().rows()
    watches = sorted((r.user_id, r.movie_id, r.max_minute, r.first_seen, r.last_seen) for r in rows.watches)
    assert watches == [
        (7, "heat+1995", 2, datetime(2023, 10, 25, 0, 55), datetime(2023, 10, 25, 0, 58)),
        (8, "heat+1995", 9, datetime(2023, 10, 25, 0, 56, 34), datetime(2023, 10, 25, 0, 56, 34)),
    ]


def test_latest_rating_wins_and_duplicate_recommendations_collapse() -> None:
    rows = _batch().rows()
    assert [(r.user_id, r.movie_id, r.rating, r.rated_at) for r in rows.ratings] == [
        (7, "heat+1995", 5, datetime(2023, 10, 25, 1, 5))]
    assert len(rows.recommendations) == 1
    reco = rows.recommendations[0]
    assert reco.event_key == hashlib.sha1(LINES[8]).hexdigest()
    assert (reco.served_by, reco.model_version, reco.results, reco.latency_ms) == (
        "v2@127.0.0.1:8082", "v2", ("heat+1995",), 20)


def test_malformed_messages_become_dead_letters_with_source() -> None:
    batch = _batch()
    rows = batch.rows()
    assert [(d.source, d.reason) for d in rows.dead_letters] == [
        ("movielog:0:110", "rating_out_of_range"), ("movielog:0:111", "not_utf8"), ("movielog:1:7", "empty")]
    assert rows.dead_letters[1].raw_line == "\ufffd\ufffd"
    assert batch.dead_letter_reasons == {"rating_out_of_range": 1, "not_utf8": 1, "empty": 1}


def test_counts_and_offsets() -> None:
    batch = _batch()
    assert batch.size == len(LINES) + 1
    assert batch.events == {"watch": 5, "rating": 3, "recommendation": 2}
    assert batch.offsets == {("movielog", 0): 100 + len(LINES), ("movielog", 1): 8}
    assert batch.start_offsets == {("movielog", 0): 100, ("movielog", 1): 7}


def test_huge_line_is_kept_truncated_with_a_note() -> None:
    batch = Batch()
    batch.add("movielog", 0, 5, b"x" * 20_000)
    (letter,) = batch.rows().dead_letters
    assert letter.reason == "too_long" and len(letter.raw_line) == 8192 and "20000 bytes" in (letter.detail or "")


@st.composite
def stream_lines(draw: st.DrawFn) -> list[bytes]:
    """Watch and rating lines of a few (user, movie) pairs, times with and without fractions, in any order."""
    lines = []
    for _ in range(draw(st.integers(1, 40))):
        user, movie = draw(st.integers(1, 3)), draw(st.sampled_from(["heat+1995", "up+2009"]))
        moment = T0 + timedelta(seconds=draw(st.integers(0, 600)), microseconds=draw(st.sampled_from([0, 5, 500_000])))
        stamp = moment.isoformat(timespec=draw(st.sampled_from(["auto", "microseconds"])))
        if draw(st.integers(0, 3)):
            lines.append(f"{stamp},{user},GET /data/m/{movie}/{draw(st.integers(0, 200))}.mpg".encode())
        else:
            lines.append(f"{stamp},{user},GET /rate/{movie}={draw(st.integers(1, 5))}".encode())
    return lines


@given(stream_lines(), st.integers(1, 10))
def test_the_batch_folds_as_the_merge_rule_says(lines: list[bytes], chunk: int) -> None:
    """The batch's in-memory fold gives the rows db_utils.rows' merge gives for the parsed events."""
    batch = Batch()
    messages = [Message(offset, line) for offset, line in enumerate(lines)]
    for start in range(0, len(messages), chunk):
        batch.add_records("movielog", 0, messages[start:start + chunk])
    events = [parse_line(line) for line in lines]
    watches = merge_watch_rows(WatchRow(e.user_id, e.movie_id, e.minute, e.time, e.time)
                               for e in events if isinstance(e, WatchEvent))
    ratings = merge_rating_rows(RatingRow(e.user_id, e.movie_id, e.rating, e.time)
                                for e in events if isinstance(e, RatingEvent))
    rows = batch.rows()
    assert rows.watches == watches and rows.ratings == ratings
