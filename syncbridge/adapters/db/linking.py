"""The proposals of first-time linking (``link_runs``, ``link_proposals``) and the DailyUp snapshot they read.

SQLAlchemy Core on the engine of :class:`syncbridge.adapters.db.sql.SqlStore`; every method runs in a
short transaction of its own.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, and_, func, insert, or_, select, update

from syncbridge.adapters.db.models import DailyUpSnapshotRecord, LinkProposalRecord, LinkRunRecord
from syncbridge.ports import (
    ACCEPTED,
    OPEN_PROPOSAL_STATES,
    PROPOSAL_STATES,
    SUPERSEDED,
    LinkProposal,
    LinkRun,
    SnapshotRow,
)

RUNS: Table = LinkRunRecord.__table__  # type: ignore[assignment]
PROPOSALS: Table = LinkProposalRecord.__table__  # type: ignore[assignment]
SNAPSHOT: Table = DailyUpSnapshotRecord.__table__  # type: ignore[assignment]
INSERT_CHUNK = 1000
READ_CHUNK = 2000


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SqlLinkingStore:
    """:class:`syncbridge.ports.LinkingStore` on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def snapshot_records(self, table: str) -> Iterator[SnapshotRow]:
        after = ""
        while True:   # keyset pages: no transaction stays open while the caller works
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(SNAPSHOT.c.key, SNAPSHOT.c.data, SNAPSHOT.c.import_id)
                    .where(SNAPSHOT.c.table == table, SNAPSHOT.c.deleted.is_(False), SNAPSHOT.c.key > after)
                    .order_by(SNAPSHOT.c.key).limit(READ_CHUNK)).fetchall()
            if not rows:
                return
            for row in rows:
                yield SnapshotRow(table, row.key, dict(row.data or {}), False, row.import_id)
            after = rows[-1].key

    def record_run(self, *, by: str, at: datetime, counts: dict[str, int],
                   proposals: Sequence[LinkProposal]) -> LinkRun:
        with self.engine.begin() as conn:
            run_id = conn.execute(insert(RUNS).values(started_at=at, started_by=by, counts=dict(counts))
                                  .returning(RUNS.c.id)).scalar_one()
            conn.execute(update(PROPOSALS).where(PROPOSALS.c.status.in_(OPEN_PROPOSAL_STATES))
                         .values(status=SUPERSEDED))
            rows = [{"run_id": run_id, "entity": p.entity, "kind": p.kind, "ameise_key": p.ameise_key,
                     "zoho_module": p.zoho_module, "zoho_id": p.zoho_id, "crm_number": p.crm_number,
                     "score": p.score, "reasons": list(p.reasons), "status": p.status,
                     "ameise_label": p.ameise_label, "crm_label": p.crm_label} for p in proposals]
            for start in range(0, len(rows), INSERT_CHUNK):
                conn.execute(insert(PROPOSALS), rows[start:start + INSERT_CHUNK])
        return LinkRun(run_id, at, by, dict(counts))

    def last_run(self) -> LinkRun | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(RUNS).order_by(RUNS.c.id.desc()).limit(1)).first()
        if row is None:
            return None
        return LinkRun(row.id, _utc(row.started_at) or row.started_at, row.started_by, dict(row.counts or {}))

    @staticmethod
    def _proposal(row: Any) -> LinkProposal:
        return LinkProposal(entity=row.entity, kind=row.kind, ameise_key=row.ameise_key, zoho_module=row.zoho_module,
                            zoho_id=row.zoho_id, score=row.score, reasons=tuple(row.reasons or ()),
                            status=row.status, ameise_label=row.ameise_label, crm_label=row.crm_label,
                            crm_number=row.crm_number, id=row.id, run_id=row.run_id, decided_by=row.decided_by,
                            decided_at=_utc(row.decided_at))

    def proposals(self, *, statuses: Sequence[str] | None = None, after_id: int = 0,
                  limit: int | None = 100) -> list[LinkProposal]:
        query = select(PROPOSALS).where(PROPOSALS.c.id > after_id).order_by(PROPOSALS.c.id)
        if statuses is not None:
            query = query.where(PROPOSALS.c.status.in_(list(statuses)))
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [self._proposal(row) for row in conn.execute(query)]

    def proposal(self, proposal_id: int) -> LinkProposal | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(PROPOSALS).where(PROPOSALS.c.id == proposal_id)).first()
        return None if row is None else self._proposal(row)

    def decide(self, proposal_id: int, status: str, *, by: str, at: datetime) -> LinkProposal:
        if status not in PROPOSAL_STATES:
            raise ValueError(f"unknown proposal status {status!r}")
        with self.engine.begin() as conn:
            changed = conn.execute(update(PROPOSALS)
                                   .where(PROPOSALS.c.id == proposal_id,
                                          PROPOSALS.c.status.in_(OPEN_PROPOSAL_STATES))
                                   .values(status=status, decided_by=by, decided_at=at)).rowcount
            if not changed:
                raise ValueError(f"proposal {proposal_id} is not open")
            row = conn.execute(select(PROPOSALS).where(PROPOSALS.c.id == proposal_id)).one()
            if status == ACCEPTED:
                conn.execute(update(PROPOSALS).where(
                    PROPOSALS.c.id != proposal_id, PROPOSALS.c.entity == row.entity,
                    PROPOSALS.c.status.in_(OPEN_PROPOSAL_STATES),
                    or_(PROPOSALS.c.ameise_key == row.ameise_key, PROPOSALS.c.zoho_id == row.zoho_id),
                ).values(status=SUPERSEDED, decided_by=by, decided_at=at))
        return self._proposal(row)

    def open_proposals_for(self, entity: str, ameise_key: str) -> list[LinkProposal]:
        query = (select(PROPOSALS).where(and_(PROPOSALS.c.entity == entity, PROPOSALS.c.ameise_key == ameise_key,
                                              PROPOSALS.c.status.in_(OPEN_PROPOSAL_STATES)))
                 .order_by(PROPOSALS.c.id))
        with self.engine.connect() as conn:
            return [self._proposal(row) for row in conn.execute(query)]

    def count_proposals(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(PROPOSALS.c.status, func.count()).group_by(PROPOSALS.c.status))
            return {status: count for status, count in rows}
