"""The Events page: attempts in the activity log (source, received, attempt, duration, error kind/code/field),
keyset indexes newest first, a trigram index for free text on PostgreSQL, and saved views.

Revision ID: 0009_events
Revises: 0008_dashboard
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_events"
down_revision = "0008_dashboard"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ATTEMPTS = sa.text("attempt IS NOT NULL")
# (index name, columns): each filter of the Events page paired with the keyset (at, id), attempts only.
EVENT_INDEXES = (
    ("ix_activity_log_events", ["at", "id"]),
    ("ix_activity_log_events_direction", ["direction", "at", "id"]),
    ("ix_activity_log_events_entity", ["entity", "at", "id"]),
    ("ix_activity_log_events_result", ["result", "at", "id"]),
    ("ix_activity_log_events_error_kind", ["error_kind", "at", "id"]),
)


def upgrade() -> None:
    with op.batch_alter_table("activity_log") as batch:
        batch.add_column(sa.Column("source", sa.String(64), nullable=True))
        batch.add_column(sa.Column("received_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("duration_ms", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("error_kind", sa.String(32), nullable=True))
        batch.add_column(sa.Column("error_code", sa.String(64), nullable=True))
        batch.add_column(sa.Column("error_field", sa.String(100), nullable=True))
    for name, columns in EVENT_INDEXES:
        op.create_index(name, "activity_log", columns, postgresql_where=ATTEMPTS, sqlite_where=ATTEMPTS)
    if op.get_bind().dialect.name == "postgresql":
        # Free text: a part of the error text, found through trigrams (pg_trgm is a trusted extension).
        # The extension lives in one schema of the database: its operator class is named with that schema.
        # In schema public where there is one: a schema dropped later must not take the extension with it.
        public = op.get_bind().execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = 'public'")).first()
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm" + (" SCHEMA public" if public else ""))
        schema = op.get_bind().execute(sa.text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'pg_trgm'")).scalar_one()
        op.execute(f'CREATE INDEX ix_activity_log_error_trgm ON activity_log USING gin (error "{schema}".gin_trgm_ops) '
                   "WHERE attempt IS NOT NULL")
    op.create_table(
        "saved_views",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("query", sa.JSON(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_views")),
        sa.UniqueConstraint("owner", "name", name=op.f("uq_saved_views_owner_name")),
    )


def downgrade() -> None:
    op.drop_table("saved_views")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_activity_log_error_trgm")
    for name, _columns in reversed(EVENT_INDEXES):
        op.drop_index(name, table_name="activity_log")
    with op.batch_alter_table("activity_log") as batch:
        for column in ("error_field", "error_code", "error_kind", "duration_ms", "attempt", "received_at", "source"):
            batch.drop_column(column)
