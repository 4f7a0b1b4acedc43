"""The Zoho API credit ledger, the same on every store: memory, SQLite and PostgreSQL."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from simulators.fakes.credits import MemoryCreditLedger
from syncbridge.adapters.db.credits import SqlCreditLedger
from syncbridge.ports import BACKFILL_PURPOSE, CHECK_PURPOSE, SYNC_PURPOSE, CreditTotal, CreditUse
from tests.support.clock import FakeClock
from tests.support.databases import emptied_engine

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
START = datetime(2025, 3, 1, 8, 0, 30, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture(params=BACKENDS)
def ledger(request, clock) -> Iterator[MemoryCreditLedger | SqlCreditLedger]:
    if request.param == "memory":
        yield MemoryCreditLedger(now=clock)
        return
    engine = emptied_engine(request.getfixturevalue(f"migrated_{request.param}_url"))
    yield SqlCreditLedger(engine, now=clock)
    engine.dispose()


def test_credits_and_calls_add_up_per_call_type_and_purpose_most_credits_first(ledger, clock):
    ledger.spend(CreditUse("upsert", 10, records=100))
    ledger.spend(CreditUse("upsert", 2, records=11))
    clock.advance(120)                                  # another minute: another row, the same totals
    ledger.spend(CreditUse("upsert", 1, records=1))
    ledger.spend(CreditUse("get_record", 1, records=1))
    ledger.spend(CreditUse("search", 1, purpose=BACKFILL_PURPOSE))
    ledger.spend(CreditUse("field_metadata", 1, purpose=CHECK_PURPOSE))
    ledger.spend(CreditUse("search", 1, purpose=BACKFILL_PURPOSE))

    assert ledger.totals(START - timedelta(hours=24)) == [
        CreditTotal("upsert", SYNC_PURPOSE, 13, 3),
        CreditTotal("search", BACKFILL_PURPOSE, 2, 2),
        CreditTotal("field_metadata", CHECK_PURPOSE, 1, 1),
        CreditTotal("get_record", SYNC_PURPOSE, 1, 1),
    ]
    assert ledger.used(START - timedelta(hours=24)) == 17
    assert ledger.used(START - timedelta(hours=24), purposes=(BACKFILL_PURPOSE, CHECK_PURPOSE)) == 3
    assert ledger.used(START - timedelta(hours=24), purposes=()) == 0


def test_the_window_counts_whole_minutes_from_the_minute_of_since(ledger, clock):
    ledger.spend(CreditUse("search", 1))                               # 08:00:30
    ledger.spend(CreditUse("search", 2, at=START + timedelta(minutes=1, seconds=20)))   # 08:01:50
    ledger.spend(CreditUse("search", 4, at=datetime(2025, 3, 1, 9, 2, 59, tzinfo=timezone(timedelta(hours=1)))))

    assert ledger.used(datetime(2025, 3, 1, 8, 0, 59, tzinfo=UTC)) == 7     # 08:00 still counts
    assert ledger.used(datetime(2025, 3, 1, 8, 1, 0, tzinfo=UTC)) == 6
    assert ledger.used(datetime(2025, 3, 1, 8, 2, 0, tzinfo=UTC)) == 4      # 09:02:59+01:00 is 08:02 UTC
    assert ledger.used(datetime(2025, 3, 1, 8, 3, 0, tzinfo=UTC)) == 0
    assert ledger.totals(datetime(2025, 3, 1, 8, 3, 0, tzinfo=UTC)) == []


def test_a_rolling_24_hours_leaves_older_minutes_out(ledger, clock):
    ledger.spend(CreditUse("upsert", 5, records=50))
    clock.advance(24 * 3600 + 60)
    ledger.spend(CreditUse("upsert", 1, records=3))

    assert ledger.used(clock() - timedelta(hours=24)) == 1
    assert ledger.totals(clock() - timedelta(hours=24)) == [CreditTotal("upsert", SYNC_PURPOSE, 1, 1)]


def test_minutes_older_than_8_days_are_pruned_now_and_then_not_on_every_call(ledger, clock):
    ledger.spend(CreditUse("search", 1))                   # the first call of a ledger prunes
    clock.advance(30 * 60)
    ledger.spend(CreditUse("search", 1, at=START - timedelta(days=9)))    # a minute 9 days old
    assert ledger.minutes_kept() == 2                      # not pruned: the last pruning is half an hour ago
    assert ledger.used(START - timedelta(days=10)) == 2

    clock.advance(31 * 60)
    ledger.spend(CreditUse("search", 1))                   # an hour after the last pruning: pruned

    assert ledger.used(START - timedelta(days=10)) == 2
    assert ledger.minutes_kept() == 2


def test_concurrent_spending_loses_no_credit(ledger):
    def spend() -> None:
        for _ in range(25):
            ledger.spend(CreditUse("upsert", 3, records=30))

    threads = [threading.Thread(target=spend) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert ledger.totals(START - timedelta(hours=1)) == [CreditTotal("upsert", SYNC_PURPOSE, 300, 100)]


def test_a_naive_time_is_refused(ledger):
    with pytest.raises(ValueError, match="naive"):
        ledger.used(datetime(2025, 3, 1, 8, 0))
