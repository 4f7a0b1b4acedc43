"""The sweep's state (:class:`syncbridge.ports.SweepState`): leases, watermarks, backfill cursors, deleted records.

SQLAlchemy Core on the service's engine; every method is one short transaction.  A
lease is taken by one conditional UPDATE (or the INSERT of its row), so two
processes never both hold it, on SQLite as on PostgreSQL.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, or_, select, update

from syncbridge.adapters.db.models import CrmDeletedRecord, SweepLeaseRecord, SweepModuleRecord, utcnow
from syncbridge.adapters.db.sql import _insert_ignore, _upsert, take_row_lease
from syncbridge.ports import BackfillProgress, DeletedCrmRecord

LEASES: Table = SweepLeaseRecord.__table__  # type: ignore[assignment]
MODULES: Table = SweepModuleRecord.__table__  # type: ignore[assignment]
DELETED: Table = CrmDeletedRecord.__table__  # type: ignore[assignment]


class SqlSweepState:
    """:class:`syncbridge.ports.SweepState` on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine, *, now: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.now = now

    # ------------------------------------------------------------ lease
    def take_lease(self, name: str, owner: str, ttl: float) -> bool:
        now = self.now()
        until = now + timedelta(seconds=ttl)
        return take_row_lease(self.engine, LEASES.c.name, LEASES.c.owner, LEASES.c.expires_at, name, owner,
                              now=now, until=until)

    def release_lease(self, name: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(LEASES).where(LEASES.c.name == name, LEASES.c.owner == owner)
                         .values(owner=None, expires_at=None))

    def lease_holder(self, name: str) -> tuple[str, datetime] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(LEASES.c.owner, LEASES.c.expires_at).where(LEASES.c.name == name)).first()
        if row is None or row.owner is None or row.expires_at is None or row.expires_at < self.now():
            return None
        return row.owner, row.expires_at

    # ------------------------------------------------------------ watermark
    def watermark(self, module: str) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(select(MODULES.c.watermark).where(MODULES.c.module == module)).scalar()

    def set_watermark(self, module: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            _insert_ignore(conn, MODULES, {"module": module}, ["module"])
            conn.execute(update(MODULES).where(MODULES.c.module == module)
                         .where(or_(MODULES.c.watermark.is_(None), MODULES.c.watermark < at))
                         .values(watermark=at))

    # ------------------------------------------------------------ backfill
    def backfill(self, module: str) -> BackfillProgress | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(MODULES).where(MODULES.c.module == module)).first()
        if row is None or row.backfill_started_at is None:
            return None
        return BackfillProgress(module=module, cursor=row.backfill_cursor, queued=row.backfill_queued or 0,
                                pages=row.backfill_pages or 0, finished=bool(row.backfill_finished),
                                started_at=row.backfill_started_at, updated_at=row.backfill_updated_at)

    def save_backfill(self, progress: BackfillProgress) -> None:
        values: dict[str, Any] = {
            "module": progress.module, "backfill_cursor": progress.cursor, "backfill_queued": progress.queued,
            "backfill_pages": progress.pages, "backfill_finished": progress.finished,
            "backfill_started_at": progress.started_at or self.now(),
            "backfill_updated_at": progress.updated_at or self.now(),
        }
        with self.engine.begin() as conn:
            _upsert(conn, MODULES, values, ["module"], [name for name in values if name != "module"])

    def clear_backfill(self, module: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(MODULES).where(MODULES.c.module == module).values(
                backfill_cursor=None, backfill_queued=None, backfill_pages=None, backfill_finished=None,
                backfill_started_at=None, backfill_updated_at=None))

    # ------------------------------------------------------------ deleted records
    def note_deleted(self, records: Sequence[DeletedCrmRecord]) -> int:
        added = 0
        with self.engine.begin() as conn:
            for record in records:
                before = conn.execute(select(DELETED.c.record_id).where(
                    DELETED.c.module == record.module, DELETED.c.record_id == record.record_id)).first()
                if before is None:
                    _insert_ignore(conn, DELETED, {
                        "module": record.module, "record_id": record.record_id, "deleted_at": record.deleted_at,
                        "seen_at": record.seen_at, "name": record.name[:500], "source": record.source,
                    }, ["module", "record_id"])
                    added += 1
        return added

    def deleted(self, *, module: str | None = None, limit: int = 100) -> list[DeletedCrmRecord]:
        query = select(DELETED)
        if module is not None:
            query = query.where(DELETED.c.module == module)
        query = query.order_by(DELETED.c.deleted_at.desc().nulls_last(), DELETED.c.seen_at.desc(), DELETED.c.record_id).limit(limit)
        with self.engine.connect() as conn:
            return [DeletedCrmRecord(module=row.module, record_id=row.record_id, deleted_at=row.deleted_at,
                                     seen_at=row.seen_at, name=row.name, source=row.source)
                    for row in conn.execute(query)]
