"""In-memory :class:`syncbridge.ports.SweepState`, behaving like :class:`syncbridge.adapters.db.sweep.SqlSweepState`."""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from syncbridge.ports import BackfillProgress, DeletedCrmRecord


class MemorySweepState:
    """Leases, watermarks, backfill cursors and deleted records in memory (one process)."""

    def __init__(self, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.now = now
        self._lock = threading.Lock()
        self._leases: dict[str, tuple[str, datetime]] = {}
        self._watermarks: dict[str, datetime] = {}
        self._backfills: dict[str, BackfillProgress] = {}
        self._deleted: dict[tuple[str, str], DeletedCrmRecord] = {}

    def take_lease(self, name: str, owner: str, ttl: float) -> bool:
        now = self.now()
        with self._lock:
            holder = self._leases.get(name)
            if holder is not None and holder[0] != owner and holder[1] >= now:
                return False
            self._leases[name] = (owner, now + timedelta(seconds=ttl))
            return True

    def release_lease(self, name: str, owner: str) -> None:
        with self._lock:
            if self._leases.get(name, ("",))[0] == owner:
                del self._leases[name]

    def lease_holder(self, name: str) -> tuple[str, datetime] | None:
        with self._lock:
            holder = self._leases.get(name)
        return holder if holder is not None and holder[1] >= self.now() else None

    def watermark(self, module: str) -> datetime | None:
        with self._lock:
            return self._watermarks.get(module)

    def set_watermark(self, module: str, at: datetime) -> None:
        with self._lock:
            if module not in self._watermarks or self._watermarks[module] < at:
                self._watermarks[module] = at

    def backfill(self, module: str) -> BackfillProgress | None:
        with self._lock:
            return self._backfills.get(module)

    def save_backfill(self, progress: BackfillProgress) -> None:
        now = self.now()
        with self._lock:
            self._backfills[progress.module] = replace(progress, started_at=progress.started_at or now,
                                                       updated_at=progress.updated_at or now)

    def clear_backfill(self, module: str) -> None:
        with self._lock:
            self._backfills.pop(module, None)

    def note_deleted(self, records: Sequence[DeletedCrmRecord]) -> int:
        added = 0
        with self._lock:
            for record in records:
                if (record.module, record.record_id) not in self._deleted:
                    self._deleted[(record.module, record.record_id)] = replace(record, name=record.name[:500])
                    added += 1
        return added

    def deleted(self, *, module: str | None = None, limit: int = 100) -> list[DeletedCrmRecord]:
        with self._lock:
            rows = [r for r in self._deleted.values() if module is None or r.module == module]
        never = datetime.min.replace(tzinfo=UTC)
        rows.sort(key=lambda r: r.record_id)
        rows.sort(key=lambda r: (r.deleted_at is not None, r.deleted_at or never, r.seen_at), reverse=True)
        return rows[:limit]
