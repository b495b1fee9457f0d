"""Shared persistence: SQLAlchemy 2.0 models, engine/session, Alembic migrations, shared queries."""

from db_utils.engine import make_engine, make_session_factory, upgrade_database
from db_utils.models import (
    Base,
    DeadLetter,
    Deployment,
    Movie,
    Rating,
    Recommendation,
    User,
    Watch,
)

__all__ = [
    "Base",
    "DeadLetter",
    "Deployment",
    "Movie",
    "Rating",
    "Recommendation",
    "User",
    "Watch",
    "make_engine",
    "make_session_factory",
    "upgrade_database",
]
