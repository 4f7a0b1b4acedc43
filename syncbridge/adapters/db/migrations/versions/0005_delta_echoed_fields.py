"""Add dailyup_deltas.echoed_fields: the columns of a delta that came back as the CRM wrote them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: deltas already in the outbox have none, and are sent whole as before.
    op.add_column("dailyup_deltas", sa.Column("echoed_fields", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dailyup_deltas") as batch:
        batch.drop_column("echoed_fields")
