"""Call slots shared through PostgreSQL advisory locks: each object has a connection of its own, as a process has."""
from __future__ import annotations

import logging
import threading
import uuid

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from syncbridge.adapters.db.call_slots import CallSlots, CallSlotTimeout
from syncbridge.adapters.http import LimitedSession
from tests.support.waiting import wait_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(postgres_url):
    engine = create_engine(postgres_url, poolclass=NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def make_slots(engine):
    name = f"zoho-calls:{uuid.uuid4().hex[:8]}"
    made: list[CallSlots] = []

    def make(limit: int, **options) -> CallSlots:
        slots = CallSlots(engine.connect, limit, name=name, **options)
        made.append(slots)
        return slots

    yield make
    for slots in made:
        slots.close()


def locked_in_database(engine, slots: CallSlots) -> int:
    """The slots of ``slots``' limit that some connection holds, as PostgreSQL sees them."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                 "AND objsubid = 2 AND classid::bigint = :c"), {"c": slots.classid}).scalar_one()


def kill(engine, pid: int) -> None:
    """End the backend ``pid`` as a crash or a network cut would, and wait until PostgreSQL has let it go."""
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()

    wait_for(lambda: not backend_holds_locks(engine, pid), timeout=10, what=f"backend {pid} gone")


def backend_holds_locks(engine, pid: int) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text("SELECT count(*) FROM pg_locks WHERE pid = :p"), {"p": pid}).scalar_one())


def settle(*everyone: CallSlots, rounds: int = 3) -> None:
    for _ in range(rounds):
        for slots in everyone:
            slots.rebalance()


def test_two_processes_share_the_limit_half_and_half_and_never_hold_more(engine, make_slots):
    first, second = make_slots(10), make_slots(10)
    first.rebalance()
    assert (first.share, first.held) == (10, 10)   # alone: all of them
    second.rebalance()
    assert second.share == 5 and second.held == 0  # all taken: it waits for the first to give back
    seen = []
    for slots in (first, second, first, second):
        slots.rebalance()
        seen.append((first.held + second.held, locked_in_database(engine, first)))
    assert all(total <= 10 and locked <= 10 for total, locked in seen)
    assert (first.held, second.held, first.members, second.members) == (5, 5, 2, 2)
    assert locked_in_database(engine, first) == 10


def test_three_processes_get_four_three_and_three(engine, make_slots):
    everyone = [make_slots(10) for _ in range(3)]
    settle(*everyone)
    assert sorted((s.held for s in everyone), reverse=True) == [4, 3, 3]
    assert [s.held for s in everyone] == [s.share for s in everyone]
    assert locked_in_database(engine, everyone[0]) == 10


def test_when_one_closes_the_other_takes_all_after_a_rebalance(engine, make_slots):
    first, second = make_slots(10), make_slots(10)
    settle(first, second)
    pid = first._pid
    first.close()
    wait_for(lambda: not backend_holds_locks(engine, pid), timeout=10, what="the closed connection gone")
    assert second.held == 5
    second.rebalance()
    assert (second.members, second.share, second.held) == (1, 10, 10)


def test_a_killed_connection_frees_its_slots_and_comes_back_on_a_later_rebalance(engine, make_slots):
    first, second = make_slots(10), make_slots(10)
    settle(first, second)
    kill(engine, first._pid)
    second.rebalance()
    assert second.held == 10   # the dead connection's slots and membership went with it
    first.rebalance()          # finds its connection gone: holds nothing
    assert (first.held, first.share) == (0, 0)
    assert not first.acquire(timeout=0)
    settle(first, second)      # connects anew and gets its share back
    assert (first.held, second.held) == (5, 5)
    assert locked_in_database(engine, first) == 10


def test_calls_in_flight_when_the_connection_is_lost_count_until_they_end(engine, make_slots):
    slots = make_slots(2)
    slots.rebalance()
    assert slots.acquire(timeout=0) and slots.acquire(timeout=0)
    kill(engine, slots._pid)
    slots.rebalance()
    slots.rebalance()
    assert (slots.held, locked_in_database(engine, slots)) == (2, 2)   # connected anew, both slots again
    assert not slots.acquire(timeout=0)   # the two calls of before are still in flight
    slots.release()
    assert slots.acquire(timeout=0)
    slots.release()
    slots.release()
    assert slots.held == 2
    with pytest.raises(ValueError):
        slots.release()


def test_calls_use_the_held_slots_without_the_database(make_slots):
    slots = make_slots(3)
    slots.rebalance()
    slots._conn.invalidate()   # no database behind it any more: the calls do not notice
    for _ in range(3):
        assert slots.acquire(timeout=0)
    assert not slots.acquire(timeout=0)
    slots.release()
    assert slots.acquire(timeout=0)


def test_acquire_waits_for_a_slot_and_times_out_with_a_connection_error(make_slots):
    slots = make_slots(1, timeout=0.2)
    slots.rebalance()
    slots.acquire()
    got = threading.Event()

    def waiter() -> None:
        with slots:
            got.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert not got.wait(0.05)
    slots.release()
    thread.join(timeout=5)
    assert got.is_set()

    slots.acquire()
    with pytest.raises(CallSlotTimeout) as raised:
        slots.__enter__()
    # a requests.ConnectionError: the Zoho client takes it for Zoho being unavailable (retry, not dead-letter)
    assert isinstance(raised.value, requests.ConnectionError)
    session = LimitedSession(pool=2, slots=slots)
    with pytest.raises(requests.ConnectionError):
        session.get("http://127.0.0.1:9/never-called", timeout=1)
    slots.release()


def test_a_slot_in_use_above_the_share_goes_back_when_its_call_ends(engine, make_slots):
    first, second = make_slots(2), make_slots(2)
    first.rebalance()
    assert first.acquire(timeout=0) and first.acquire(timeout=0)
    second.rebalance()
    first.rebalance()              # its share is 1 now, but both slots are in use
    assert (first.share, first.held) == (1, 2)
    assert not first.acquire(timeout=0)
    first.release()                # the call ends: the slot above the share goes back at once
    assert first.held == 1 and locked_in_database(engine, first) == 1
    second.rebalance()
    assert second.held == 1
    first.release()
    assert first.held == 1         # within its share: kept for the next call


def test_more_processes_than_slots_leave_the_extra_ones_waiting_with_one_warning(make_slots, caplog):
    everyone = [make_slots(2) for _ in range(3)]
    with caplog.at_level(logging.WARNING, logger="syncbridge.adapters.db.call_slots"):
        settle(*everyone)
    assert sorted(s.held for s in everyone) == [0, 1, 1]
    warnings = [r for r in caplog.records if "gets no slot" in r.getMessage()]
    assert len(warnings) == 1


def test_a_background_rebalance_runs_when_due_on_the_clock(make_slots):
    now = [0.0]
    first = make_slots(4, clock=lambda: now[0], rebalance_every=5)
    second = make_slots(4, clock=lambda: now[0], rebalance_every=5)
    assert first.rebalance_if_due() and first.held == 4
    assert second.rebalance_if_due() and second.held == 0
    assert not first.rebalance_if_due()   # not due yet: nothing given back
    assert first.held == 4
    now[0] = 5.0
    assert first.rebalance_if_due() and first.held == 2
    assert second.rebalance_if_due() and second.held == 2


def test_slots_on_an_engine_keep_a_connection_of_their_own(engine):
    slots = CallSlots.for_engine(engine, 2, name=f"zoho-calls:{uuid.uuid4().hex[:8]}").start()
    try:
        assert slots.held == 2
        with slots:
            assert locked_in_database(engine, slots) == 2
    finally:
        slots.close()
    wait_for(lambda: locked_in_database(engine, slots) == 0, timeout=5, what="the slots given back")


@pytest.mark.parametrize("shared", [True, False])
def test_the_sync_workers_zoho_session_shares_the_limit_on_postgres(migrated_postgres_url, engine, shared):
    from simulators.fakes.ameise import InMemoryAmeise
    from syncbridge.adapters.db.call_slots import lock_class
    from syncbridge.adapters.db.sql import SqlStore
    from syncbridge.bootstrap import bootstrap
    from syncbridge.config import Settings

    namespace = f"slots{uuid.uuid4().hex[:8]}"
    settings = Settings.from_env({"SYNCBRIDGE_DATABASE_URL": migrated_postgres_url, "SYNCBRIDGE_NAMESPACE": namespace,
                                  "SYNCBRIDGE_ZOHO_SYNC_CONCURRENCY": "3"})
    store = SqlStore.from_url(migrated_postgres_url)
    classid = lock_class(f"zoho-calls:{namespace}")

    def locked() -> int:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                     "AND objsubid = 2 AND classid::bigint = :c"), {"c": classid}).scalar_one()

    services = bootstrap(settings, store=store, ameise=InMemoryAmeise(), publisher=object(), shared_zoho_limit=shared)
    try:
        session = services.crm._session
        if shared:
            assert isinstance(session._slots, CallSlots) and session._slots.limit == 3
            assert locked() == 3
        else:   # the other processes (receiver, dashboard, commands) keep a limit of their own
            assert isinstance(session._slots, threading.BoundedSemaphore) and locked() == 0
    finally:
        services.close()
        store.engine.dispose()
    wait_for(lambda: locked() == 0, timeout=10, what="the slots given back with the connection")


def test_on_sqlite_each_process_keeps_its_own_limit(database_url):
    from simulators.fakes.ameise import InMemoryAmeise
    from syncbridge.adapters.db.sql import SqlStore
    from syncbridge.bootstrap import bootstrap
    from syncbridge.config import Settings

    settings = Settings.from_env({"SYNCBRIDGE_DATABASE_URL": database_url, "SYNCBRIDGE_ZOHO_SYNC_CONCURRENCY": "3"})
    store = SqlStore.from_url(database_url)
    services = bootstrap(settings, store=store, ameise=InMemoryAmeise(), publisher=object(), shared_zoho_limit=True)
    try:
        assert isinstance(services.crm._session._slots, threading.BoundedSemaphore)
    finally:
        services.close()
        store.engine.dispose()


def test_a_busy_process_gets_the_slots_an_idle_one_does_not_use(engine, make_slots):
    worker, idle = make_slots(10), make_slots(10)
    settle(worker, idle)
    assert (worker.held, idle.held) == (5, 5)        # nobody busy: even shares
    assert worker.acquire(timeout=0)                  # a call in flight: busy
    settle(worker, idle)
    assert (worker.share, worker.held, idle.share, idle.held) == (9, 9, 1, 1)
    assert locked_in_database(engine, worker) == 10
    assert idle.acquire(timeout=0)                    # work for the idle one: its first call need not wait
    settle(idle, worker)
    assert (worker.share, worker.held, idle.share, idle.held) == (5, 5, 5, 5)
    assert locked_in_database(engine, worker) == 10
    worker.release()
    idle.release()
    settle(worker, idle)                              # no call since: both idle, even shares again
    assert (worker.held, idle.held) == (5, 5)


def test_a_process_that_joins_gets_its_share_before_the_next_rebalance_is_due(make_slots):
    now = [0.0]
    first = make_slots(4, clock=lambda: now[0], rebalance_every=5)
    second = make_slots(4, clock=lambda: now[0], rebalance_every=5)
    first.rebalance()
    second.rebalance()
    assert (first.held, second.share, second.held) == (4, 2, 0)
    assert not first.rebalance_if_due()
    assert first.rebalance_if_changed() and first.held == 2    # a process joined: its surplus goes back at once
    assert not first.rebalance_if_changed()                    # nothing changed since
    assert not second.rebalance_if_changed() and second.held == 0   # no call waits: it takes them when due
    got = threading.Event()

    def call() -> None:
        with second:
            got.set()

    thread = threading.Thread(target=call)
    thread.start()
    wait_for(lambda: second._waiting == 1, timeout=5, what="the call waiting for a slot")
    assert second.rebalance_if_changed() and second.held == 2  # a call waits for a slot its share allows
    thread.join(timeout=5)
    assert got.is_set()


def test_the_background_thread_hands_a_joining_process_its_slots_long_before_the_rebalance_is_due(make_slots):
    first = make_slots(4, rebalance_every=600).start()
    second = make_slots(4, rebalance_every=600).start()
    assert (first.held, second.held) == (4, 0)
    assert second.acquire(timeout=10)       # within seconds, not the 600 s between rebalances
    second.release()
    assert first.held + second.held <= 4
