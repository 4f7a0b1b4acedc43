"""What the Statistics page shows: per entity and day, what was created, changed, deleted or failed, both ways.

Read from the activity log (:class:`~syncbridge.ports.ActivityStatistics` counts
per UTC day, :class:`~syncbridge.ports.Store` for the latest entries); nothing is
written.  An action counts as:

* ``created`` — ``created``;
* ``changed`` — ``updated``;
* ``deleted`` — ``deleted`` and ``marked`` (a record Ameise no longer delivers, flagged in the CRM);
* ``failed`` — any entry whose result is ``error``.

Other actions (skipped, written back, duplicates, waiting) are no change of a record and are not counted.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from syncbridge.ports import AMEISE_TO_CRM, CRM_TO_AMEISE, ActivityEntry, ActivityStatistics, Store

KINDS = ("created", "changed", "deleted", "failed")
DIRECTIONS = (CRM_TO_AMEISE.value, AMEISE_TO_CRM.value)
ENTITIES = ("customer", "contract")
RANGES = (7, 14, 30, 90)            # days the page offers
DEFAULT_RANGE = 14
RECENT = 100                        # the latest synced records shown
MAX_SCAN = 20_000                   # newest log entries looked at for them at most
_KIND_OF_ACTION = {"created": "created", "updated": "changed", "deleted": "deleted", "marked": "deleted"}


def kind_of(action: str, result: str) -> str | None:
    """The kind of change an activity entry counts as, or None when it changed no record."""
    if result == "error":
        return "failed"
    return _KIND_OF_ACTION.get(action)


@dataclass(frozen=True)
class Series:
    """One entity in one direction: per day the counts of each kind."""

    entity: str
    direction: str
    days: tuple[tuple[date, dict[str, int]], ...]

    @property
    def totals(self) -> dict[str, int]:
        return {kind: sum(counts[kind] for _, counts in self.days) for kind in KINDS}

    @property
    def peak(self) -> int:
        """The largest day total (the chart's scale)."""
        return max((sum(counts.values()) for _, counts in self.days), default=0)


@dataclass(frozen=True)
class Statistics:
    first_day: date
    last_day: date
    series: tuple[Series, ...]
    recent: tuple[ActivityEntry, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return all(s.peak == 0 for s in self.series)


@dataclass
class StatisticsSources:
    """Where the Statistics page reads from; ``syncbridge.bootstrap`` builds it."""

    counts: ActivityStatistics
    log: Store
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def statistics(sources: StatisticsSources, *, days: int) -> Statistics:
    """The last ``days`` UTC days up to today: one series per entity and direction, and the latest synced records."""
    if days not in RANGES:
        raise ValueError(f"days must be one of {', '.join(map(str, RANGES))}")
    counts, log = sources.counts, sources.log
    today = sources.now().astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time.min, tzinfo=UTC)
    until = datetime.combine(today + timedelta(days=1), time.min, tzinfo=UTC)
    table: dict[tuple[str, str], dict[date, dict[str, int]]] = {}
    for count in counts.activity_counts(since=since, until=until):
        kind = kind_of(count.action, count.result)
        if kind is None or count.entity not in ENTITIES or count.direction not in DIRECTIONS:
            continue
        per_day = table.setdefault((count.entity, count.direction), {})
        per_day.setdefault(count.day, dict.fromkeys(KINDS, 0))[kind] += count.count
    every_day = [first + timedelta(days=n) for n in range(days)]
    series = tuple(
        Series(entity, direction,
               tuple((day, table.get((entity, direction), {}).get(day, dict.fromkeys(KINDS, 0))) for day in every_day))
        for entity in ENTITIES for direction in DIRECTIONS)
    return Statistics(first, today, series, recent_syncs(log))


def recent_syncs(log: Store, limit: int = RECENT) -> tuple[ActivityEntry, ...]:
    """The latest activity entries that created, changed, deleted or failed a record, newest first.

    The log also holds entries of no record change (token refreshes, skips): the newest
    entries are read in growing windows until ``limit`` are found, the log ends, or
    :data:`MAX_SCAN` entries were looked at.
    """
    size = limit * 2
    while True:
        page = log.activities(limit=size)
        # A delivery that succeeded is listed by the handler's steps, not again by its attempt entry.
        found = [entry for entry in page if entry.entity and kind_of(entry.action, entry.result)
                 and (entry.attempt is None or entry.result != "ok")]
        if len(found) >= limit or len(page) < size or size >= MAX_SCAN:
            return tuple(found[:limit])
        size = min(size * 4, MAX_SCAN)
