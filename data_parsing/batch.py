"""Aggregate one batch of stream messages into database rows (pure; no I/O).

A batch folds every watch line of a (user, movie) pair into one row and keeps one rating per pair, by
the merge rule of db_utils.rows (merge_watch_span, merge_rating: furthest minute, first and last seen;
the newest rating wins), one recommendation row per distinct raw line
(`event_key` = sha1 of the line) and one dead letter per malformed message (keyed by
`topic:partition:offset`, the broker's timestamp of the message and the line: offsets are reused
when a broker loses its log, timestamps are not). Replaying the same messages yields the same rows, so writing a batch
twice (a crash before the offset commit) leaves the tables unchanged.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from data_parsing.parser import (
    MAX_LINE_BYTES,
    MalformedLine,
    RatingEvent,
    RecommendationEvent,
    parse_line_fast,
    parse_time,
)
from db_utils.rows import (
    DeadLetterRow,
    RatingRow,
    RecommendationRow,
    WatchRow,
    WatchSpan,
    dead_letter_key,
    merge_rating,
    merge_watch_span,
)

EVENT_TYPES = ("watch", "rating", "recommendation")


@dataclass(frozen=True, slots=True)
class _Message:
    offset: int
    value: bytes | None
    timestamp: int = -1


@dataclass(frozen=True, slots=True)
class BatchRows:
    """What one transaction writes."""

    watches: list[WatchRow]
    ratings: list[RatingRow]
    recommendations: list[RecommendationRow]
    dead_letters: list[DeadLetterRow]


@dataclass
class Batch:
    """Messages folded so far, and the next offset to commit for each (topic, partition)."""

    # (user, movie) -> (max minute, first seen, last seen); times as validated ISO text (bytes),
    # which sorts chronologically and is converted to datetime once per pair in rows()
    watches: dict[tuple[int, str], WatchSpan[bytes]] = field(default_factory=dict)
    # (user, movie) -> the newest rating so far
    ratings: dict[tuple[int, str], RatingRow] = field(default_factory=dict)
    recommendations: dict[str, RecommendationRow] = field(default_factory=dict)
    dead_letters: list[DeadLetterRow] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    start_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    size: int = 0

    def add_records(self, topic: str, partition: int, records: Sequence[Any]) -> None:
        """Fold consecutive records of one partition (objects with `.offset`, `.value`, `.timestamp`).

        The consumer's inner loop: watch lines are folded inline from plain tuples.
        """
        if not records:
            return
        key = (topic, partition)
        if key not in self.start_offsets:
            self.start_offsets[key] = records[0].offset
        watches = self.watches
        get = watches.get
        merge = merge_watch_span
        parse = parse_line_fast
        watch_count = 0
        for record in records:
            value = record.value
            try:
                parsed = parse(value if value is not None else b"")
            except MalformedLine as bad:
                self._dead_letter(f"{topic}:{partition}:{record.offset}", getattr(record, "timestamp", -1),
                                  bad.reason, bad.detail, value or b"")
                continue
            if type(parsed) is tuple:
                time, user_id, movie_id, minute = parsed
                pair = (user_id, movie_id)
                seen = get(pair)
                watches[pair] = (minute, time, time) if seen is None else merge(seen, (minute, time, time))
                watch_count += 1
            elif type(parsed) is RatingEvent:
                self.add_rating(parsed)
            else:
                self.add_recommendation(parsed)  # type: ignore[arg-type]
        self.events["watch"] += watch_count
        self.size += len(records)
        self.offsets[key] = records[-1].offset + 1

    def add(self, topic: str, partition: int, offset: int, value: bytes | None, timestamp_ms: int = -1) -> None:
        """Fold one Kafka message in; a malformed line becomes a dead letter, never an exception."""
        self.add_records(topic, partition, [_Message(offset, value, timestamp_ms)])

    def add_rating(self, event: RatingEvent) -> None:
        key = (event.user_id, event.movie_id)
        row = RatingRow(event.user_id, event.movie_id, event.rating, event.time)
        old = self.ratings.get(key)
        self.ratings[key] = row if old is None else merge_rating(old, row)
        self.events["rating"] += 1

    def add_recommendation(self, event: RecommendationEvent) -> None:
        key = hashlib.sha1(event.raw.encode("utf-8")).hexdigest()
        self.recommendations[key] = RecommendationRow(
            event_key=key,
            requested_at=event.time,
            user_id=event.user_id,
            served_by=event.server,
            status=event.status,
            results=event.results,
            latency_ms=event.latency_ms,
            model_version=event.model_version,
        )
        self.events["recommendation"] += 1

    def _dead_letter(self, source: str, timestamp_ms: int, reason: str, detail: str, raw: bytes) -> None:
        text = raw[:MAX_LINE_BYTES].decode("utf-8", errors="replace")
        if len(raw) > MAX_LINE_BYTES:
            detail = f"{detail}; kept the first {MAX_LINE_BYTES} bytes".lstrip("; ")
        self.dead_letters.append(DeadLetterRow(source=source, reason=reason, raw_line=text, detail=detail or None,
                                               event_key=dead_letter_key(source, timestamp_ms, raw)))
        self.dead_letter_reasons[reason] += 1

    def rows(self) -> BatchRows:
        """The rows to write: one per (user, movie) pair, recommendation line and bad message."""
        return BatchRows(
            watches=[WatchRow(user, movie, minute, parse_time(first), parse_time(last))
                     for (user, movie), (minute, first, last) in self.watches.items()],
            ratings=list(self.ratings.values()),
            recommendations=list(self.recommendations.values()),
            dead_letters=list(self.dead_letters),
        )

    def __len__(self) -> int:
        return self.size
