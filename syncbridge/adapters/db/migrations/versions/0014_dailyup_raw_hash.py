"""Add raw_hash to dailyup_snapshot and dailyup_staging: the digest of a row as it was delivered.

The next delivery compares each row's raw digest with the stored one and reads,
validates and stages only the rows whose digest differs.  Rows stored before this
column have none (NULL): their next import validates and compares them as before
(by the hash of their normalized values) and fills the column in, so the first
import after the upgrade reports exactly the changes the delivery has.

Revision ID: 0014_dailyup_raw_hash
Revises: 0013_linking
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_dailyup_raw_hash"
down_revision = "0013_linking"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("dailyup_snapshot", sa.Column("raw_hash", sa.LargeBinary(), nullable=True))
    op.add_column("dailyup_staging", sa.Column("raw_hash", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dailyup_staging") as batch:
        batch.drop_column("raw_hash")
    with op.batch_alter_table("dailyup_snapshot") as batch:
        batch.drop_column("raw_hash")
