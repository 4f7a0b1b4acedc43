"""Create the dead_letters table: the archive of the dead-letter queue that ops list, replay and discard.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Written out rather than imported from syncbridge.adapters.db.models: a migration is history
# and must not change when the models do.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("record", sa.String(64), nullable=True),
        sa.Column("exchange", sa.String(255), nullable=False),
        sa.Column("routing_key", sa.String(255), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=True),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("first_error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=True),
        sa.Column("first_failed_at", TIMESTAMP, nullable=True),
        sa.Column("dead_lettered_at", TIMESTAMP, nullable=False),
        sa.Column("archived_at", TIMESTAMP, nullable=False),
        sa.Column("replays", sa.Integer(), nullable=False),
        sa.Column("replayed_by", sa.String(255), nullable=True),
        sa.Column("replayed_at", TIMESTAMP, nullable=True),
        sa.Column("replay_error", sa.Text(), nullable=True),
        sa.Column("discarded_by", sa.String(255), nullable=True),
        sa.Column("discarded_at", TIMESTAMP, nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_dead_letters_fingerprint")),
    )
    op.create_index(op.f("ix_dead_letters_record"), "dead_letters", ["record"])
    op.create_index(op.f("ix_dead_letters_dead_lettered_at"), "dead_letters", ["dead_lettered_at"])
    op.create_index(op.f("ix_dead_letters_state_dead_lettered_at"), "dead_letters", ["state", "dead_lettered_at"])
    op.create_index(op.f("ix_dead_letters_queue_dead_lettered_at"), "dead_letters", ["queue", "dead_lettered_at"])
    op.create_index(op.f("ix_dead_letters_kind_dead_lettered_at"), "dead_letters", ["kind", "dead_lettered_at"])


def downgrade() -> None:
    op.drop_table("dead_letters")
