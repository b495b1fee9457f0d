"""Dead letters keyed by the message, not by its offset: `event_key`, unique; `source` no longer unique.

A broker that loses its log (Tansu's memory storage, a recreated topic) hands out offsets again
from 0, so `topic:partition:offset` named two different bad lines and the second was dropped.
`event_key` is sha1 of the source, the message's broker timestamp and the raw line: a replay of
the same message (a crash before the offset commit) has the same key, a new message does not.
Existing rows get sha1(source + raw line), which is what they were unique by before.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _legacy_key(source: str, raw_line: str) -> str:
    return hashlib.sha1(f"{source}\n{raw_line}".encode("utf-8", errors="surrogatepass")).hexdigest()


def upgrade() -> None:
    op.add_column("dead_letters", sa.Column("event_key", sa.String(40)))
    connection = op.get_bind()
    letters = sa.table("dead_letters", sa.column("id", sa.BigInteger()), sa.column("source", sa.String()),
                       sa.column("raw_line", sa.Text()), sa.column("event_key", sa.String()))
    for row_id, source, raw_line in connection.execute(sa.select(letters.c.id, letters.c.source, letters.c.raw_line)):
        connection.execute(letters.update().where(letters.c.id == row_id)
                           .values(event_key=_legacy_key(source, raw_line)))
    if connection.dialect.name == "sqlite":
        # The unique constraint on `source` has no name in SQLite: rebuild the table from this definition.
        definition = sa.Table(
            "dead_letters", sa.MetaData(),
            sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
            sa.Column("source", sa.String(300), nullable=False),
            sa.Column("received_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
            sa.Column("reason", sa.String(64), nullable=False),
            sa.Column("detail", sa.Text()),
            sa.Column("raw_line", sa.Text(), nullable=False),
            sa.Column("event_key", sa.String(40)),
            sa.Index("ix_dead_letters_reason", "reason"),
        )
        with op.batch_alter_table("dead_letters", copy_from=definition, recreate="always") as batch:
            batch.alter_column("event_key", existing_type=sa.String(40), nullable=False)
    else:
        op.drop_constraint("dead_letters_source_key", "dead_letters", type_="unique")
        op.alter_column("dead_letters", "event_key", existing_type=sa.String(40), nullable=False)
    op.create_index("ix_dead_letters_event_key", "dead_letters", ["event_key"], unique=True)
    op.create_index("ix_dead_letters_source", "dead_letters", ["source"])


def downgrade() -> None:
    """Back to one row per source: later letters with a reused source are deleted (the old behaviour)."""
    letters = sa.table("dead_letters", sa.column("id", sa.BigInteger()), sa.column("source", sa.String()))
    first = sa.select(sa.func.min(letters.c.id)).group_by(letters.c.source).scalar_subquery()
    op.execute(letters.delete().where(letters.c.id.not_in(first)))
    op.drop_index("ix_dead_letters_source", "dead_letters")
    op.drop_index("ix_dead_letters_event_key", "dead_letters")
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_column("event_key")
        batch.create_unique_constraint("dead_letters_source_key", ["source"])
