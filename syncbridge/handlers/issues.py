"""Issues (dead letters grouped by cause) and bulk replay / discard as background jobs, for the dashboard.

An issue is every dead letter of one cause (``syncbridge.ports.dead_letter_cause``: kind, system,
code, field).  Operators move it open -> acknowledged -> resolved; a resolved issue whose cause
dies again after it was resolved reads as open (reopened).  A bulk action first makes a
:class:`Plan` of every dead letter its filter matches (how many, per queue, how many fail their
contract now: a dry run), then runs as a :class:`~syncbridge.ports.Job` whose progress and cancel
flag are in the job store, so any process can show it and stop it.  No Flask, threads or SQL in here:
the entrypoint decides where :meth:`BulkJobs.run` runs.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from syncbridge.handlers.dead_letters import (
    QUEUES,
    REFUSED,
    DeadLetterOps,
    Outcome,
    Selection,
    parse_filter,
)
from syncbridge.handlers.operators import Operators
from syncbridge.ports import (
    ACKNOWLEDGED,
    CANCELLED,
    DEAD,
    DONE,
    FAILED_JOB,
    INTERRUPTED,
    OPEN,
    RESOLVED,
    RUNNING,
    DeadLetterFilter,
    Issue,
    IssueStore,
    Job,
    JobStore,
)

log = logging.getLogger(__name__)

ACTIONS = ("replay", "discard")
FILTER_FIELDS = ("queue", "kind", "record", "since", "until", "text", "cause")
STALE_AFTER = timedelta(minutes=2)     # a running job without a heartbeat for this long has lost its process
PLAN_SAMPLE = 5                        # contract problems shown in a plan


def _utcnow() -> datetime:
    return datetime.now(UTC)


def issue_state(issue: Issue) -> str:
    """The state an issue reads as: a resolved one whose cause died again after resolving is open again."""
    if issue.state == RESOLVED and issue.resolved_at is not None and issue.last_seen > issue.resolved_at:
        return OPEN
    return issue.state


def reopened(issue: Issue) -> bool:
    return issue.state == RESOLVED and issue_state(issue) == OPEN


class IssueError(ValueError):
    """A state change that is not allowed; ``code`` names it for the caller's wording."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# The moves an operator may make, from the state the issue reads as.
MOVES = {"acknowledge": ({OPEN}, ACKNOWLEDGED), "resolve": ({OPEN, ACKNOWLEDGED}, RESOLVED),
         "reopen": ({ACKNOWLEDGED, RESOLVED}, OPEN)}


class Issues:
    """Read issues and move them through their states; every move goes to the audit log."""

    def __init__(self, store: IssueStore, operators: Operators, *, now: Callable[[], datetime] = _utcnow) -> None:
        self.store = store
        self.operators = operators
        self.now = now

    def all(self, state: str | None = None) -> list[Issue]:
        return [issue for issue in self.store.issues() if state is None or issue_state(issue) == state]

    def get(self, cause: str) -> Issue | None:
        return self.store.issue(cause)

    def move(self, cause: str, move: str, *, by: str) -> Issue:
        issue = self.store.issue(cause)
        if issue is None:
            raise IssueError("unknown")
        if move not in MOVES:
            raise IssueError("bad_move")
        allowed, target = MOVES[move]
        if issue_state(issue) not in allowed:
            raise IssueError("not_now")
        self.store.set_issue_state(cause, target, by, self.now())
        self.operators.record(by, f"issue.{move}", cause, previous=issue_state(issue))
        found = self.store.issue(cause)
        assert found is not None
        return found


# ---------------------------------------------------------------- bulk plans and jobs
@dataclass(frozen=True)
class Plan:
    """What a bulk action would act on: every dead letter the filter matches that is still dead."""

    action: str
    params: dict[str, str]
    total: int
    by_queue: dict[str, int]
    refused: int                        # of them, how many the action would refuse now (contract, state)
    problems: tuple[Outcome, ...]       # a few refusals and why


def filter_params(values: dict[str, Any]) -> dict[str, str]:
    """The filter fields of ``values`` (a query string, a form), as text, empty ones left out."""
    found = {}
    for name in FILTER_FIELDS:
        value = values.get(name)
        if isinstance(value, str) and value.strip():
            found[name] = value.strip()
    return found


def bulk_filter(params: dict[str, str]) -> DeadLetterFilter:
    """The filter a bulk action acts on: the given fields, always the dead letters still dead."""
    return replace(parse_filter(**params), state=DEAD)


