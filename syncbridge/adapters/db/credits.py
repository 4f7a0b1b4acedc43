"""The Zoho API credits spent (``zoho_credits``): one row per minute, call type and purpose.

A call adds its credits to its minute's row with one upsert, so the hot path is a single
short statement and a rolling 24 h sums at most 1,440 minutes times a few call types.
Minutes older than :data:`KEEP` are deleted now and then (at most once per :data:`PRUNE_EVERY`
and process), never on every call.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, and_, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from syncbridge.adapters.db.models import ZohoCreditRecord
from syncbridge.ports import CreditTotal, CreditUse, credit_minute

CREDITS: Table = ZohoCreditRecord.__table__  # type: ignore[assignment]
KEEP = timedelta(days=8)
PRUNE_EVERY = timedelta(hours=1)
_SUMMED = ("credits", "calls", "records")
_CONFLICT_INSERTS: dict[str, Callable[[Table], Any]] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class SqlCreditLedger:
    """:class:`syncbridge.ports.CreditLedger` on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.engine = engine
        self.now = now
        self._next_prune: datetime | None = None
        self._prune_lock = threading.Lock()

    def spend(self, use: CreditUse) -> None:
        """Add one call's credits (``use.calls`` calls' when summed) to its minute (``use.at``, else now)."""
        self.spend_many([use])

    def spend_many(self, uses: Sequence[CreditUse]) -> None:
        """Add the credits of ``uses`` to their minutes, in one transaction."""
        if not uses:
            return
        now = self.now()
        with self.engine.begin() as conn:
            conflict_insert = _CONFLICT_INSERTS.get(conn.dialect.name)
            for use in uses:
                values = {"bucket": credit_minute(use.at or now), "call": use.call, "purpose": use.purpose,
                          "credits": use.credits, "calls": use.calls, "records": use.records}
                if conflict_insert is not None:
                    stmt = conflict_insert(CREDITS).values(values)
                    conn.execute(stmt.on_conflict_do_update(
                        index_elements=["bucket", "call", "purpose"],
                        set_={name: CREDITS.c[name] + stmt.excluded[name] for name in _SUMMED}))
                    continue
                key = and_(CREDITS.c.bucket == values["bucket"], CREDITS.c.call == use.call,
                           CREDITS.c.purpose == use.purpose)
                added = conn.execute(update(CREDITS).where(key).values(
                    {name: CREDITS.c[name] + values[name] for name in _SUMMED}))
                if added.rowcount == 0:
                    conn.execute(insert(CREDITS).values(values))
        self._prune(now)

    def _prune(self, now: datetime) -> None:
        with self._prune_lock:
            if self._next_prune is not None and now < self._next_prune:
                return
            self._next_prune = now + PRUNE_EVERY
        with self.engine.begin() as conn:
            conn.execute(delete(CREDITS).where(CREDITS.c.bucket < credit_minute(now - KEEP)))

    def used(self, since: datetime, *, purposes: tuple[str, ...] | None = None) -> int:
        """Credits of the minutes from ``since``'s minute on (by ``purposes`` only, when given)."""
        query = select(func.coalesce(func.sum(CREDITS.c.credits), 0)).where(CREDITS.c.bucket >= credit_minute(since))
        if purposes is not None:
            query = query.where(CREDITS.c.purpose.in_(purposes))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def totals(self, since: datetime) -> list[CreditTotal]:
        """Credits and calls from ``since``'s minute on per call type and purpose, the most credits first."""
        credits, calls = func.sum(CREDITS.c.credits), func.sum(CREDITS.c.calls)
        query = (select(CREDITS.c.call, CREDITS.c.purpose, credits, calls)
                 .where(CREDITS.c.bucket >= credit_minute(since))
                 .group_by(CREDITS.c.call, CREDITS.c.purpose)
                 .order_by(credits.desc(), CREDITS.c.call, CREDITS.c.purpose))
        with self.engine.connect() as conn:
            return [CreditTotal(row[0], row[1], int(row[2]), int(row[3])) for row in conn.execute(query)]

    def minutes_kept(self) -> int:
        """How many (minute, call, purpose) rows are kept (pruning leaves the last 8 days)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(CREDITS)).scalar_one())
