"""Create links, processed events, activity log and OAuth tokens.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Written out rather than imported from syncbridge.adapters.db.models: a migration is history
# and must not change when the models do.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "links",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("zoho_module", sa.String(100), nullable=False),
        sa.Column("zoho_id", sa.String(64), nullable=False),
        sa.Column("ameise_id", sa.String(64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_links")),
        sa.UniqueConstraint("entity", "zoho_id", name=op.f("uq_links_entity_zoho_id")),
        sa.UniqueConstraint("entity", "ameise_id", name=op.f("uq_links_entity_ameise_id")),
    )

    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("outcome", sa.String(255), nullable=False),
        sa.Column("processed_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_processed_events")),
    )
    op.create_index(op.f("ix_processed_events_processed_at"), "processed_events", ["processed_at"])

    op.create_table(
        "activity_log",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("direction", sa.String(32), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("entity", sa.String(32), nullable=True),
        sa.Column("zoho_module", sa.String(100), nullable=True),
        sa.Column("zoho_id", sa.String(64), nullable=True),
        sa.Column("ameise_id", sa.String(64), nullable=True),
        sa.Column("event_id", sa.String(255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity_log")),
    )
    op.create_index(op.f("ix_activity_log_at"), "activity_log", ["at"])
    op.create_index(op.f("ix_activity_log_direction_at"), "activity_log", ["direction", "at"])
    op.create_index(op.f("ix_activity_log_entity_at"), "activity_log", ["entity", "at"])
    op.create_index(op.f("ix_activity_log_result_at"), "activity_log", ["result", "at"])
    op.create_index(op.f("ix_activity_log_zoho_id"), "activity_log", ["zoho_id"])
    op.create_index(op.f("ix_activity_log_ameise_id"), "activity_log", ["ameise_id"])
    op.create_index(op.f("ix_activity_log_event_id"), "activity_log", ["event_id"])

    op.create_table(
        "oauth_tokens",
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_detail", sa.Text(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_oauth_tokens")),
    )


def downgrade() -> None:
    op.drop_table("oauth_tokens")
    op.drop_table("activity_log")
    op.drop_table("processed_events")
    op.drop_table("links")
