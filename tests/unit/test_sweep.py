"""The catch-up sweep and the backfill decide with fakes: what is queued, the watermark, the lease, the throttle."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from producers.topology import build_topology
from simulators.fakes.store import MemoryStore
from simulators.fakes.sweep import MemorySweepState
from simulators.fakes.zoho import InMemoryZoho
from simulators.zoho import ZohoState
from syncbridge.errors import Unavailable
from syncbridge.handlers.sweep import (
    SWEEP_LEASE,
    BulkStopped,
    BulkThrottle,
    SweepDependencies,
    estimate_credits,
    run_backfill,
    run_sweep,
)
from syncbridge.ports import BACKFILL_PURPOSE, SWEEP_PURPOSE, SYNC_PURPOSE, CreditUse
from tests.support.clock import FakeClock
from tests.support.credits import ListLedger


class RecordingPublisher:
    """Keeps what is published; ``fail`` makes the next publish_many raise."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict, str]] = []
        self.exchanges: list[str] = []
        self.fail = False

    def publish(self, *args, **kwargs) -> None:
        raise AssertionError("the sweep publishes in batches")

    def publish_many(self, exchange, messages) -> int:
        if self.fail:
            raise Unavailable("broker away")
        messages = list(messages)
        self.messages.extend(messages)
        self.exchanges.append(exchange.name)
        return len(messages)

    def ids(self, source: str | None = None) -> list[str]:
        return [body["record_id"] for _, body, _ in self.messages if source is None or body["source"] == source]


class World:
    def __init__(self, *, modules=("Contacts",), share=0.5, daily=50_000, concurrency=5) -> None:
        self.clock = FakeClock()
        self.zoho = InMemoryZoho(ZohoState(wall_clock=self.clock.seconds))
        self.store = MemoryStore(now=self.clock)
        self.state = MemorySweepState(now=self.clock)
        self.publisher = RecordingPublisher()
        self.ledger = ListLedger(self.clock)
        self.sleeps: list[float] = []
        self.throttle = BulkThrottle(self.ledger, daily_credits=daily, share=share, concurrency=concurrency,
                                     now=self.clock, sleep=self._sleep)
        self.stop = False
        self.deps = SweepDependencies(
            crm=self.zoho, state=self.state, store=self.store, publisher=self.publisher,
            topology=build_topology("sweep-test", crm_modules=("Contacts", "Accounts")), modules=list(modules),
            throttle=self.throttle, overlap=60, now=self.clock, should_stop=lambda: self.stop)

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)

    def create(self, n: int, module: str = "Contacts") -> list[str]:
        return [self.zoho.state.user_create(module, {"Last_Name": f"Kunde {i}"}) for i in range(n)]

    def synced(self, module: str, record_id: str, at) -> None:
        """A finished sync of the record that began at ``at``."""
        key = f"{module}/{record_id}"
        assert self.store.lock_record(key, "worker", 60)
        self.store.unlock_record(key, "worker", synced_from=at)


@pytest.fixture
def world() -> World:
    return World()


# ---------------------------------------------------------------- the sweep
def test_a_sweep_queues_what_changed_since_the_watermark_minus_the_overlap(world):
    old = world.create(3)
    world.clock.advance(600)                  # well before the watermark
    world.state.set_watermark("Contacts", world.clock())
    world.clock.advance(3600)
    world.zoho.state.user_update("Contacts", old[0], {"Phone": "+49 30 1"})
    new = world.create(2)

    result = run_sweep(world.deps)

    assert result.state == "done"
    assert sorted(world.publisher.ids("sweep")) == sorted([old[0], *new])
    assert [m.listed for m in result.modules] == [3]
    # the routing key and body are the receiver's: the CRM -> Ameise worker takes them as they are
    key, body, message_id = world.publisher.messages[0]
    assert key == "crm.contacts.changed" and body["module"] == "Contacts" and body["event_id"] == message_id
    # a synced module's events go where the receiver sends them: the direct exchange bound for its key
    assert set(world.publisher.exchanges) == {"sweep-test.crm-changes"}
    assert world.state.watermark("Contacts") == result.started
    # the next sweep lists again what changed within the overlap, but the worker has synced it since
    for record_id in [old[0], *new]:
        world.synced("Contacts", record_id, world.clock() + timedelta(seconds=5))
    world.clock.advance(30)
    world.publisher.messages.clear()
    again = run_sweep(world.deps)
    assert (again.modules[0].listed, again.queued, again.modules[0].up_to_date) == (3, 0, 3)


def test_a_record_synced_after_its_change_is_not_queued_again(world):
    world.state.set_watermark("Contacts", world.clock())
    world.clock.advance(60)
    covered, stale = world.create(2)
    world.synced("Contacts", covered, world.clock() + timedelta(seconds=5))   # began after the change
    world.synced("Contacts", stale, world.clock() - timedelta(seconds=5))     # began before it
    world.clock.advance(60)

    result = run_sweep(world.deps)

    assert world.publisher.ids() == [stale]
    assert result.modules[0].up_to_date == 1


def test_the_watermark_stays_while_the_changes_are_not_queued(world):
    start = world.clock()
    world.state.set_watermark("Contacts", start)
    world.clock.advance(60)
    ids = world.create(2)
    world.publisher.fail = True

    with pytest.raises(Unavailable):
        run_sweep(world.deps)

    assert world.state.watermark("Contacts") == start
    assert world.state.lease_holder(SWEEP_LEASE) is None      # given back for the next try
    world.publisher.fail = False
    run_sweep(world.deps)
    assert sorted(world.publisher.ids()) == sorted(ids)


