"""Issues (dead letters grouped by their ``cause`` column, with ``issue_states``) and ``dashboard_jobs``.

SQLAlchemy Core on the engine of :class:`syncbridge.adapters.db.sql.SqlStore`; every method runs
in a short transaction of its own.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, func, insert, select, update
from sqlalchemy.sql import case

from syncbridge.adapters.db.models import DeadLetterRecord, IssueStateRecord, JobRecord
from syncbridge.adapters.db.sql import _upsert
from syncbridge.ports import (
    ACKNOWLEDGED,
    DEAD,
    FINISHED_JOB_STATES,
    INTERRUPTED,
    OPEN,
    QUEUED,
    RESOLVED,
    RUNNING,
    Issue,
    Job,
)

LETTERS: Table = DeadLetterRecord.__table__  # type: ignore[assignment]
STATES: Table = IssueStateRecord.__table__  # type: ignore[assignment]
JOBS: Table = JobRecord.__table__  # type: ignore[assignment]
_JOB_FIELDS = ("action", "params", "state", "created_by", "created_at", "total", "done", "succeeded", "failed",
               "cancel_requested", "started_at", "finished_at", "heartbeat_at", "error")


class SqlIssueStore:
    """:class:`syncbridge.ports.IssueStore` on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _query(self):
        grouped = (select(LETTERS.c.cause.label("cause"), func.count().label("count"),
                          func.sum(case((LETTERS.c.state == DEAD, 1), else_=0)).label("dead"),
                          func.min(LETTERS.c.dead_lettered_at).label("first_seen"),
                          func.max(LETTERS.c.dead_lettered_at).label("last_seen"))
                   .where(LETTERS.c.cause.is_not(None)).group_by(LETTERS.c.cause).subquery())
        return (select(grouped, STATES.c.state, STATES.c.acknowledged_by, STATES.c.acknowledged_at,
                       STATES.c.resolved_by, STATES.c.resolved_at)
                .select_from(grouped.outerjoin(STATES, STATES.c.cause == grouped.c.cause)), grouped)

    @staticmethod
    def _issue(row: Any) -> Issue:
        return Issue(cause=row.cause, count=row.count, dead=int(row.dead or 0), first_seen=_utc(row.first_seen),
                     last_seen=_utc(row.last_seen), state=row.state or OPEN, acknowledged_by=row.acknowledged_by,
                     acknowledged_at=row.acknowledged_at, resolved_by=row.resolved_by, resolved_at=row.resolved_at)

    def issues(self, *, limit: int = 200) -> list[Issue]:
        query, grouped = self._query()
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(grouped.c.last_seen.desc(), grouped.c.cause).limit(limit))
            return [self._issue(row) for row in rows]

    def issue(self, cause: str) -> Issue | None:
        query, grouped = self._query()
        with self.engine.connect() as conn:
            row = conn.execute(query.where(grouped.c.cause == cause)).first()
        return None if row is None else self._issue(row)

    def set_issue_state(self, cause: str, state: str, by: str, at: datetime) -> None:
        values: dict[str, Any] = {"cause": cause, "state": state, "acknowledged_by": None, "acknowledged_at": None,
                                  "resolved_by": None, "resolved_at": None}
        if state == ACKNOWLEDGED:
            values.update(acknowledged_by=by, acknowledged_at=at)
        elif state == RESOLVED:
            values.update(resolved_by=by, resolved_at=at)
        columns = [name for name in values if name != "cause"]
        if state == RESOLVED:       # who acknowledged it stays known
            columns = ["state", "resolved_by", "resolved_at"]
        with self.engine.begin() as conn:
            _upsert(conn, STATES, values, ["cause"], columns)


def _utc(value: Any) -> datetime:
    # MIN/MAX of a timezone-aware column come back as the column's type on PostgreSQL, as text on SQLite.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


class SqlJobStore:
    """:class:`syncbridge.ports.JobStore` on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def _job(row: Any) -> Job:
        return Job(id=row.id, **{name: getattr(row, name) for name in _JOB_FIELDS})

    def create_job(self, action: str, params: dict[str, Any], *, by: str, total: int, at: datetime) -> Job:
        with self.engine.begin() as conn:
            job_id = conn.execute(insert(JOBS).values(
                action=action, params=params, state=QUEUED, created_by=by, created_at=at, total=total, done=0,
                succeeded=0, failed=0, cancel_requested=False, heartbeat_at=at)).inserted_primary_key[0]
        job = self.job(job_id)
        assert job is not None
        return job

    def job(self, job_id: int) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).first()
        return None if row is None else self._job(row)

    def jobs(self, *, limit: int = 20) -> list[Job]:
        with self.engine.connect() as conn:
            return [self._job(row) for row in conn.execute(select(JOBS).order_by(JOBS.c.id.desc()).limit(limit))]

    def update_job(self, job_id: int, **values: Any) -> None:
        unknown = set(values) - set(_JOB_FIELDS)
        if unknown:
            raise ValueError(f"no such job fields: {sorted(unknown)}")
        with self.engine.begin() as conn:
            conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(**values))

    def request_cancel(self, job_id: int) -> bool:
        with self.engine.begin() as conn:
            changed = conn.execute(update(JOBS).where(JOBS.c.id == job_id, JOBS.c.state.not_in(FINISHED_JOB_STATES))
                                   .values(cancel_requested=True))
        return bool(changed.rowcount)

    def interrupt_stale(self, before: datetime, at: datetime) -> int:
        with self.engine.begin() as conn:
            changed = conn.execute(update(JOBS).where(JOBS.c.state.in_((QUEUED, RUNNING)),
                                                      JOBS.c.heartbeat_at < before)
                                   .values(state=INTERRUPTED, finished_at=at,
                                           error="the process running it ended; start it again"))
        return int(changed.rowcount)
