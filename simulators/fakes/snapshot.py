"""The in-memory DailyUp snapshot: what the importer stored of the deliveries so far, in dicts.

Implements :class:`syncbridge.ports.DailyUpSnapshot` like ``SqlDailyUpStore``: a lookup
list is the not-deleted rows of its table, each ``{"ID": ..., "Text": ...}``.
"""
from __future__ import annotations

from typing import Any

from syncbridge.ports import SnapshotRow


class MemorySnapshot:
    """A DailyUpSnapshot in dicts; ``queries`` records every ``snapshot_rows`` call (table, keys)."""

    def __init__(self, lookups: dict[str, dict[str, str]] | None = None) -> None:
        self.rows: dict[tuple[str, str], SnapshotRow] = {}
        self.queries: list[tuple[str, tuple[str, ...]]] = []
        for table, codes in (lookups or {}).items():
            for code, text in codes.items():
                self.put(table, code, {"ID": code, "Text": text})

    def put(self, table: str, key: str, data: dict[str, Any], *, deleted: bool = False, import_id: int = 1) -> None:
        """Store the delivered state of one row, as an import does."""
        self.rows[(table, key)] = SnapshotRow(table, key, dict(data), deleted, import_id)

    def snapshot_rows(self, table: str, keys: list[str]) -> dict[str, SnapshotRow]:
        self.queries.append((table, tuple(keys)))
        return {key: self.rows[(table, key)] for key in keys if (table, key) in self.rows}

    def lookups(self, table: str) -> dict[str, str]:
        return {key: row.data.get("Text") for (name, key), row in sorted(self.rows.items())
                if name == table and not row.deleted}