def test_one_sweep_at_a_time(world):
    world.create(1)
    assert world.state.take_lease(SWEEP_LEASE, "other-process", 300)

    result = run_sweep(world.deps)

    assert (result.state, result.holder, world.publisher.messages) == ("busy", "other-process", [])
    world.clock.advance(301)                  # the other process died: its lease runs out
    assert run_sweep(world.deps).state == "done"


def test_failed_webhooks_are_a_second_source(world, monkeypatch):
    world.state.set_watermark("Contacts", world.clock())
    world.clock.advance(60)
    listed = world.create(1)[0]
    failed_time = world.clock().isoformat(timespec="seconds")
    failures = [{"entity_details": {"module": "Contacts", "id": listed, "name": "x"}, "failure_time": failed_time},
                {"entity_details": {"module": "Contacts", "id": "5725767000000999001", "name": "y"},
                 "failure_time": failed_time},
                {"entity_details": {"module": "Leads", "id": "5725767000000999002", "name": "z"},
                 "failure_time": failed_time}]
    monkeypatch.setattr(world.zoho, "webhook_failures", lambda since=None: failures)

    result = run_sweep(world.deps)

    # the listed record once; the failure of a record the list did not show queued too; Leads is not synced
    assert sorted(world.publisher.ids()) == sorted([listed, "5725767000000999001"])
    assert world.publisher.ids("sweep:webhook-failure") == ["5725767000000999001"]
    assert result.modules[0].from_failures == 1


@pytest.mark.parametrize("policy, reported", [("ignore", False), ("report", True)])
def test_records_deleted_in_the_crm_are_recorded_and_reported_by_policy(world, policy, reported):
    world.deps.deleted_policy = policy
    world.state.set_watermark("Contacts", world.clock())
    world.clock.advance(60)
    gone = world.create(2)
    world.zoho.state.user_delete("Contacts", gone[0])

    run_sweep(world.deps)
    run_sweep(world.deps)                     # seen again: not new, not reported twice

    assert [(d.module, d.record_id) for d in world.state.deleted()] == [("Contacts", gone[0])]
    entries = [e for e in world.store.activities(limit=50) if e.action == "deleted_in_crm"]
    assert len(entries) == (1 if reported else 0)


# ---------------------------------------------------------------- the backfill
def test_the_backfill_queues_every_record_and_resumes_after_a_stop(world):
    ids = world.create(2_100)                 # beyond 2,000: the page token takes over
    world.synced("Contacts", ids[5], world.clock() + timedelta(seconds=30))
    pages = []
    world.deps.progress = lambda stage, module, done, total: (pages.append(done), setattr(world, "stop", len(pages) == 3))

    first = run_backfill(world.deps)

    assert first.state == "stopped"
    assert world.state.backfill("Contacts").cursor == "page:4"
    world.stop = False
    second = run_backfill(world.deps)

    assert second.state == "done" and second.modules[0].finished
    queued = world.publisher.ids("backfill")
    assert len(queued) == len(set(queued)) == 2_099       # every record once; the one synced since is up to date
    assert set(queued) == set(ids) - {ids[5]}
    assert second.modules[0].pages == 11
    # a finished backfill is not repeated; --restart reads again
    assert run_backfill(world.deps).queued == 2_099 and len(world.publisher.messages) == 2_099
    assert run_backfill(world.deps, restart=True, force=True).modules[0].queued == 2_100


def test_the_credit_estimate_of_a_backfill():
    assert estimate_credits(2_100) == {"listing": 11, "syncs": 2_100, "total": 2_111}


# ---------------------------------------------------------------- the throttle
def test_bulk_work_slows_down_then_pauses_at_its_share_and_syncs_do_not_count():
    world = World(share=0.5, daily=1_000)      # bulk may spend 500 credits a day
    ledger, throttle = world.ledger, world.throttle
    ledger.spend(CreditUse("get_record", 10_000, SYNC_PURPOSE))       # event-driven syncs: not bulk
    throttle.wait_turn()
    assert world.sleeps == []
    ledger.spend(CreditUse("list_records", 450, SWEEP_PURPOSE))       # 90 % of the share: spaced out
    throttle.wait_turn()
    assert world.sleeps == [pytest.approx(2.5)]
    ledger.spend(CreditUse("list_records", 40, BACKFILL_PURPOSE))     # 98 %: longer
    throttle.wait_turn()
    assert world.sleeps[-1] == pytest.approx(4.5)
    ledger.spend(CreditUse("list_records", 10, BACKFILL_PURPOSE))     # the share is spent: paused
    world.sleeps.clear()
    throttle.wait_turn()                       # returns once the spending has left the 24 h window
    assert throttle.pauses == 1
    assert sum(world.sleeps) >= 24 * 3600 - 600


def test_queued_records_count_for_the_syncs_they_will_cost():
    world = World(share=0.1, daily=1_000)      # 100 credits
    world.throttle.note_queued(100)
    assert world.throttle.delay(world.throttle.spent()) is None


def test_a_paused_throttle_stops_when_asked():
    world = World(share=0.1, daily=100)
    world.ledger.spend(CreditUse("list_records", 10, SWEEP_PURPOSE))
    world.throttle.should_stop = lambda: len(world.sleeps) >= 2
    with pytest.raises(BulkStopped):
        world.throttle.wait_turn()


def test_at_most_the_configured_calls_are_in_flight():
    throttle = BulkThrottle(None, daily_credits=50_000, share=0.5, concurrency=2)
    inside, most, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def call() -> None:
        with throttle.call():
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            release.wait(5)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    from tests.support.waiting import wait_for
    wait_for(lambda: inside[0] == 2, timeout=5)
    release.set()
    for t in threads:
        t.join(5)
    assert most[0] == 2
