"""First-time linking: link_runs and link_proposals.

Revision ID: 0013_linking
Revises: 0012_sweep
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_linking"
down_revision = "0012_sweep"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "link_runs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("started_by", sa.String(255), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_runs")),
    )
    op.create_table(
        "link_proposals",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ameise_key", sa.String(64), nullable=False),
        sa.Column("zoho_module", sa.String(100), nullable=False),
        sa.Column("zoho_id", sa.String(64), nullable=False),
        sa.Column("crm_number", sa.String(64), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ameise_label", sa.Text(), nullable=False),
        sa.Column("crm_label", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(255), nullable=True),
        sa.Column("decided_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["link_runs.id"], name=op.f("fk_link_proposals_run_id_link_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_proposals")),
    )
    op.create_index("ix_link_proposals_entity_ameise_key", "link_proposals", ["entity", "ameise_key"])
    op.create_index(op.f("ix_link_proposals_status"), "link_proposals", ["status"])
    op.create_index(op.f("ix_link_proposals_zoho_id"), "link_proposals", ["zoho_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_link_proposals_zoho_id"), table_name="link_proposals")
    op.drop_index(op.f("ix_link_proposals_status"), table_name="link_proposals")
    op.drop_index("ix_link_proposals_entity_ameise_key", table_name="link_proposals")
    op.drop_table("link_proposals")
    op.drop_table("link_runs")
