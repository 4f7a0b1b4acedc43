"""Counts of the activity log per UTC day, the same on every store: memory, SQLite and PostgreSQL."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from simulators.fakes.store import MemoryStore
from syncbridge.adapters.db.sql import SqlStore
from syncbridge.ports import AMEISE_TO_CRM, CRM_TO_AMEISE, ActivityCount, ActivityEntry
from tests.support.databases import emptied_engine

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
BERLIN = timezone(timedelta(hours=1))


@pytest.fixture(params=BACKENDS)
def store(request) -> Iterator[MemoryStore | SqlStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    engine = emptied_engine(request.getfixturevalue(f"migrated_{request.param}_url"))
    yield SqlStore(engine)
    engine.dispose()


def _log(store, at: datetime, direction: str, action: str, result: str = "ok", entity: str | None = "customer"):
    store.log(ActivityEntry(direction, action, result, entity=entity, at=at))


def test_entries_are_counted_per_utc_day_direction_entity_action_and_result(store):
    day1, day2 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC), datetime(2025, 3, 2, 23, 30, tzinfo=UTC)
    _log(store, day1, CRM_TO_AMEISE, "created")
    _log(store, day1 + timedelta(hours=1), CRM_TO_AMEISE, "created")
    _log(store, day1, CRM_TO_AMEISE, "failed", "error", entity="contract")
    _log(store, day1, AMEISE_TO_CRM, "updated")
    # 00:30 in Berlin on 3 March is still 2 March in UTC.
    _log(store, datetime(2025, 3, 3, 0, 30, tzinfo=BERLIN), AMEISE_TO_CRM, "deleted")
    _log(store, day2, AMEISE_TO_CRM, "deleted")
    _log(store, datetime(2025, 3, 4, 0, 0, tzinfo=UTC), AMEISE_TO_CRM, "deleted")      # at `until`: left out
    _log(store, datetime(2025, 2, 28, 23, 59, tzinfo=UTC), AMEISE_TO_CRM, "deleted")   # before `since`

    counts = store.activity_counts(since=datetime(2025, 3, 1, tzinfo=UTC), until=datetime(2025, 3, 4, tzinfo=UTC))

    assert sorted(counts, key=lambda c: (c.day, c.direction, c.action)) == [
        ActivityCount(date(2025, 3, 1), AMEISE_TO_CRM, "customer", "updated", "ok", 1),
        ActivityCount(date(2025, 3, 1), CRM_TO_AMEISE, "customer", "created", "ok", 2),
        ActivityCount(date(2025, 3, 1), CRM_TO_AMEISE, "contract", "failed", "error", 1),
        ActivityCount(date(2025, 3, 2), AMEISE_TO_CRM, "customer", "deleted", "ok", 2),
    ]
    assert [c.day for c in counts] == sorted(c.day for c in counts)     # oldest day first


def test_an_empty_range_counts_nothing(store):
    _log(store, datetime(2025, 3, 1, 8, 0, tzinfo=UTC), CRM_TO_AMEISE, "created")

    assert store.activity_counts(since=datetime(2025, 4, 1, tzinfo=UTC), until=datetime(2025, 4, 8, tzinfo=UTC)) == []


def test_a_delivery_that_succeeded_is_counted_once_by_its_handlers_steps_and_a_failed_one_by_its_attempt(store):
    at = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    # A delivery: the handler logs its step, the consumer logs the attempt with the same action.
    _log(store, at, AMEISE_TO_CRM, "updated")
    store.log(ActivityEntry(AMEISE_TO_CRM, "updated", "ok", entity="customer", at=at, attempt=1, duration_ms=12))
    # A failed delivery is only the consumer's attempt entry; its retry is a second attempt.
    store.log(ActivityEntry(CRM_TO_AMEISE, "retry", "error", entity="customer", at=at, attempt=1))
    store.log(ActivityEntry(CRM_TO_AMEISE, "dead_lettered", "error", entity="customer", at=at, attempt=2))

    counts = store.activity_counts(since=datetime(2025, 3, 1, tzinfo=UTC), until=datetime(2025, 3, 2, tzinfo=UTC))

    assert sorted(counts, key=lambda c: (c.direction, c.action)) == [
        ActivityCount(date(2025, 3, 1), AMEISE_TO_CRM, "customer", "updated", "ok", 1),
        ActivityCount(date(2025, 3, 1), CRM_TO_AMEISE, "customer", "dead_lettered", "error", 1),
        ActivityCount(date(2025, 3, 1), CRM_TO_AMEISE, "customer", "retry", "error", 1),
    ]
