"""Initial schema: users, movies, watches, ratings, recommendations, dead_letters, deployments.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("age", sa.SmallInteger()),
        sa.Column("occupation", sa.String(64)),
        sa.Column("gender", sa.String(1)),
    )
    op.create_table(
        "movies",
        sa.Column("id", sa.String(300), primary_key=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("original_title", sa.Text()),
        sa.Column("year", sa.SmallInteger()),
        sa.Column("release_date", sa.String(10)),
        sa.Column("tmdb_id", sa.BigInteger()),
        sa.Column("imdb_id", sa.String(16)),
        sa.Column("ml1m_id", sa.Integer()),
        sa.Column("adult", sa.Boolean(), nullable=False),
        sa.Column("genres", sa.Text()),
        sa.Column("overview", sa.Text()),
        sa.Column("description_source", sa.String(16), nullable=False),
        sa.Column("runtime", sa.SmallInteger()),
        sa.Column("original_language", sa.String(16)),
        sa.Column("director", sa.Text()),
        sa.Column("cast", sa.Text()),
        sa.Column("vote_average", sa.Float()),
        sa.Column("vote_count", sa.Integer()),
        sa.Column("popularity", sa.Float(), nullable=False),
        sa.Column("popularity_source", sa.String(32)),
        sa.Column("sources", sa.Text()),
        sa.Column("field_sources", sa.JSON()),
    )
    op.create_index("ix_movies_ml1m_id", "movies", ["ml1m_id"])
    op.create_table(
        "watches",
        sa.Column("user_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("movie_id", sa.String(300), primary_key=True),
        sa.Column("max_minute", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_watches_movie_last_seen", "watches", ["movie_id", "last_seen"])
    op.create_table(
        "ratings",
        sa.Column("user_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("movie_id", sa.String(300), primary_key=True),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("rated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "recommendations",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("event_key", sa.String(40), nullable=False, unique=True),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("served_by", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(128)),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("latency_ms", sa.Integer()),
    )
    op.create_index("ix_recommendations_requested_at", "recommendations", ["requested_at"])
    op.create_index("ix_recommendations_user_id", "recommendations", ["user_id"])
    op.create_index("ix_recommendations_model_version", "recommendations", ["model_version"])
    op.create_table(
        "dead_letters",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(300), nullable=False, unique=True),
        sa.Column("received_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text()),
        sa.Column("raw_line", sa.Text(), nullable=False),
    )
    op.create_index("ix_dead_letters_reason", "dead_letters", ["reason"])
    op.create_table(
        "deployments",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("git_ref", sa.String(255)),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("url", sa.String(255)),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("salt", sa.String(64)),
        sa.Column("metrics", sa.JSON()),
        sa.Column("note", sa.Text()),
        sa.Column("created_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("decided_at", sa.DateTime()),
    )
    op.create_index("ix_deployments_version", "deployments", ["version"])


def downgrade() -> None:
    for table in ["deployments", "dead_letters", "recommendations", "ratings", "watches", "movies",
                  "users"]:
        op.drop_table(table)
