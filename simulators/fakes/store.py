"""In-memory store, for fast tests and single-process runs; same semantics as :class:`syncbridge.adapters.db.sql.SqlStore`."""
from __future__ import annotations

import copy
import itertools
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from simulators.fakes.credits import MemoryCreditLedger
from syncbridge.adapters.tokens import MemoryTokenStore
from syncbridge.ports import ActivityCount, ActivityEntry, Link, LinkConflict, RecordLease


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
    return value.astimezone(UTC)


class MemoryStore:
    """Keeps links, processed events and the activity log in dicts and lists; thread-safe."""

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """``now``: the clock of record leases (timezone-aware)."""
        self.now = now
        self.tokens = MemoryTokenStore()
        self.credits = MemoryCreditLedger(now)    # the Zoho API credits spent
        self._lock = threading.Lock()
        self._links: dict[tuple[str, str], Link] = {}          # (entity, zoho_id) -> link
        self._processed: dict[str, str] = {}                   # event_id -> outcome
        self._log: list[ActivityEntry] = []
        self._ids = itertools.count(1)
        self._records: dict[str, tuple[str | None, float, datetime | None]] = {}  # key -> (owner, until, synced)
        self._creating: set[str] = set()

    def find_link(self, entity: str, *, zoho_id: str | None = None, ameise_id: str | None = None) -> Link | None:
        """Return the link of a record by its id on either side (both must match when both are given)."""
        if zoho_id is None and ameise_id is None:
            raise ValueError("find_link needs zoho_id or ameise_id")
        with self._lock:
            for link in self._links.values():
                if (
                    link.entity == entity
                    and (zoho_id is None or link.zoho_id == zoho_id)
                    and (ameise_id is None or link.ameise_id == ameise_id)
                ):
                    return link
        return None

    def save_link(self, entity: str, zoho_module: str, zoho_id: str, ameise_id: str) -> Link:
        """Create or update the link of (entity, zoho_id).

        Raises LinkConflict when ``ameise_id`` is already linked to another Zoho record.
        """
        now = datetime.now(UTC)
        with self._lock:
            for other in self._links.values():
                if other.entity == entity and other.ameise_id == ameise_id and other.zoho_id != zoho_id:
                    raise LinkConflict(f"{entity} {ameise_id} is already linked to Zoho record {other.zoho_id}")
            existing = self._links.get((entity, zoho_id))
            created_at = now if existing is None else existing.created_at
            link = Link(entity, zoho_module, zoho_id, ameise_id, created_at=created_at, updated_at=now)
            self._links[(entity, zoho_id)] = link
            return link

    def delete_link(self, entity: str, zoho_id: str) -> None:
        with self._lock:
            self._links.pop((entity, zoho_id), None)

    def lock_record(self, key: str, owner: str, ttl: float) -> bool:
        now = self.now().timestamp()
        with self._lock:
            holder, until, synced = self._records.get(key, (None, 0.0, None))
            if holder not in (None, owner) and until > now:
                return False
            self._records[key] = (owner, now + ttl, synced)
            return True

    def take_record(self, key: str, owner: str, ttl: float, *, event_id: str | None = None,
                    link: tuple[str, str] | None = None, note_create: bool = False) -> RecordLease | None:
        """Take the lease of one record (as :meth:`lock_record`) and read its state at once."""
        now = self.now().timestamp()
        with self._lock:
            if event_id is not None and event_id in self._processed:
                return RecordLease(processed=True)
            holder, until, synced = self._records.get(key, (None, 0.0, None))
            if holder not in (None, owner) and until > now:
                return None
            self._records[key] = (owner, now + ttl, synced)
            found = self._links.get(link) if link is not None else None
            creating = key in self._creating
            noted = note_create and link is not None and found is None and not creating
            if noted:
                self._creating.add(key)
            return RecordLease(synced_from=synced, creating=creating, link=found, link_read=link is not None,
                               noted=noted)

    def unlock_record(self, key: str, owner: str, *, synced_from: datetime | None = None) -> None:
        with self._lock:
            holder, until, synced = self._records.get(key, (None, 0.0, None))
            if holder == owner:
                self._records[key] = (None, 0.0, synced_from or synced)

    def last_synced_from(self, key: str) -> datetime | None:
        with self._lock:
            return self._records.get(key, (None, 0.0, None))[2]

    def note_create(self, key: str, creating: bool) -> None:
        with self._lock:
            if creating:
                self._creating.add(key)
            else:
                self._creating.discard(key)

    def create_under_way(self, key: str) -> bool:
        with self._lock:
            return key in self._creating

    def was_processed(self, event_id: str) -> bool:
        """Tell whether an event was already handled to the end."""
        with self._lock:
            return event_id in self._processed

    def mark_processed(self, event_id: str, outcome: str) -> None:
        """Remember that an event was handled; the first outcome stays."""
        with self._lock:
            self._processed.setdefault(event_id, outcome)

    def log(self, entry: ActivityEntry) -> ActivityEntry:
        """Append to the activity log; return the entry with its id and time (UTC)."""
        at = datetime.now(UTC) if entry.at is None else _as_utc(entry.at)
        with self._lock:
            stored = replace(entry, id=next(self._ids), at=at, details=copy.deepcopy(dict(entry.details)))
            self._log.append(stored)
        # Callers get their own copy of the details, as they would from a database.
        return replace(stored, details=copy.deepcopy(stored.details))

    def finish_record(self, key: str, owner: str, *, synced_from: datetime | None = None,
                      entries: Sequence[ActivityEntry] = (), processed: tuple[str, str] | None = None,
                      created: bool = False, link: Link | None = None,
                      echoes: Sequence[tuple[str, str, dict[str, Any]]] = (), withdrawn: bool = False) -> None:
        """End one record's sync at once: link, log entries, processed mark, create note cleared, lock released.

        This store keeps no echo marks, so it is never a sync's ``EchoMarks``: ``echoes`` must be empty.
        """
        if echoes:
            raise ValueError("the in-memory store keeps no DailyUp echo marks")
        conflict: LinkConflict | None = None
        if link is not None:
            try:
                self.save_link(link.entity, link.zoho_module, link.zoho_id, link.ameise_id)
            except LinkConflict as exc:
                conflict, created = exc, False
        self._finish(key, owner, synced_from, entries, processed, created, withdrawn)
        if conflict is not None:
            raise conflict

    def _finish(self, key: str, owner: str, synced_from: datetime | None, entries: Sequence[ActivityEntry],
                processed: tuple[str, str] | None, created: bool, withdrawn: bool) -> None:
        stamped = [replace(entry, at=datetime.now(UTC) if entry.at is None else _as_utc(entry.at),
                           details=copy.deepcopy(dict(entry.details))) for entry in entries]
        with self._lock:
            self._log.extend(replace(entry, id=next(self._ids)) for entry in stamped)
            if processed is not None:
                self._processed.setdefault(*processed)
            if created:
                self._creating.discard(key)
            holder, until, synced = self._records.get(key, (None, 0.0, None))
            if holder == owner:
                self._records[key] = (None, 0.0, synced_from or synced)
                if withdrawn:
                    self._creating.discard(key)

    def activities(
        self,
        *,
        direction: str | None = None,
        entity: str | None = None,
        result: str | None = None,
        action: str | None = None,
        zoho_id: str | None = None,
        ameise_id: str | None = None,
        event_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[ActivityEntry]:
        """Return activity log entries, newest first; ``since`` is inclusive, ``until`` exclusive."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        since = None if since is None else _as_utc(since)
        until = None if until is None else _as_utc(until)
        wanted = {
            "direction": direction, "entity": entity, "result": result, "action": action,
            "zoho_id": zoho_id, "ameise_id": ameise_id, "event_id": event_id,
        }
        with self._lock:
            entries = [
                entry for entry in self._log
                if all(value is None or getattr(entry, name) == value for name, value in wanted.items())
                and (since is None or entry.at >= since)
                and (until is None or entry.at < until)
            ]
        entries.sort(key=lambda entry: (entry.at, entry.id), reverse=True)
        return [replace(entry, details=copy.deepcopy(entry.details)) for entry in entries[:limit]]

    def activity_counts(self, *, since: datetime, until: datetime) -> list[ActivityCount]:
        """Count the activity log per UTC day, direction, entity, action and result (``until`` exclusive).

        A delivery that succeeded is counted by the handler's own steps, not again by its attempt entry.
        """
        since, until = _as_utc(since), _as_utc(until)
        with self._lock:
            counted = Counter((entry.at.astimezone(UTC).date(), entry.direction, entry.entity, entry.action,
                               entry.result) for entry in self._log
                              if entry.at is not None and since <= entry.at < until
                              and (entry.attempt is None or entry.result != "ok"))
        return [ActivityCount(*key, count) for key, count in sorted(counted.items(), key=lambda item: item[0][0])]

    def ping(self) -> None:
        """Do nothing: memory is always reachable."""
