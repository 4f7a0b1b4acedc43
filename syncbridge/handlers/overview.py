"""What the dashboard's Overview shows, gathered from the ports: directions, connections, queues, backlog.

Each source is optional or may fail on its own (a broker that is down leaves the
queue depths unknown, not the page broken).  Pausing a direction is a flag in
the store, set and cleared here and written to the audit log.

A quorum queue does not tell the age of its first message (RabbitMQ reports a
head message's timestamp for classic queues only), and peeking at it would count
as a delivery.  The Overview bounds it instead: a queue hands out its messages in
order, so every waiting message entered the queue after the one a worker took
last, and that one entered no earlier than the receiver took it in.  The oldest
waiting message is therefore at most ``now - received_at`` of the last taken one
(the newest attempt of the queue's direction in the activity log).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from syncbridge.errors import Unavailable
from syncbridge.handlers.credits import CreditSummary, credit_summary
from syncbridge.handlers.issues import issue_state
from syncbridge.ports import (
    ACKNOWLEDGED,
    AMEISE_TO_CRM,
    CRM_TO_AMEISE,
    DEAD,
    OPEN,
    ActivityLog,
    AuditEntry,
    CreditLedger,
    DailyUpImport,
    DeadLetterFilter,
    DeadLetterStore,
    DirectionPause,
    EventFilter,
    ImportHistory,
    IssueStore,
    OperatorStore,
    TokenStore,
)

log = logging.getLogger(__name__)

DIRECTIONS = (CRM_TO_AMEISE.value, AMEISE_TO_CRM.value)
PROVIDERS = ("zoho", "ameise")
# The connections each direction reads from or writes to.
NEEDS = {CRM_TO_AMEISE.value: ("zoho", "ameise"), AMEISE_TO_CRM.value: ("zoho",)}
MAX_REASON = 500


@dataclass(frozen=True)
class Blocker:
    """Why a direction does not run: ``code`` (paused, reconnect_needed, not_connected) and the system it concerns."""

    code: str
    system: str = ""
    detail: str = ""


@dataclass(frozen=True)
class DirectionState:
    direction: str
    blockers: tuple[Blocker, ...] = ()
    pause: DirectionPause | None = None

    @property
    def active(self) -> bool:
        return not self.blockers


@dataclass(frozen=True)
class ConnectionState:
    provider: str
    status: str                         # active, reconnect_needed, not_connected
    detail: str
    token_stored: bool
    expires_at: datetime | None


@dataclass(frozen=True)
class QueueAge:
    """When a worker last took a message from a work queue, and what that says of the oldest one waiting."""

    last_taken: datetime | None         # None: no message taken yet (as far as the activity log goes back)
    oldest_at_most: timedelta | None    # None: nothing waits, or no bound is known


@dataclass(frozen=True)
class Overview:
    directions: tuple[DirectionState, ...]
    connections: tuple[ConnectionState, ...]
    queues: dict[str, int | None]       # work queue -> messages waiting (None: unknown)
    dead_letters: int | None            # None: no dead-letter archive in this setup
    last_import: DailyUpImport | None
    at: datetime
    queue_ages: dict[str, QueueAge] = field(default_factory=dict)   # work queue -> its age (no entry: unknown)
    open_issues: int | None = None      # causes of dead letters no operator has acknowledged; None: unknown
    acknowledged_issues: int | None = None
    credits: CreditSummary | None = None    # the Zoho API credits of the last 24 h; None: not counted here or unknown


@dataclass
class OverviewSources:
    """Where the Overview reads from; ``syncbridge.bootstrap`` builds it."""

    tokens: TokenStore
    operators: OperatorStore
    dead_letters: DeadLetterStore | None = None
    imports: ImportHistory | None = None
    queue_depths: Callable[[], dict[str, int | None]] | None = None
    activity: ActivityLog | None = None     # the newest attempt per direction: when its queue was last taken from
    issues: IssueStore | None = None
    # Ameise connects only through its OAuth consent; Zoho from a configured refresh token on first use.
    consent_needed: tuple[str, ...] = ("ameise",)
    credits: CreditLedger | None = None     # the Zoho API credits spent
    credit_budget: int = 50_000             # the org's credits per rolling 24 h (SYNCBRIDGE_ZOHO_DAILY_CREDITS)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def overview(sources: OverviewSources) -> Overview:
    """Gather the Overview from every source."""
    connections = tuple(_connection(sources.tokens, provider) for provider in PROVIDERS)
    by_provider = {c.provider: c for c in connections}
    pauses = sources.operators.paused_directions()
    directions = []
    for direction in DIRECTIONS:
        blockers: list[Blocker] = []
        pause = pauses.get(direction)
        if pause is not None:
            blockers.append(Blocker("paused", detail=pause.reason))
        for provider in NEEDS[direction]:
            state = by_provider[provider]
            if state.status == "reconnect_needed":
                blockers.append(Blocker("reconnect_needed", provider, state.detail))
            elif state.status == "not_connected" and provider in sources.consent_needed:
                blockers.append(Blocker("not_connected", provider))
        directions.append(DirectionState(direction, tuple(blockers), pause))
    now = sources.now()
    queues = _queues(sources)
    open_issues, acknowledged = _issue_counts(sources.issues)
    return Overview(
        directions=tuple(directions),
        connections=connections,
        queues=queues,
        dead_letters=None if sources.dead_letters is None else sources.dead_letters.count(DeadLetterFilter(state=DEAD)),
        last_import=_last_import(sources.imports),
        at=now,
        queue_ages=_queue_ages(sources.activity, queues, now),
        open_issues=open_issues,
        acknowledged_issues=acknowledged,
        credits=_credits(sources, now),
    )


def queue_of(direction: str) -> str:
    """The short name of a direction's work queue (``crm_to_ameise`` -> ``crm-to-ameise``)."""
    return direction.replace("_", "-")


