"""The Zoho client counts the API credits of every call the way Zoho charges them: checked against the simulator."""
from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from simulators.fakes.credits import MemoryCreditLedger
from simulators.server import ServerThread
from simulators.zoho import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN, ZohoState, create_zoho_app
from syncbridge.adapters.tokens import MemoryTokenStore
from syncbridge.adapters.zoho import CreditCounter, ZohoClient, ZohoRejected, ZohoUnavailable
from syncbridge.ports import CHECK_PURPOSE, SYNC_PURPOSE, CreditTotal, CreditUse
from tests.support.clock import FakeClock

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture
def state():
    state = ZohoState()
    with ServerThread(create_zoho_app(state)) as server:
        state.url = server.url
        yield state
    state.wait_idle(timeout=2)


def client_of(state: ZohoState, ledger, **options) -> ZohoClient:
    return ZohoClient(accounts_url=state.url, client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET,
                      refresh_token=DEFAULT_REFRESH_TOKEN, token_store=MemoryTokenStore(), timeout=5.0,
                      ledger=ledger, **options)


def contacts(count: int, start: int = 0) -> list[dict]:
    return [{"Last_Name": f"Muster{n}", "Email": f"kunde{n}@beispiel.de"} for n in range(start, start + count)]


def test_a_real_workload_costs_in_the_ledger_exactly_what_the_simulated_zoho_charged(state):
    ledger = MemoryCreditLedger()
    client = client_of(state, ledger)
    for n in range(150):
        state.seed("Contacts", {"Last_Name": f"Bestand{n}", "Email": f"bestand{n}@beispiel.de"})
    known = state.records("Contacts")[0]["id"]

    client.get_record("Contacts", known)
    client.get_record("Contacts", "5725767000099999999")                         # missing: still charged
    client.search_records("Contacts", "(Email:equals:bestand7@beispiel.de)")
    client.find_records_by_field("Contacts", "Email", "niemand@beispiel.de")      # 204: still charged
    for count, start in ((1, 0), (10, 1), (11, 11), (100, 22)):
        assert all(r.ok for r in client.upsert_records("Contacts", contacts(count, start), ["Email"]))
    listed = client.list_records("Contacts", ["Last_Name", "Email"])              # 272 records: two pages
    ids = [r.record_id for r in client.insert_records("Contacts", contacts(3, 500))]
    client.update_records("Contacts", [{"id": ids[0], "Last_Name": "Neu"}])
    client.delete_records("Contacts", ids)
    client.field_metadata("Contacts")
    refused = client.upsert_records("Contacts", [{"Email": "ohne-name@beispiel.de"}], ["Email"])  # per record
    assert not refused[0].ok
    with pytest.raises(ZohoRejected):
        client.upsert_records("Kunden", contacts(20, 600), ["Email"])               # unknown module: 1 credit
    state.expire_access_tokens()                                                  # 401, refresh, retried once
    client.get_record("Contacts", known)
    state.add_fault(500)
    with pytest.raises(ZohoUnavailable):
        client.get_record("Contacts", known)                                      # Zoho failed: not charged
    state.add_fault(429)
    with pytest.raises(ZohoUnavailable):
        client.search_records("Contacts", "(Email:equals:bestand7@beispiel.de)")  # refused: not charged

    assert len(listed) == 272
    assert ledger.used(LONG_AGO) == state.credits_used == 27
    assert sum(t.calls for t in ledger.totals(LONG_AGO)) == state.api_calls == 17
    assert ledger.totals(LONG_AGO) == [
        CreditTotal("upsert", SYNC_PURPOSE, 16, 6),        # 1 + 1 + 2 + 10, the refused record 1, the module 1
        CreditTotal("get_record", SYNC_PURPOSE, 3, 3),
        CreditTotal("list_records", SYNC_PURPOSE, 2, 2),
        CreditTotal("search", SYNC_PURPOSE, 2, 2),
        CreditTotal("delete", SYNC_PURPOSE, 1, 1),
        CreditTotal("field_metadata", SYNC_PURPOSE, 1, 1),
        CreditTotal("insert", SYNC_PURPOSE, 1, 1),
        CreditTotal("update", SYNC_PURPOSE, 1, 1),
    ]


def test_the_records_of_each_call_are_noted_with_its_credits(state):
    spent: list[CreditUse] = []

    class Recorder:
        def spend(self, use: CreditUse) -> None:
            spent.append(use)

    client = client_of(state, Recorder())
    client.upsert_records("Contacts", contacts(11), ["Email"])
    client.search_records("Contacts", "(Last_Name:starts_with:Muster)")

    assert spent == [CreditUse("upsert", 2, SYNC_PURPOSE, records=11), CreditUse("search", 1, SYNC_PURPOSE, records=11)]


def test_a_client_for_another_purpose_counts_its_calls_there(state):
    ledger = MemoryCreditLedger()
    client = client_of(state, ledger)
    check = client.with_purpose(CHECK_PURPOSE)

    check.field_metadata("Contacts")
    client.field_metadata("Contacts")

    assert ledger.totals(LONG_AGO) == [CreditTotal("field_metadata", CHECK_PURPOSE, 1, 1),
                                       CreditTotal("field_metadata", SYNC_PURPOSE, 1, 1)]
    assert client.purpose == SYNC_PURPOSE


