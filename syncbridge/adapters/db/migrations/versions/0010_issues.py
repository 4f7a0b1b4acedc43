"""Issues and bulk jobs of the dashboard: a dead letter's cause and correction, issue_states, dashboard_jobs.

Revision ID: 0010_issues
Revises: 0008_dashboard
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from syncbridge.ports import dead_letter_cause

revision = "0010_issues"
down_revision = "0009_events"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.add_column(sa.Column("cause", sa.String(255), nullable=True))
        batch.add_column(sa.Column("corrected_body", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("corrected_by", sa.String(255), nullable=True))
        batch.add_column(sa.Column("corrected_at", TIMESTAMP, nullable=True))
        batch.create_index(batch.f("ix_dead_letters_cause"), ["cause"])
    # The dead letters archived before: their cause from their kind and reason.
    letters = sa.table("dead_letters", sa.column("id", BIG_ID), sa.column("kind", sa.String),
                       sa.column("reason", sa.Text), sa.column("cause", sa.String))
    conn = op.get_bind()
    for row in conn.execute(sa.select(letters.c.id, letters.c.kind, letters.c.reason)).fetchall():
        conn.execute(letters.update().where(letters.c.id == row.id)
                     .values(cause=dead_letter_cause(row.kind, row.reason)))
    op.create_table(
        "issue_states",
        sa.Column("cause", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("acknowledged_by", sa.String(255), nullable=True),
        sa.Column("acknowledged_at", TIMESTAMP, nullable=True),
        sa.Column("resolved_by", sa.String(255), nullable=True),
        sa.Column("resolved_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("cause", name=op.f("pk_issue_states")),
    )
    op.create_table(
        "dashboard_jobs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_jobs")),
    )
    op.create_index(op.f("ix_dashboard_jobs_state"), "dashboard_jobs", ["state"])


def downgrade() -> None:
    op.drop_index(op.f("ix_dashboard_jobs_state"), table_name="dashboard_jobs")
    op.drop_table("dashboard_jobs")
    op.drop_table("issue_states")
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_index(batch.f("ix_dead_letters_cause"))
        batch.drop_column("corrected_at")
        batch.drop_column("corrected_by")
        batch.drop_column("corrected_body")
        batch.drop_column("cause")