def pause_direction(operators: OperatorStore, direction: str, *, by: str, reason: str,
                    now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> DirectionPause:
    """Set a direction's pause flag, with who and why, and write it to the audit log."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; known: {', '.join(DIRECTIONS)}")
    pause = DirectionPause(direction, by, reason.strip()[:MAX_REASON], now())
    operators.pause_direction(pause)
    operators.audit(AuditEntry(actor=by, action="direction.paused", target=direction,
                               details={"reason": pause.reason}, at=pause.at))
    return pause


def resume_direction(operators: OperatorStore, direction: str, *, by: str,
                     now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> bool:
    """Clear a direction's pause flag and write it to the audit log; whether it was paused."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; known: {', '.join(DIRECTIONS)}")
    was_paused = operators.resume_direction(direction)
    if was_paused:
        operators.audit(AuditEntry(actor=by, action="direction.resumed", target=direction, at=now()))
    return was_paused


def _connection(tokens: TokenStore, provider: str) -> ConnectionState:
    status, detail = tokens.status(provider)
    token = tokens.load(provider)
    expires = None if token is None or not token.expires_at else datetime.fromtimestamp(token.expires_at, UTC)
    return ConnectionState(provider, status, detail, token is not None, expires)


def _queues(sources: OverviewSources) -> dict[str, int | None]:
    if sources.queue_depths is None:
        return {}
    try:
        return sources.queue_depths()
    except Unavailable as exc:
        log.warning("queue depths unknown: %s", exc.message)
        return {}


def _queue_ages(activity: ActivityLog | None, queues: dict[str, int | None], now: datetime) -> dict[str, QueueAge]:
    if activity is None:
        return {}
    ages = {}
    for direction in DIRECTIONS:
        name = queue_of(direction)
        newest = activity.events(EventFilter(direction=direction), limit=1)
        last = newest[0] if newest else None
        waiting = queues.get(name)
        bound = None
        if last is not None and waiting:
            bound = max(now - (last.received_at or last.at or now), timedelta(0))
        ages[name] = QueueAge(last.at if last is not None else None, bound)
    return ages


def _issue_counts(issues: IssueStore | None) -> tuple[int | None, int | None]:
    if issues is None:
        return None, None
    states = [issue_state(issue) for issue in issues.issues(limit=10_000)]
    return states.count(OPEN), states.count(ACKNOWLEDGED)


def _last_import(imports: ImportHistory | None) -> DailyUpImport | None:
    if imports is None:
        return None
    newest = imports.imports(limit=1)
    return newest[0] if newest else None


def _credits(sources: OverviewSources, now: datetime) -> CreditSummary | None:
    if sources.credits is None:
        return None
    try:
        return credit_summary(sources.credits, sources.credit_budget, now)
    except Exception:  # noqa: BLE001 - a ledger that cannot be read leaves the card unknown, not the page broken
        log.warning("Zoho API credits unknown", exc_info=True)
        return None
