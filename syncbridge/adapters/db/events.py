"""The activity log as the Events and Record timeline pages read it, and their saved views.

The Events list is a keyset over ``(at, id)`` newest first (never OFFSET): each
page asks for entries older than the last one shown, through the partial
indexes of migration 0009_events (attempts only, each filter paired with
``(at, id)``).  Free text matches a part of the error (a trigram index on
PostgreSQL) or one of the ids exactly; the details, where personal data lives,
are not searched.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, Table, delete, func, or_, select, tuple_
from sqlalchemy.exc import IntegrityError

from syncbridge.adapters.db.models import SavedViewRecord, utcnow
from syncbridge.adapters.db.sql import ACTIVITY, _as_utc, _to_entry
from syncbridge.ports import ActivityEntry, EventCursor, EventFilter, SavedView

VIEWS: Table = SavedViewRecord.__table__  # type: ignore[assignment]
MAX_LIMIT = 1000


def _like_pattern(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def event_query(flt: EventFilter, after: EventCursor | None, limit: int) -> Any:
    """The SELECT of one page of the Events list (also what the benchmark explains)."""
    query = select(ACTIVITY).where(ACTIVITY.c.attempt.is_not(None))
    for column in ("direction", "entity", "result", "error_kind"):
        value = getattr(flt, column)
        if value:
            query = query.where(ACTIVITY.c[column] == value)
    if flt.since is not None:
        query = query.where(ACTIVITY.c.at >= _as_utc(flt.since))
    if flt.until is not None:
        query = query.where(ACTIVITY.c.at < _as_utc(flt.until))
    if flt.record:
        query = query.where(or_(ACTIVITY.c.zoho_id == flt.record, ACTIVITY.c.ameise_id == flt.record))
    if flt.text:
        text = flt.text.strip()
        query = query.where(or_(
            ACTIVITY.c.error.ilike(_like_pattern(text), escape="\\"),
            ACTIVITY.c.zoho_id == text, ACTIVITY.c.ameise_id == text, ACTIVITY.c.event_id == text,
            func.lower(ACTIVITY.c.zoho_module) == text.lower(),
        ))
    if after is not None:
        at, entry_id = after
        query = query.where(tuple_(ACTIVITY.c.at, ACTIVITY.c.id) < tuple_(_as_utc(at), entry_id))
    return query.order_by(ACTIVITY.c.at.desc(), ACTIVITY.c.id.desc()).limit(min(max(limit, 0), MAX_LIMIT))


class SqlActivityLog:
    """Implements the ``ActivityLog`` and ``SavedViews`` ports on the service's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------ the log
    def events(self, flt: EventFilter, *, after: EventCursor | None = None, limit: int = 50) -> list[ActivityEntry]:
        with self.engine.connect() as conn:
            return [_to_entry(row) for row in conn.execute(event_query(flt, after, limit))]

    def entry(self, entry_id: int) -> ActivityEntry | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(ACTIVITY).where(ACTIVITY.c.id == entry_id)).first()
        return None if row is None else _to_entry(row)

    def event_entries(self, event_id: str, *, limit: int = 500) -> list[ActivityEntry]:
        query = (select(ACTIVITY).where(ACTIVITY.c.event_id == event_id)
                 .order_by(ACTIVITY.c.at, ACTIVITY.c.id).limit(limit))
        with self.engine.connect() as conn:
            return [_to_entry(row) for row in conn.execute(query)]

    def record_entries(self, ids: Sequence[str], *, limit: int = 500) -> list[ActivityEntry]:
        wanted = [i for i in ids if i]
        if not wanted:
            return []
        query = (select(ACTIVITY).where(or_(ACTIVITY.c.zoho_id.in_(wanted), ACTIVITY.c.ameise_id.in_(wanted)))
                 .order_by(ACTIVITY.c.at.desc(), ACTIVITY.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [_to_entry(row) for row in conn.execute(query)]

    # ------------------------------------------------------------ saved views
    def save_view(self, owner: str, name: str, query: dict[str, str]) -> SavedView:
        with self.engine.begin() as conn:
            conn.execute(delete(VIEWS).where(VIEWS.c.owner == owner, VIEWS.c.name == name))
            try:
                conn.execute(VIEWS.insert().values(owner=owner, name=name, query=dict(query), created_at=utcnow()))
            except IntegrityError:      # saved at the same moment by the same user elsewhere: that one stays
                pass
            row = conn.execute(select(VIEWS).where(VIEWS.c.owner == owner, VIEWS.c.name == name)).one()
        return _to_view(row)

    def views(self, owner: str) -> list[SavedView]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(VIEWS).where(VIEWS.c.owner == owner).order_by(VIEWS.c.name))
            return [_to_view(row) for row in rows]

    def delete_view(self, owner: str, view_id: int) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(VIEWS).where(VIEWS.c.owner == owner, VIEWS.c.id == view_id)).rowcount)


def _to_view(row: Any) -> SavedView:
    return SavedView(id=row.id, owner=row.owner, name=row.name, query=dict(row.query or {}), created_at=row.created_at)
