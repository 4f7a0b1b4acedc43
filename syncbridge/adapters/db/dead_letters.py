"""The archive of dead letters: every message of the dead-letter queue as one row, for ops.

RabbitMQ queues cannot be browsed or filtered, so the archiver moves each dead
letter into the ``dead_letters`` table; listing, replaying and discarding work on
the table.  SQLAlchemy Core on the engine of :class:`syncbridge.adapters.db.sql.SqlStore` (SQLite
or PostgreSQL, schema by the Alembic migrations); every method runs in a short
transaction of its own, a change of one row in :meth:`SqlDeadLetterStore.change`.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Select, Table, func, or_, select, update
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import IntegrityError

from syncbridge.adapters.db.models import DeadLetterRecord, utcnow
from syncbridge.adapters.db.sql import _insert_ignore, make_engine
from syncbridge.ports import (
    DEAD,
    DISCARDED,
    REPLAYED,
    DeadLetter,
    DeadLetterFilter,
    dead_letter_kind,
    dead_letter_kind_names,
)

DEAD_LETTERS: Table = DeadLetterRecord.__table__  # type: ignore[assignment]

_COLUMNS = tuple(f.name for f in fields(DeadLetter))
_ARCHIVED = ("fingerprint", "queue", "kind", "record", "exchange", "routing_key", "message_id", "content_type",
             "headers", "body", "reason", "first_error", "attempts", "first_failed_at", "dead_lettered_at", "cause")


def _to_letter(row: Any) -> DeadLetter:
    values = {name: getattr(row, name) for name in _COLUMNS}
    corrected = values["corrected_body"]
    return DeadLetter(**{**values, "headers": dict(values["headers"] or {}), "body": bytes(values["body"]),
                         "corrected_body": None if corrected is None else bytes(corrected),
                         "kind": str(dead_letter_kind(values["kind"]))})   # an older name as the kind it is now


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
    return value.astimezone(UTC)


def _where(query: Select, flt: DeadLetterFilter) -> Select:
    for name in ("queue", "record", "state", "cause"):
        value = getattr(flt, name)
        if value is not None:
            query = query.where(DEAD_LETTERS.c[name] == value)
    if flt.text is not None:
        pattern = "%" + flt.text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(*(func.lower(DEAD_LETTERS.c[name]).like(pattern, escape="\\")
                                  for name in ("reason", "record", "routing_key", "message_id"))))
    if flt.kind is not None:   # rows archived under an older name of the kind too
        query = query.where(DEAD_LETTERS.c.kind.in_(dead_letter_kind_names(flt.kind)))
    if flt.since is not None:
        query = query.where(DEAD_LETTERS.c.dead_lettered_at >= _as_utc(flt.since))
    if flt.until is not None:
        query = query.where(DEAD_LETTERS.c.dead_lettered_at < _as_utc(flt.until))
    return query


class SqlDeadLetterStore:
    """The ``dead_letters`` table on a SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str | URL) -> SqlDeadLetterStore:
        """Create a store on a new engine for ``url``."""
        return cls(make_engine(url))

    def archive(self, letter: DeadLetter) -> int:
        """Store a dead letter unless one with its fingerprint is stored already; return the row's id."""
        values = {name: getattr(letter, name) for name in _ARCHIVED}
        values.update(state=DEAD, replays=0, archived_at=utcnow() if letter.archived_at is None else letter.archived_at)
        try:
            with self.engine.begin() as conn:
                _insert_ignore(conn, DEAD_LETTERS, values, ["fingerprint"])
        except IntegrityError:
            # Only the portable path gets here: a redelivery was archived by someone else first.
            pass
        with self.engine.connect() as conn:
            return conn.execute(select(DEAD_LETTERS.c.id)
                                .where(DEAD_LETTERS.c.fingerprint == letter.fingerprint)).scalar_one()

    def get(self, letter_id: int) -> DeadLetter | None:
        """Return one dead letter by its id."""
        with self.engine.connect() as conn:
            row = conn.execute(select(DEAD_LETTERS).where(DEAD_LETTERS.c.id == letter_id)).first()
        return None if row is None else _to_letter(row)

    def find(self, flt: DeadLetterFilter = DeadLetterFilter(), *, limit: int = 100) -> list[DeadLetter]:
        """Return the dead letters ``flt`` matches, newest first."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        query = (_where(select(DEAD_LETTERS), flt)
                 .order_by(DEAD_LETTERS.c.dead_lettered_at.desc(), DEAD_LETTERS.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [_to_letter(row) for row in conn.execute(query)]

    def count(self, flt: DeadLetterFilter = DeadLetterFilter()) -> int:
        """Count the dead letters ``flt`` matches."""
        with self.engine.connect() as conn:
            return conn.execute(_where(select(func.count()).select_from(DEAD_LETTERS), flt)).scalar_one()

    def ids(self, flt: DeadLetterFilter, *, after: int = 0, limit: int = 500) -> list[int]:
        """Return the ids ``flt`` matches above ``after``, in id order (a bulk action reads them page by page)."""
        query = (_where(select(DEAD_LETTERS.c.id), flt).where(DEAD_LETTERS.c.id > after)
                 .order_by(DEAD_LETTERS.c.id).limit(limit))
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    @contextmanager
    def change(self, letter_id: int) -> Iterator[LetterChange | None]:
        """Lock one dead letter for a change (None if there is none): committed at the end, rolled back on an error.

        On PostgreSQL the row stays locked until then, so two operators cannot replay it at the same time.
        """
        with self.engine.begin() as conn:
            row = conn.execute(select(DEAD_LETTERS).where(DEAD_LETTERS.c.id == letter_id).with_for_update()).first()
            yield None if row is None else LetterChange(conn, _to_letter(row))


@dataclass
class LetterChange:
    """The changes of one locked dead letter, inside its transaction."""

    conn: Connection
    letter: DeadLetter

    def replayed(self, by: str) -> DeadLetter:
        """Mark it replayed (once more) by ``by``, now."""
        return self._set(state=REPLAYED, replays=self.letter.replays + 1, replayed_by=by, replayed_at=utcnow(),
                         replay_error=None)

    def discarded(self, by: str, note: str | None) -> DeadLetter:
        """Mark it discarded by ``by``, now, with an optional note."""
        return self._set(state=DISCARDED, discarded_by=by, discarded_at=utcnow(), note=note)

    def refused(self, reason: str) -> DeadLetter:
        """Note why a replay was refused; the dead letter stays as it is."""
        return self._set(replay_error=reason)

    def corrected(self, body: bytes, by: str) -> DeadLetter:
        """Keep ``body`` as the correction a replay publishes (the original stays), by ``by``, now."""
        return self._set(corrected_body=bytes(body), corrected_by=by, corrected_at=utcnow())

    def _set(self, **values: Any) -> DeadLetter:
        self.conn.execute(update(DEAD_LETTERS).where(DEAD_LETTERS.c.id == self.letter.id).values(**values))
        self.letter = replace(self.letter, **values)
        return self.letter
