"""What the dashboard's Overview shows, gathered from the ports: directions, connections, queues, backlog.

Each source is optional or may fail on its own (a broker that is down leaves the
queue depths unknown, not the page broken).  Pausing a direction is a flag in
the store, set and cleared here and written to the audit log.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from syncbridge.errors import Unavailable
from syncbridge.ports import (
    AMEISE_TO_CRM,
    CRM_TO_AMEISE,
    DEAD,
    AuditEntry,
    DailyUpImport,
    DeadLetterFilter,
    DeadLetterStore,
    DirectionPause,
    ImportHistory,
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
class Overview:
    directions: tuple[DirectionState, ...]
    connections: tuple[ConnectionState, ...]
    queues: dict[str, int | None]       # work queue -> messages waiting (None: unknown)
    dead_letters: int | None            # None: no dead-letter archive in this setup
    last_import: DailyUpImport | None
    at: datetime


@dataclass
class OverviewSources:
    """Where the Overview reads from; ``syncbridge.bootstrap`` builds it."""

    tokens: TokenStore
    operators: OperatorStore
    dead_letters: DeadLetterStore | None = None
    imports: ImportHistory | None = None
    queue_depths: Callable[[], dict[str, int | None]] | None = None
    # Ameise connects only through its OAuth consent; Zoho from a configured refresh token on first use.
    consent_needed: tuple[str, ...] = ("ameise",)
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
    return Overview(
        directions=tuple(directions),
        connections=connections,
        queues=_queues(sources),
        dead_letters=None if sources.dead_letters is None else sources.dead_letters.count(DeadLetterFilter(state=DEAD)),
        last_import=_last_import(sources.imports),
        at=sources.now(),
    )


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


def _last_import(imports: ImportHistory | None) -> DailyUpImport | None:
    if imports is None:
        return None
    newest = imports.imports(limit=1)
    return newest[0] if newest else None