class BulkJobs:
    """Plan, start, run and cancel bulk replays and discards of dead letters."""

    def __init__(self, ops: DeadLetterOps, jobs: JobStore, operators: Operators, *,
                 now: Callable[[], datetime] = _utcnow, page: int = 200) -> None:
        self.ops = ops
        self.jobs = jobs
        self.operators = operators
        self.now = now
        self.page = page

    def plan(self, action: str, params: dict[str, str]) -> Plan:
        """Count what ``action`` would do with every match of ``params``; a dry run tells the refusals."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
        flt = bulk_filter(params)
        letters = self.ops.letters
        total = letters.count(flt)
        by_queue = {queue: n for queue in QUEUES if (n := letters.count(replace(flt, queue=queue)))}
        refused = 0
        problems: list[Outcome] = []
        if total and action == "replay":
            for outcome in self.ops.replay(Selection(filter=flt), by="plan", dry_run=True):
                if outcome.status == REFUSED:
                    refused += 1
                    if len(problems) < PLAN_SAMPLE:
                        problems.append(outcome)
        return Plan(action, params, total, by_queue, refused, tuple(problems))

    def start(self, action: str, params: dict[str, str], *, by: str) -> Job:
        """Queue a job for every match of ``params`` (checked now); the caller runs :meth:`run` somewhere."""
        plan = self.plan(action, params)
        job = self.jobs.create_job(action, dict(params), by=by, total=plan.total, at=self.now())
        self.operators.record(by, f"dead_letters.bulk_{action}", f"job {job.id}", filter=dict(params),
                              total=plan.total)
        return job

    def cancel(self, job_id: int, *, by: str) -> bool:
        """Ask a job to stop after the dead letter it is at; whether it was still running."""
        asked = self.jobs.request_cancel(job_id)
        if asked:
            self.operators.record(by, "dead_letters.bulk_cancelled", f"job {job_id}")
        return asked

    def job(self, job_id: int) -> Job | None:
        self.jobs.interrupt_stale(self.now() - STALE_AFTER, self.now())
        return self.jobs.job(job_id)

    def recent(self, limit: int = 10) -> list[Job]:
        self.jobs.interrupt_stale(self.now() - STALE_AFTER, self.now())
        return self.jobs.jobs(limit=limit)

    def run(self, job_id: int) -> Job | None:
        """Act on each matching dead letter in id order, noting progress; stop when asked or the broker fails."""
        job = self.jobs.job(job_id)
        if job is None or job.finished:
            return job
        self.jobs.update_job(job_id, state=RUNNING, started_at=self.now(), heartbeat_at=self.now())
        done = succeeded = failed = 0
        state, error = DONE, None
        try:
            flt = bulk_filter(job.params)
            after = 0
            while state == DONE and (ids := self.ops.letters.ids(flt, after=after, limit=self.page)):
                for letter_id in ids:
                    current = self.jobs.job(job_id)
                    if current is None or current.cancel_requested:
                        state = CANCELLED
                        break
                    outcome = self._act(job, letter_id)
                    done += 1
                    succeeded += outcome.ok
                    failed += not outcome.ok
                    self.jobs.update_job(job_id, done=done, succeeded=succeeded, failed=failed,
                                         total=max(job.total, done), heartbeat_at=self.now())
                    if outcome.status == "failed":
                        state, error = FAILED_JOB, outcome.reason
                        break
                after = ids[-1]
        except Exception as exc:   # noqa: BLE001 - a job ends with its error shown, never silently
            log.exception("bulk job %s failed", job_id)
            state, error = FAILED_JOB, f"{type(exc).__name__}: {exc}"
        self.jobs.update_job(job_id, state=state, finished_at=self.now(), error=error)
        self.operators.record(job.created_by, f"dead_letters.bulk_{job.action}_finished", f"job {job_id}",
                              state=state, done=done, succeeded=succeeded, failed=failed)
        return self.jobs.job(job_id)

    def _act(self, job: Job, letter_id: int) -> Outcome:
        selection = Selection(ids=(letter_id,))
        if job.action == "replay":
            return self.ops.replay(selection, by=job.created_by)[0]
        return self.ops.discard(selection, by=job.created_by, note=f"bulk job {job.id}")[0]


__all__ = ["ACKNOWLEDGED", "CANCELLED", "DONE", "FAILED_JOB", "INTERRUPTED", "OPEN", "RESOLVED", "BulkJobs",
           "IssueError", "Issues", "Plan", "bulk_filter", "filter_params", "issue_state"]