def test_a_ledger_that_fails_neither_fails_nor_holds_up_the_call_and_catches_up_later(state, caplog):
    class Flaky(MemoryCreditLedger):
        broken = True
        attempts = 0

        def spend(self, use: CreditUse) -> None:
            self.attempts += 1
            if self.broken:
                raise OSError("database is locked")
            super().spend(use)

    ledger, clock = Flaky(), FakeClock()
    client = client_of(state, CreditCounter(ledger, pause=60, monotonic=clock.seconds))

    with caplog.at_level(logging.WARNING, logger="syncbridge.adapters.zoho"):
        started = time.perf_counter()
        assert client.upsert_records("Contacts", contacts(20), ["Email"])[0].ok
        client.search_records("Contacts", "(Email:equals:kunde1@beispiel.de)")   # within the pause: not tried
        elapsed = time.perf_counter() - started

    assert ledger.attempts == 1 and "could not count Zoho API credits" in caplog.text
    assert elapsed < 2.0
    ledger.broken = False
    clock.advance(61)
    client.get_record("Contacts", state.records("Contacts")[0]["id"])

    assert ledger.used(LONG_AGO) == state.credits_used == 4


def test_waiting_uses_are_bounded(state):
    class Broken:
        def spend(self, use: CreditUse) -> None:
            raise OSError("no database")

        def spend_many(self, uses) -> None:
            raise OSError("no database")

    counter = CreditCounter(Broken(), max_pending=2)
    for _ in range(5):
        counter.note(CreditUse("search", 1))

    assert counter.waiting() == 2


def test_without_a_ledger_nothing_is_counted_and_the_client_works(state):
    client = client_of(state, None)
    assert client.upsert_records("Contacts", contacts(1), ["Email"])[0].ok
    assert state.credits_used == 1


def test_a_late_use_keeps_the_minute_it_was_made_in(state):
    clock = FakeClock(datetime.now(UTC))
    ledger = MemoryCreditLedger(now=clock)

    class Once:
        failed = False

        def spend(self, use: CreditUse) -> None:
            if not self.failed:
                self.failed = True
                raise OSError("gone")
            ledger.spend(use)

        def spend_many(self, uses) -> None:
            for use in uses:
                self.spend(use)

    counter = CreditCounter(Once(), pause=0)
    counter.note(CreditUse("search", 1))
    clock.advance(3600)
    counter.note(CreditUse("search", 1))

    assert ledger.used(clock() - timedelta(minutes=30)) == 1
    assert ledger.used(clock() - timedelta(hours=2)) == 2


def test_held_credits_are_written_summed_once_the_interval_is_over_and_when_flushed(state):
    class Counting(MemoryCreditLedger):
        writes = 0

        def spend_many(self, uses) -> None:
            self.writes += 1
            for use in uses:
                self.spend(use)

    ledger, clock = Counting(), FakeClock()
    client = client_of(state, CreditCounter(ledger, flush_every=1.0, monotonic=clock.seconds))
    known = state.records("Contacts")[0]["id"] if state.records("Contacts") else \
        client.insert_records("Contacts", contacts(1))[0].record_id
    for _ in range(5):
        client.get_record("Contacts", known)
    assert ledger.writes == 0 and ledger.used(LONG_AGO) == 0        # held in memory, nothing written yet

    clock.advance(1.5)
    client.get_record("Contacts", known)                            # the interval is over: all at once
    assert ledger.writes == 1
    assert ledger.used(LONG_AGO) == state.credits_used
    assert {(t.call, t.calls) for t in ledger.totals(LONG_AGO)} >= {("get_record", 6)}

    client.get_record("Contacts", known)
    assert ledger.used(LONG_AGO) == state.credits_used - 1
    client._credits.flush()                                         # as the worker does when it stops
    assert ledger.used(LONG_AGO) == state.credits_used


def test_held_credits_wait_in_memory_while_the_ledger_fails():
    class Broken(MemoryCreditLedger):
        broken = True

        def spend_many(self, uses) -> None:
            if self.broken:
                raise OSError("database is locked")
            for use in uses:
                self.spend(use)

    ledger, clock = Broken(), FakeClock()
    counter = CreditCounter(ledger, flush_every=1.0, pause=60, monotonic=clock.seconds)
    counter.note(CreditUse("search", 1))
    counter.note(CreditUse("upsert", 2, records=11))
    counter.flush()
    assert counter.waiting() == 2 and ledger.used(LONG_AGO) == 0
    ledger.broken = False
    clock.advance(61)
    counter.flush()
    assert counter.waiting() == 0 and ledger.used(LONG_AGO) == 3


# ---------------------------------------------------------------------- wiring
@pytest.mark.parametrize("kind", ["sql", "memory"])
def test_the_service_counts_its_sync_and_its_check_in_the_ledger_of_its_store(state, kind, request):
    from simulators.fakes.ameise import InMemoryAmeise
    from simulators.fakes.store import MemoryStore
    from syncbridge.adapters.db.credits import SqlCreditLedger
    from syncbridge.bootstrap import bootstrap, preflight
    from syncbridge.config import Settings
    from syncbridge.ports import AMEISE_TO_CRM

    store = request.getfixturevalue("store") if kind == "sql" else MemoryStore()
    ledger = SqlCreditLedger(store.engine) if kind == "sql" else store.credits
    settings = Settings.from_env({"SYNCBRIDGE_ZOHO_ACCOUNTS_URL": state.url})
    services = bootstrap(settings, store=store, ameise=InMemoryAmeise(), publisher=object())

    services.crm.upsert_records("Contacts", contacts(25), ["Email"])
    preflight(services, (str(AMEISE_TO_CRM),))

    checked = sum(t.credits for t in ledger.totals(LONG_AGO) if t.purpose == CHECK_PURPOSE)
    assert CreditTotal("upsert", SYNC_PURPOSE, 3, 1) in ledger.totals(LONG_AGO)
    assert {t.purpose for t in ledger.totals(LONG_AGO)} == {SYNC_PURPOSE, CHECK_PURPOSE}
    assert checked >= 1 and ledger.used(LONG_AGO) == state.credits_used == 3 + checked
    assert services.crm.purpose == SYNC_PURPOSE
