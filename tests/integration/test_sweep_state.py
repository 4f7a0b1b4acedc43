"""The sweep's state behaves the same on memory, SQLite and PostgreSQL; its lease holds across processes."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from simulators.fakes.sweep import MemorySweepState
from syncbridge.adapters.db.sql import make_engine
from syncbridge.adapters.db.sweep import SqlSweepState
from syncbridge.ports import BackfillProgress, DeletedCrmRecord
from tests.support.clock import FakeClock
from tests.support.databases import emptied_engine

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
def state(request, clock) -> Iterator[MemorySweepState | SqlSweepState]:
    if request.param == "memory":
        yield MemorySweepState(now=clock)
        return
    engine = emptied_engine(request.getfixturevalue(f"migrated_{request.param}_url"))
    yield SqlSweepState(engine, now=clock)
    engine.dispose()


def test_a_lease_is_held_by_one_owner_until_given_back_or_run_out(state, clock):
    assert state.take_lease("sweep", "a", 60)
    assert not state.take_lease("sweep", "b", 60)
    assert state.take_lease("sweep", "a", 60)               # the holder extends it
    assert state.lease_holder("sweep") == ("a", clock() + timedelta(seconds=60))
    state.release_lease("sweep", "b")                       # not b's to give back
    assert not state.take_lease("sweep", "b", 60)
    state.release_lease("sweep", "a")
    assert state.lease_holder("sweep") is None
    assert state.take_lease("sweep", "b", 60)
    clock.advance(61)                                       # b died: its lease ran out
    assert state.lease_holder("sweep") is None
    assert state.take_lease("sweep", "c", 60)
    assert state.take_lease("backfill", "a", 60)            # another lease, another holder


def test_the_watermark_only_moves_forward(state, clock):
    assert state.watermark("Contacts") is None
    state.set_watermark("Contacts", clock())
    state.set_watermark("Contacts", clock() - timedelta(minutes=5))
    assert state.watermark("Contacts") == clock()
    state.set_watermark("Contacts", clock() + timedelta(minutes=5))
    assert state.watermark("Contacts") == clock() + timedelta(minutes=5)
    assert state.watermark("Deals") is None


def test_the_backfill_cursor_is_kept_and_cleared(state, clock):
    assert state.backfill("Contacts") is None
    state.save_backfill(BackfillProgress("Contacts", cursor="token:abc", queued=2_000, pages=10))
    state.set_watermark("Contacts", clock())                # the same row: neither overwrites the other
    clock.advance(5)
    saved = state.backfill("Contacts")
    assert (saved.cursor, saved.queued, saved.pages, saved.finished) == ("token:abc", 2_000, 10, False)
    assert saved.started_at == clock() - timedelta(seconds=5)
    assert state.watermark("Contacts") == clock() - timedelta(seconds=5)
    state.clear_backfill("Contacts")
    assert state.backfill("Contacts") is None
    assert state.watermark("Contacts") is not None


def test_deleted_records_are_kept_once_newest_first(state, clock):
    at = datetime(2025, 3, 1, 9, tzinfo=UTC)
    first = [DeletedCrmRecord("Contacts", "1", at, clock(), "Erika"),
             DeletedCrmRecord("Contacts", "2", at + timedelta(hours=1), clock(), "Max"),
             DeletedCrmRecord("Deals", "3", None, clock())]
    assert state.note_deleted(first) == 3
    assert state.note_deleted([first[0], DeletedCrmRecord("Contacts", "4", at, clock())]) == 1
    assert [(d.module, d.record_id) for d in state.deleted()] == [
        ("Contacts", "2"), ("Contacts", "1"), ("Contacts", "4"), ("Deals", "3")]
    assert [d.record_id for d in state.deleted(module="Contacts", limit=2)] == ["2", "1"]
    assert state.deleted()[0].name == "Max"


@pytest.mark.postgres
def test_two_processes_contending_for_the_lease_on_postgresql_one_wins(migrated_postgres_url):
    """Two engines (as two processes have), several threads each, race for fresh and for expired leases."""
    engines = [emptied_engine(migrated_postgres_url), make_engine(migrated_postgres_url)]
    try:
        for round_ in range(10):
            name = f"lease-{round_}"
            if round_ % 2:        # an expired lease of a dead process, taken over by the racers
                SqlSweepState(engines[0]).take_lease(name, "dead", -1)
            barrier = threading.Barrier(8)
            winners: list[str] = []

            def contend(owner: str, engine) -> None:
                sweep_state = SqlSweepState(engine)
                barrier.wait()
                if sweep_state.take_lease(name, owner, 60):
                    winners.append(owner)

            threads = [threading.Thread(target=contend, args=(f"p{i % 2}-t{i}", engines[i % 2])) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(20)
            assert len(winners) == 1, (name, winners)
            assert SqlSweepState(engines[1]).lease_holder(name)[0] == winners[0]
    finally:
        for engine in engines:
            engine.dispose()
