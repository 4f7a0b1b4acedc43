"""The activity log of a :class:`~simulators.fakes.store.MemoryStore` as the Events pages read it, and saved views.

Same semantics as :class:`syncbridge.adapters.db.events.SqlActivityLog` (one contract test runs both).
"""
from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from simulators.fakes.store import MemoryStore
from syncbridge.ports import ActivityEntry, EventCursor, EventFilter, SavedView


def _matches(entry: ActivityEntry, flt: EventFilter) -> bool:
    if entry.attempt is None or entry.at is None or entry.id is None:
        return False
    for name in ("direction", "entity", "result", "error_kind"):
        value = getattr(flt, name)
        if value and getattr(entry, name) != value:
            return False
    if flt.since is not None and entry.at < flt.since.astimezone(UTC):
        return False
    if flt.until is not None and entry.at >= flt.until.astimezone(UTC):
        return False
    if flt.record and flt.record not in (entry.zoho_id, entry.ameise_id):
        return False
    if flt.text:
        text = flt.text.strip()
        if not (text.lower() in (entry.error or "").lower() or text in (entry.zoho_id, entry.ameise_id, entry.event_id)
                or text.lower() == (entry.zoho_module or "").lower()):
            return False
    return True


class MemoryActivityLog:
    """Reads ``store``'s activity log; keeps saved views in a dict."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._views: dict[tuple[str, str], SavedView] = {}
        self._ids = itertools.count(1)

    def _all(self) -> list[ActivityEntry]:
        with self.store._lock:
            return [replace(e, details=copy.deepcopy(e.details)) for e in self.store._log]

    def events(self, flt: EventFilter, *, after: EventCursor | None = None, limit: int = 50) -> list[ActivityEntry]:
        found = [e for e in self._all() if _matches(e, flt)]
        if after is not None:
            bound = (after[0].astimezone(UTC), after[1])
            found = [e for e in found if (e.at, e.id) < bound]
        found.sort(key=lambda e: (e.at, e.id), reverse=True)
        return found[:max(limit, 0)]

    def entry(self, entry_id: int) -> ActivityEntry | None:
        return next((e for e in self._all() if e.id == entry_id), None)

    def event_entries(self, event_id: str, *, limit: int = 500) -> list[ActivityEntry]:
        found = [e for e in self._all() if e.event_id == event_id]
        found.sort(key=lambda e: (e.at, e.id))
        return found[:limit]

    def record_entries(self, ids: Sequence[str], *, limit: int = 500) -> list[ActivityEntry]:
        wanted = {i for i in ids if i}
        found = [e for e in self._all() if e.zoho_id in wanted or e.ameise_id in wanted]
        found.sort(key=lambda e: (e.at, e.id), reverse=True)
        return found[:limit]

    def save_view(self, owner: str, name: str, query: dict[str, str]) -> SavedView:
        view = SavedView(id=next(self._ids), owner=owner, name=name, query=dict(query), created_at=datetime.now(UTC))
        with self._lock:
            self._views[(owner, name)] = view
        return view

    def views(self, owner: str) -> list[SavedView]:
        with self._lock:
            return sorted((v for (o, _n), v in self._views.items() if o == owner), key=lambda v: v.name)

    def delete_view(self, owner: str, view_id: int) -> bool:
        with self._lock:
            key = next((k for k, v in self._views.items() if k[0] == owner and v.id == view_id), None)
            return key is not None and self._views.pop(key, None) is not None
