"""Create the DailyUp tables: imports, row errors, snapshot, staging, outbox of deltas, echoes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Written out rather than imported from syncbridge.adapters.db.models: a migration is history
# and must not change when the models do.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
UNPUBLISHED = sa.text("published_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "dailyup_imports",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("hauptvermittler", sa.String(32), nullable=True),
        sa.Column("delivered_on", sa.Date(), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("rows", sa.JSON(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("deltas", sa.JSON(), nullable=False),
        sa.Column("encodings", sa.JSON(), nullable=False),
        sa.Column("extra_columns", sa.JSON(), nullable=False),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("published_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dailyup_imports")),
        sa.UniqueConstraint("sha256", name=op.f("uq_dailyup_imports_sha256")),
    )
    op.create_index(op.f("ix_dailyup_imports_hauptvermittler_state_delivered_on"), "dailyup_imports",
                    ["hauptvermittler", "state", "delivered_on"])

    op.create_table(
        "dailyup_row_errors",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("import_id", sa.BigInteger(), nullable=False),
        sa.Column("file", sa.String(255), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("column", sa.String(100), nullable=True),
        sa.Column("key", sa.String(64), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["import_id"], ["dailyup_imports.id"],
                                name=op.f("fk_dailyup_row_errors_import_id_dailyup_imports")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dailyup_row_errors")),
    )
    op.create_index(op.f("ix_dailyup_row_errors_import_id"), "dailyup_row_errors", ["import_id"])

    op.create_table(
        "dailyup_snapshot",
        sa.Column("table", sa.String(32), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("import_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["import_id"], ["dailyup_imports.id"],
                                name=op.f("fk_dailyup_snapshot_import_id_dailyup_imports")),
        sa.PrimaryKeyConstraint("table", "key", name=op.f("pk_dailyup_snapshot")),
    )

    op.create_table(
        "dailyup_staging",
        sa.Column("import_id", sa.BigInteger(), nullable=False),
        sa.Column("table", sa.String(32), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("error", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("import_id", "table", "key", "line", name=op.f("pk_dailyup_staging")),
    )

    op.create_table(
        "dailyup_deltas",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("import_id", sa.BigInteger(), nullable=False),
        sa.Column("entity", sa.String(16), nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("changed_fields", sa.JSON(), nullable=False),
        sa.Column("published_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["import_id"], ["dailyup_imports.id"],
                                name=op.f("fk_dailyup_deltas_import_id_dailyup_imports")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dailyup_deltas")),
    )
    op.create_index(op.f("ix_dailyup_deltas_import_id"), "dailyup_deltas", ["import_id"])
    op.create_index(op.f("ix_dailyup_deltas_unpublished"), "dailyup_deltas", ["id"],
                    postgresql_where=UNPUBLISHED, sqlite_where=UNPUBLISHED)

    op.create_table(
        "dailyup_echoes",
        sa.Column("entity", sa.String(16), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("written_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("entity", "key", name=op.f("pk_dailyup_echoes")),
    )


def downgrade() -> None:
    op.drop_table("dailyup_echoes")
    op.drop_table("dailyup_deltas")
    op.drop_table("dailyup_staging")
    op.drop_table("dailyup_snapshot")
    op.drop_table("dailyup_row_errors")
    op.drop_table("dailyup_imports")
