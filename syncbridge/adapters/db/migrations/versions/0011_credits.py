"""The Zoho API credits spent, per minute, call type and purpose: zoho_credits.

Revision ID: 0011_credits
Revises: 0010_issues
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_credits"
down_revision = "0010_issues"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "zoho_credits",
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("call", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("records", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "call", "purpose", name=op.f("pk_zoho_credits")),
    )


def downgrade() -> None:
    op.drop_table("zoho_credits")
