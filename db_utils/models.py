"""The platform's tables as typed SQLAlchemy 2.0 models.

Movie ids are catalogue slugs (`the+dark+knight+2008`). Watches, ratings and recommendations do
not reference movies by foreign key on purpose: a real feed names movies the catalogue does not
know, and those events are kept, not dropped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    age: Mapped[int | None] = mapped_column(SmallInteger)
    occupation: Mapped[str | None] = mapped_column(String(64))
    gender: Mapped[str | None] = mapped_column(String(1))


class Movie(Base):
    """One catalogue film. `*_source` columns say which dataset each derived field came from."""

    __tablename__ = "movies"

    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    original_title: Mapped[str | None] = mapped_column(Text)
    year: Mapped[int | None] = mapped_column(SmallInteger)
    release_date: Mapped[str | None] = mapped_column(String(10))
    tmdb_id: Mapped[int | None] = mapped_column(BigInteger)
    imdb_id: Mapped[str | None] = mapped_column(String(16))
    ml1m_id: Mapped[int | None] = mapped_column(Integer, index=True)
    adult: Mapped[bool] = mapped_column(Boolean, default=False)
    genres: Mapped[str | None] = mapped_column(Text)  # "Comedy|Drama"
    overview: Mapped[str | None] = mapped_column(Text)
    description_source: Mapped[str] = mapped_column(String(16), default="template")
    runtime: Mapped[int | None] = mapped_column(SmallInteger)
    original_language: Mapped[str | None] = mapped_column(String(16))
    director: Mapped[str | None] = mapped_column(Text)
    cast: Mapped[str | None] = mapped_column(Text)
    vote_average: Mapped[float | None] = mapped_column(Float)
    vote_count: Mapped[int | None] = mapped_column(Integer)
    popularity: Mapped[float] = mapped_column(Float, default=0.0)
    popularity_source: Mapped[str | None] = mapped_column(String(32))
    sources: Mapped[str | None] = mapped_column(Text)  # datasets the film was matched in
    field_sources: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Watch(Base):
    """One row per (user, movie): the furthest minute streamed and when it was first/last seen."""

    __tablename__ = "watches"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    movie_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    max_minute: Mapped[int] = mapped_column(Integer)
    first_seen: Mapped[datetime] = mapped_column(DateTime)
    last_seen: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_watches_movie_last_seen", "movie_id", "last_seen"),)


class Rating(Base):
    """The latest rating (by event time) a user gave a movie."""

    __tablename__ = "ratings"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    movie_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    rating: Mapped[int] = mapped_column(SmallInteger)
    rated_at: Mapped[datetime] = mapped_column(DateTime)


class Recommendation(Base):
    """A served recommendation request, as recorded on the stream (provenance, online eval)."""

    __tablename__ = "recommendations"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_key: Mapped[str] = mapped_column(String(40), unique=True)  # sha1 of the raw line
    requested_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    served_by: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str | None] = mapped_column(String(128), index=True)
    status: Mapped[int] = mapped_column(SmallInteger)
    results: Mapped[list[str]] = mapped_column(JSON)
    latency_ms: Mapped[int | None] = mapped_column(Integer)


class DeadLetter(Base):
    """A stream line that could not be understood, kept with the reason."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # Where the line came from (`topic:partition:offset`); offsets restart when a broker loses its log.
    source: Mapped[str] = mapped_column(String(300), index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    reason: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str | None] = mapped_column(Text)
    raw_line: Mapped[str] = mapped_column(Text)
    # sha1 of source, broker timestamp and raw line: a replay has the same key, a new message a new one.
    event_key: Mapped[str] = mapped_column(String(40), unique=True, index=True)


class Deployment(Base):
    """One inference version known to the router: its role, weight and release outcome."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(128), index=True)
    git_ref: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # main | nightly | retired
    status: Mapped[str] = mapped_column(String(32))  # starting, running, promoted, rolled_back, ...
    url: Mapped[str | None] = mapped_column(String(255))
    weight: Mapped[float] = mapped_column(Float, default=0.0)
    salt: Mapped[str | None] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime, server_default=func.now(), onupdate=func.now()
    )
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
