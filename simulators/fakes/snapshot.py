"""The in-memory DailyUp snapshot: what the importer stored of the deliveries so far, in dicts."""
from __future__ import annotations

from syncbridge.ports import SnapshotRow


class MemorySnapshot:
    """A DailyUpSnapshot in dicts: what the importer stored of the deliveries so far."""

    def __init__(self, lookups: dict[str, dict[str, str]] | None = None) -> None:
        self.rows: dict[tuple[str, str], SnapshotRow] = {}
        self.lists = {table: dict(codes) for table, codes in (lookups or {}).items()}
        self.queries: list[tuple[str, tuple[str, ...]]] = []

    def put(self, table: str, key: str, data: dict, *, deleted: bool = False, import_id: int = 1) -> None:
        self.rows[(table, key)] = SnapshotRow(table, key, dict(data), deleted, import_id)

    def snapshot_rows(self, table: str, keys: list[str]) -> dict[str, SnapshotRow]:
        self.queries.append((table, tuple(keys)))
        return {key: self.rows[(table, key)] for key in keys if (table, key) in self.rows}

    def lookups(self, table: str) -> dict[str, str]:
        return dict(self.lists.get(table, {}))
