"""Create record_syncs: one worker per CRM record at a time, coalescing, and creates under way.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "record_syncs",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("locked_by", sa.String(64), nullable=True),
        sa.Column("locked_until", TIMESTAMP, nullable=True),
        sa.Column("synced_from", TIMESTAMP, nullable=True),
        sa.Column("creating_since", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_record_syncs")),
    )


def downgrade() -> None:
    op.drop_table("record_syncs")
