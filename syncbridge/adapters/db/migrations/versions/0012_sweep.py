"""The catch-up sweep and the backfill: sweep_leases, sweep_modules (watermark, backfill cursor), crm_deleted_records.

Revision ID: 0012_sweep
Revises: 0011_credits
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_sweep"
down_revision = "0011_credits"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sweep_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sweep_leases")),
    )
    op.create_table(
        "sweep_modules",
        sa.Column("module", sa.String(100), nullable=False),
        sa.Column("watermark", TIMESTAMP, nullable=True),
        sa.Column("backfill_cursor", sa.Text(), nullable=True),
        sa.Column("backfill_queued", sa.Integer(), nullable=True),
        sa.Column("backfill_pages", sa.Integer(), nullable=True),
        sa.Column("backfill_finished", sa.Boolean(), nullable=True),
        sa.Column("backfill_started_at", TIMESTAMP, nullable=True),
        sa.Column("backfill_updated_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("module", name=op.f("pk_sweep_modules")),
    )
    op.create_table(
        "crm_deleted_records",
        sa.Column("module", sa.String(100), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.Column("seen_at", TIMESTAMP, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("module", "record_id", name=op.f("pk_crm_deleted_records")),
    )
    op.create_index(op.f("ix_crm_deleted_records_deleted_at"), "crm_deleted_records", ["deleted_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_crm_deleted_records_deleted_at"), table_name="crm_deleted_records")
    op.drop_table("crm_deleted_records")
    op.drop_table("sweep_modules")
    op.drop_table("sweep_leases")
