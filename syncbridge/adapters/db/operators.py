"""The dashboard's operators, audit log, failed sign-ins and pause flags, in the service's database.

SQLAlchemy Core on the engine of :class:`syncbridge.adapters.db.sql.SqlStore`; every
method runs in a short transaction of its own, so all processes of the dashboard
share the counts of failed sign-ins.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Table, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from syncbridge.adapters.db.models import (
    AuditRecord,
    DirectionPauseRecord,
    FailedLoginRecord,
    OperatorRecord,
    utcnow,
)
from syncbridge.adapters.db.sql import _upsert
from syncbridge.ports import AuditEntry, DirectionPause, Operator

OPERATORS: Table = OperatorRecord.__table__  # type: ignore[assignment]
AUDIT: Table = AuditRecord.__table__  # type: ignore[assignment]
FAILED: Table = FailedLoginRecord.__table__  # type: ignore[assignment]
PAUSES: Table = DirectionPauseRecord.__table__  # type: ignore[assignment]


def _operator(row: Any) -> Operator:
    return Operator(id=row.id, username=row.username, role=row.role, password_hash=row.password_hash,
                    created_at=row.created_at, password_changed_at=row.password_changed_at)


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(actor=row.actor, action=row.action, target=row.target, details=dict(row.details or {}),
                      at=row.at, id=row.id)


class SqlOperatorStore:
    """:class:`syncbridge.ports.OperatorStore` on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ---------------------------------------------------------------- operators
    def add_operator(self, username: str, role: str, password_hash: str) -> Operator:
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(OPERATORS).values(username=username, role=role, password_hash=password_hash,
                                                      created_at=now, password_changed_at=now))
        except IntegrityError:
            raise ValueError(f"user {username} exists already") from None
        operator = self.operator(username)
        assert operator is not None
        return operator

    def operator(self, username: str) -> Operator | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(OPERATORS).where(OPERATORS.c.username == username)).first()
        return None if row is None else _operator(row)

    def operator_by_id(self, operator_id: int) -> Operator | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(OPERATORS).where(OPERATORS.c.id == operator_id)).first()
        return None if row is None else _operator(row)

    def operators(self) -> list[Operator]:
        with self.engine.connect() as conn:
            return [_operator(row) for row in conn.execute(select(OPERATORS).order_by(OPERATORS.c.username))]

    def update_operator(self, username: str, *, role: str | None = None, password_hash: str | None = None) -> Operator:
        values: dict[str, Any] = {}
        if role is not None:
            values["role"] = role
        if password_hash is not None:
            values.update(password_hash=password_hash, password_changed_at=utcnow())
        if values:
            with self.engine.begin() as conn:
                changed = conn.execute(update(OPERATORS).where(OPERATORS.c.username == username).values(values))
            if changed.rowcount == 0:
                raise KeyError(username)
        operator = self.operator(username)
        if operator is None:
            raise KeyError(username)
        return operator

    def delete_operator(self, username: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(OPERATORS).where(OPERATORS.c.username == username)).rowcount > 0

    def count_admins(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(OPERATORS)
                                    .where(OPERATORS.c.role == "admin")).scalar_one())

    # ---------------------------------------------------------------- audit log
    def audit(self, entry: AuditEntry) -> AuditEntry:
        at = entry.at or utcnow()
        with self.engine.begin() as conn:
            new_id = conn.execute(insert(AUDIT).values(
                at=at, actor=entry.actor, action=entry.action, target=entry.target, details=dict(entry.details),
            )).inserted_primary_key[0]
        return AuditEntry(entry.actor, entry.action, entry.target, dict(entry.details), at, new_id)

    def audit_entries(self, *, before_id: int | None = None, limit: int = 50) -> list[AuditEntry]:
        query = select(AUDIT).order_by(AUDIT.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(AUDIT.c.id < before_id)
        with self.engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query)]

    # ---------------------------------------------------------------- failed sign-ins
    def note_failed_login(self, keys: Sequence[str], at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(FAILED), [{"key": key, "at": at} for key in keys])

    def failed_logins(self, key: str, since: datetime) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(FAILED)
                                    .where(FAILED.c.key == key, FAILED.c.at >= since)).scalar_one())

    def clear_failed_logins(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(FAILED).where(FAILED.c.key == key))

    def prune_failed_logins(self, before: datetime) -> int:
        """Forget failed sign-ins older than ``before``; how many."""
        with self.engine.begin() as conn:
            return conn.execute(delete(FAILED).where(FAILED.c.at < before)).rowcount

    # ---------------------------------------------------------------- pause flags
    def pause_direction(self, pause: DirectionPause) -> None:
        with self.engine.begin() as conn:
            _upsert(conn, PAUSES, {"direction": pause.direction, "paused_by": pause.by, "reason": pause.reason,
                                   "paused_at": pause.at}, ["direction"], ["paused_by", "reason", "paused_at"])

    def resume_direction(self, direction: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(PAUSES).where(PAUSES.c.direction == direction)).rowcount > 0

    def paused_directions(self) -> dict[str, DirectionPause]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(PAUSES)).all()
        return {row.direction: DirectionPause(row.direction, row.paused_by, row.reason, row.paused_at) for row in rows}
