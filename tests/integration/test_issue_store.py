"""Issues and bulk jobs on SQLite and PostgreSQL: grouping by cause, states, progress, cancel, stale jobs."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from syncbridge.adapters.db.dead_letters import SqlDeadLetterStore
from syncbridge.adapters.db.issues import SqlIssueStore, SqlJobStore
from syncbridge.ports import ACKNOWLEDGED, CANCELLED, INTERRUPTED, OPEN, QUEUED, RESOLVED, RUNNING, DeadLetter
from tests.support.databases import emptied_engine

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
CAUSE = "rejected zoho INVALID_DATA field=Email"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request) -> Iterator[Engine]:
    engine = emptied_engine(request.getfixturevalue(f"migrated_{request.param}_url"))
    yield engine
    engine.dispose()


def letter(n: int, cause: str | None, at: datetime) -> DeadLetter:
    return DeadLetter(fingerprint=f"fp-{n}", queue="crm-to-ameise", kind="rejected", record=f"rec-{n}",
                      exchange="ns.events", routing_key="crm.contacts.changed", message_id=f"m-{n}",
                      content_type="application/json", headers={}, body=b"{}", reason="r", first_error=None,
                      attempts=1, first_failed_at=at, dead_lettered_at=at, cause=cause)


def test_issues_group_by_cause_newest_first_with_counts_and_states(engine):
    letters, issues = SqlDeadLetterStore(engine), SqlIssueStore(engine)
    ids = [letters.archive(letter(n, CAUSE, T0 + timedelta(minutes=n))) for n in range(3)]
    letters.archive(letter(9, "contract-violation", T0 - timedelta(hours=1)))
    letters.archive(letter(10, None, T0 + timedelta(hours=1)))          # no cause: in no issue
    with letters.change(ids[0]) as change:
        change.discarded("operator", None)
    found = issues.issues()
    assert [i.cause for i in found] == [CAUSE, "contract-violation"]
    assert (found[0].count, found[0].dead, found[0].state) == (3, 2, OPEN)
    assert (found[0].first_seen, found[0].last_seen) == (T0, T0 + timedelta(minutes=2))
    assert issues.issue("nothing") is None

    issues.set_issue_state(CAUSE, ACKNOWLEDGED, "anna", T0 + timedelta(hours=2))
    issues.set_issue_state(CAUSE, RESOLVED, "ben", T0 + timedelta(hours=3))
    issue = issues.issue(CAUSE)
    assert (issue.state, issue.acknowledged_by, issue.resolved_by) == (RESOLVED, "anna", "ben")
    assert issue.resolved_at == T0 + timedelta(hours=3)
    issues.set_issue_state(CAUSE, OPEN, "ben", T0 + timedelta(hours=4))
    assert replace(issues.issue(CAUSE), count=0) == replace(issue, count=0, state=OPEN, acknowledged_by=None,
                                                            acknowledged_at=None, resolved_by=None, resolved_at=None)


def test_jobs_keep_progress_take_a_cancel_and_stale_ones_are_interrupted(engine):
    jobs = SqlJobStore(engine)
    job = jobs.create_job("replay", {"cause": CAUSE}, by="operator", total=3, at=T0)
    assert (job.state, job.total, job.params, job.cancel_requested) == (QUEUED, 3, {"cause": CAUSE}, False)
    jobs.update_job(job.id, state=RUNNING, done=1, succeeded=1, heartbeat_at=T0 + timedelta(minutes=1))
    assert jobs.request_cancel(job.id) and jobs.job(job.id).cancel_requested
    assert jobs.interrupt_stale(T0, T0 + timedelta(minutes=5)) == 0     # it showed life after T0
    assert jobs.interrupt_stale(T0 + timedelta(minutes=2), T0 + timedelta(minutes=5)) == 1
    stale = jobs.job(job.id)
    assert (stale.state, stale.done, stale.finished_at) == (INTERRUPTED, 1, T0 + timedelta(minutes=5))
    assert not jobs.request_cancel(job.id)                               # finished: nothing to cancel
    second = jobs.create_job("discard", {}, by="admin", total=0, at=T0)
    jobs.update_job(second.id, state=CANCELLED)
    assert [j.id for j in jobs.jobs()] == [second.id, job.id] and jobs.job(second.id).state == CANCELLED
    with pytest.raises(ValueError, match="no such job fields"):
        jobs.update_job(job.id, id=5)


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_migration_gives_dead_letters_archived_before_it_their_cause(database, request, tmp_path):
    from sqlalchemy import insert, select

    from syncbridge.adapters.db import migrate
    from syncbridge.adapters.db.models import DeadLetterRecord
    from syncbridge.adapters.db.sql import make_engine
    from tests.support.databases import pg_schema

    def run(url: str) -> str | None:
        migrate.upgrade(url, "0008_dashboard")
        engine = make_engine(url)
        table = DeadLetterRecord.__table__
        values = {"fingerprint": "fp", "queue": "crm-to-ameise", "kind": "rejected", "state": "dead",
                  "exchange": "e", "routing_key": "crm.contacts.changed", "content_type": "application/json",
                  "headers": {}, "body": b"{}", "reason": "zoho 400 INVALID_DATA field=Email: invalid",
                  "dead_lettered_at": T0, "archived_at": T0, "replays": 0}
        with engine.begin() as conn:
            conn.execute(insert(table).values(values))
        migrate.upgrade(url)
        with engine.connect() as conn:
            cause = conn.execute(select(table.c.cause)).scalar_one()
        engine.dispose()
        return cause

    if database == "sqlite":
        assert run(f"sqlite:///{tmp_path}/old.db") == CAUSE
    else:
        with pg_schema(request.getfixturevalue("postgres_url")) as url:
            assert run(url) == CAUSE
