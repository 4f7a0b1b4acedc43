"""The store against all its backends: memory, SQLite file and PostgreSQL, plus the migrations.

One suite runs on every backend so that the in-memory store cannot drift from
the real one. PostgreSQL tests work in schemas of their own (via search_path),
because the test database is shared by the whole session.
"""
from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet
from sqlalchemy import Text, cast, func, inspect, select
from sqlalchemy.exc import OperationalError

from simulators.fakes.store import MemoryStore
from syncbridge.adapters.db.migrate import MIGRATIONS_DIR, alembic_config, current, is_up_to_date, upgrade
from syncbridge.adapters.db.sql import ACTIVITY, LINKS, TOKENS, SqlStore, SqlTokenStore, make_engine
from syncbridge.adapters.tokens import UNREADABLE_TOKEN, TokenCipher
from syncbridge.ports import (
    AMEISE_TO_CRM,
    CRM_TO_AMEISE,
    SYSTEM,
    ActivityEntry,
    Link,
    LinkConflict,
    OAuthToken,
    RecordLease,
    Store,
)
from tests.support.clock import FakeClock
from tests.support.databases import emptied_engine, pg_schema, schema_differences

ZOHO_ID = "3652397000000649013"      # 19 digits: must never pass through an int or float
ZOHO_ID_2 = "365239700000064902"     # 18 digits
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


# ---------------------------------------------------------------- databases








@pytest.fixture(params=BACKENDS)
def store(request) -> Iterator[Store]:
    """A store with no data on each backend."""
    if request.param == "memory":
        yield MemoryStore()
        return
    engine = emptied_engine(request.getfixturevalue(f"migrated_{request.param}_url"))
    yield SqlStore(engine)
    engine.dispose()


@pytest.fixture(params=SQL_BACKENDS)
def sql_store(request) -> Iterator[SqlStore]:
    """A SqlStore with no data on each real database."""
    engine = emptied_engine(request.getfixturevalue(f"migrated_{request.param}_url"))
    yield SqlStore(engine)
    engine.dispose()


def _link_rows(store: Store) -> int | None:
    if isinstance(store, SqlStore):
        with store.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(LINKS)).scalar_one()
    return None


def _aware_utc(value: datetime | None) -> bool:
    return value is not None and value.utcoffset() == timedelta(0)


# ---------------------------------------------------------------- links
def test_find_link_by_either_id(store):
    saved = store.save_link("customer", "Contacts", ZOHO_ID, "5001234567")

    by_zoho = store.find_link("customer", zoho_id=ZOHO_ID)
    by_ameise = store.find_link("customer", ameise_id="5001234567")
    by_both = store.find_link("customer", zoho_id=ZOHO_ID, ameise_id="5001234567")

    assert by_zoho == by_ameise == by_both == saved
    assert (saved.entity, saved.zoho_module, saved.zoho_id, saved.ameise_id) == (
        "customer", "Contacts", ZOHO_ID, "5001234567")
    assert isinstance(saved.zoho_id, str)
    assert _aware_utc(saved.created_at) and _aware_utc(saved.updated_at)
    assert store.find_link("contract", zoho_id=ZOHO_ID) is None
    assert store.find_link("customer", zoho_id=ZOHO_ID_2) is None
    assert store.find_link("customer", zoho_id=ZOHO_ID, ameise_id="other") is None


def test_find_link_needs_an_id(store):
    with pytest.raises(ValueError):
        store.find_link("customer")


def test_save_link_updates_the_existing_link(store):
    first = store.save_link("contract", "Deals", ZOHO_ID, "V-1")
    second = store.save_link("contract", "Vertraege", ZOHO_ID, "V-2")

    assert store.find_link("contract", zoho_id=ZOHO_ID) == second
    assert (second.zoho_module, second.ameise_id) == ("Vertraege", "V-2")
    assert second.created_at == first.created_at
    assert second.updated_at >= first.updated_at
    assert store.find_link("contract", ameise_id="V-1") is None
    assert _link_rows(store) in (1, None)


def test_links_are_unique_per_entity(store):
    store.save_link("customer", "Contacts", ZOHO_ID, "100")
    # The same ids may appear for another entity.
    store.save_link("contract", "Deals", ZOHO_ID, "100")
    store.save_link("customer", "Contacts", ZOHO_ID_2, "200")

    with pytest.raises(LinkConflict, match="already linked"):
        store.save_link("customer", "Contacts", ZOHO_ID_2, "100")

    assert store.find_link("customer", ameise_id="100").zoho_id == ZOHO_ID
    assert store.find_link("customer", zoho_id=ZOHO_ID_2).ameise_id == "200"
    assert store.find_link("contract", ameise_id="100").zoho_id == ZOHO_ID
    assert _link_rows(store) in (3, None)


def test_delete_link_frees_the_number_for_another_record(store):
    store.save_link("customer", "Contacts", ZOHO_ID, "100")

    store.delete_link("customer", ZOHO_ID)
    store.delete_link("customer", ZOHO_ID)        # idempotent

    assert store.find_link("customer", zoho_id=ZOHO_ID) is None
    assert store.save_link("customer", "Contacts", ZOHO_ID_2, "100").zoho_id == ZOHO_ID_2


# ---------------------------------------------------------------- record leases
KEY = "Contacts/4150868000000376008"


def test_a_record_lease_is_held_by_one_owner_until_given_back(store):
    started = datetime.now(UTC)

    assert store.lock_record(KEY, "a", ttl=30)
    assert store.lock_record(KEY, "a", ttl=30)                 # its owner may take it again
    assert not store.lock_record(KEY, "b", ttl=30)
    store.unlock_record(KEY, "b", synced_from=started)         # not b's to give back
    assert not store.lock_record(KEY, "b", ttl=30) and store.last_synced_from(KEY) is None

    store.unlock_record(KEY, "a", synced_from=started)

    assert store.last_synced_from(KEY) == started
    assert store.lock_record(KEY, "b", ttl=30)
    store.unlock_record(KEY, "b")                              # a failed sync notes nothing
    assert store.last_synced_from(KEY) == started
    assert store.last_synced_from("Contacts/1") is None


def test_the_lease_of_a_worker_that_died_runs_out(store):
    clock = FakeClock()
    store = MemoryStore(now=clock) if isinstance(store, MemoryStore) else SqlStore(store.engine, now=clock)

    assert store.lock_record(KEY, "dead", ttl=20)
    clock.advance(19.9)
    assert not store.lock_record(KEY, "b", ttl=30)
    clock.advance(0.2)

    assert store.lock_record(KEY, "b", ttl=30)
    clock.advance(29)
    assert not store.lock_record(KEY, "dead", ttl=30)


def test_of_many_workers_asking_at_once_exactly_one_gets_the_lease(store):
    taken = _together(6, lambda i: store.lock_record(KEY, f"worker-{i}", ttl=30))

    assert sorted(taken) == [False] * 5 + [True]


def test_take_record_takes_the_lease_and_reads_the_records_state_with_it(store):
    started = datetime.now(UTC)

    assert store.take_record(KEY, "a", ttl=30) == RecordLease(synced_from=None, creating=False)
    assert store.take_record(KEY, "b", ttl=30) is None           # a holds it
    assert store.take_record(KEY, "a", ttl=30) is not None        # its owner may take it again
    store.note_create(KEY, True)
    store.unlock_record(KEY, "a", synced_from=started)

    assert store.take_record(KEY, "b", ttl=30) == RecordLease(synced_from=started, creating=True)
    assert not store.lock_record(KEY, "c", ttl=30)               # one lease, whichever method took it
    assert sorted(_together(6, lambda i: store.take_record(f"Contacts/{i % 2}", f"w-{i}", 30) is not None)) \
        == [False] * 4 + [True] * 2


def test_finish_record_writes_a_syncs_outcome_and_gives_the_lease_back(store):
    started = datetime.now(UTC)
    assert store.lock_record(KEY, "a", ttl=30)
    store.note_create(KEY, True)
    entries = [ActivityEntry(CRM_TO_AMEISE, "created", "ok", "customer", "Contacts", ZOHO_ID, "A1", "ev1",
                             details={"calls": ["POST kunden"]}, at=T0),
               ActivityEntry(CRM_TO_AMEISE, "written_back", "ok", "customer", "Contacts", ZOHO_ID, "A1", "ev1",
                             at=T0 + timedelta(seconds=1))]

    store.finish_record(KEY, "a", synced_from=started, entries=entries, processed=("ev1", "created"), created=True)

    assert store.was_processed("ev1") and store.last_synced_from(KEY) == started
    assert not store.create_under_way(KEY)
    assert [(e.action, e.at, e.details) for e in store.activities()] == [
        ("written_back", T0 + timedelta(seconds=1), {}), ("created", T0, {"calls": ["POST kunden"]})]
    assert store.lock_record(KEY, "b", ttl=30)                 # given back
    store.finish_record(KEY, "b", processed=("ev1", "skipped"))  # the first outcome stays; nothing else noted
    assert store.last_synced_from(KEY) == started and len(store.activities()) == 2


def test_take_record_tells_a_processed_event_without_taking_the_lease_and_reads_the_link(store):
    store.mark_processed("ev-seen", "created")
    linked = store.save_link("customer", "Contacts", ZOHO_ID, "A1")

    assert store.take_record(KEY, "a", ttl=30, event_id="ev-seen") == RecordLease(processed=True)
    assert store.lock_record(KEY, "b", ttl=30)                      # not taken by a
    assert store.take_record(KEY, "a", ttl=30, event_id="ev-new") is None
    store.unlock_record(KEY, "b")
    lease = store.take_record(KEY, "a", ttl=30, event_id="ev-new", link=("customer", ZOHO_ID))
    assert lease is not None and lease.link_read and not lease.processed
    assert (lease.link.zoho_module, lease.link.zoho_id, lease.link.ameise_id) == ("Contacts", ZOHO_ID, "A1")
    assert linked.ameise_id == "A1"
    other = store.take_record("Contacts/2", "a", ttl=30, link=("customer", "2"))
    assert other is not None and other.link is None and other.link_read


def _assert_a_lease_notes_a_create_of_an_unlinked_record_and_withdraws_it(store: Store) -> None:
    customer = ("customer", ZOHO_ID)
    # A record without a link (its row new here) and without a note: the lease notes a create.
    lease = store.take_record(KEY, "a", ttl=30, event_id="ev-new", link=customer, note_create=True)
    assert lease is not None and lease.noted and not lease.creating and lease.link is None
    assert store.create_under_way(KEY)
    store.finish_record(KEY, "a", withdrawn=True)                    # no create was sent after all
    assert not store.create_under_way(KEY) and store.lock_record(KEY, "b", ttl=30)
    store.unlock_record(KEY, "b")

    # Its row there now: the same.  A lease that ran out withdraws nothing of the one holding it since, which
    # finds the note (a create may have been sent) and makes none of its own.
    assert store.take_record(KEY, "a", ttl=-1, link=customer, note_create=True).noted
    later = store.take_record(KEY, "b", ttl=30, link=customer, note_create=True)
    assert later is not None and later.creating and not later.noted
    store.finish_record(KEY, "a", withdrawn=True)
    assert store.create_under_way(KEY) and not store.lock_record(KEY, "c", ttl=30)
    store.finish_record(KEY, "b", created=True)
    assert not store.create_under_way(KEY)

    # Without note_create, or with a link, or for an event handled before: nothing noted.
    assert not store.take_record(KEY, "a", ttl=30, link=customer).noted
    store.finish_record(KEY, "a")
    store.save_link("customer", "Contacts", ZOHO_ID, "A1")
    linked = store.take_record(KEY, "a", ttl=30, link=customer, note_create=True)
    assert linked.link is not None and not linked.noted
    store.finish_record(KEY, "a", withdrawn=linked.noted)
    assert not store.create_under_way(KEY)
    store.mark_processed("ev-seen", "created")
    assert store.take_record("Contacts/2", "a", ttl=30, event_id="ev-seen", link=("customer", "2"),
                             note_create=True) == RecordLease(processed=True)
    assert not store.create_under_way("Contacts/2") and store.lock_record("Contacts/2", "b", ttl=30)


def test_a_lease_notes_a_create_of_an_unlinked_record_and_its_release_withdraws_it(store):
    _assert_a_lease_notes_a_create_of_an_unlinked_record_and_withdraws_it(store)


def test_the_create_note_of_a_lease_on_the_portable_path(sql_store, monkeypatch):
    # Without ON CONFLICT (nor PostgreSQL's one statement): the record's row is inserted after the lease's reads.
    monkeypatch.setattr("syncbridge.adapters.db.sql._CONFLICT_INSERTS", {})
    store = SqlStore(sql_store.engine)
    store._pg_driver = False
    _assert_a_lease_notes_a_create_of_an_unlinked_record_and_withdraws_it(store)


def test_finish_record_saves_the_link_and_on_a_conflict_does_the_rest_keeps_the_note_and_raises(store):
    store.save_link("customer", "Contacts", "other-record", "A9")
    assert store.take_record(KEY, "a", ttl=30) is not None
    store.note_create(KEY, True)
    entry = ActivityEntry(CRM_TO_AMEISE, "created", "ok", "customer", "Contacts", ZOHO_ID, "A1", "ev1")

    store.finish_record(KEY, "a", entries=[entry], processed=("ev1", "created"), created=True,
                        link=Link("customer", "Contacts", ZOHO_ID, "A1"))
    assert store.find_link("customer", zoho_id=ZOHO_ID).ameise_id == "A1"
    assert not store.create_under_way(KEY)

    assert store.take_record(KEY, "a", ttl=30) is not None
    store.note_create(KEY, True)
    with pytest.raises(LinkConflict, match="other-record"):
        store.finish_record(KEY, "a", entries=[entry], processed=("ev2", "created"), created=True,
                            link=Link("customer", "Contacts", ZOHO_ID, "A9"))
    assert store.find_link("customer", zoho_id=ZOHO_ID).ameise_id == "A1"     # unchanged
    assert store.create_under_way(KEY) and store.was_processed("ev2") and len(store.activities()) == 2
    assert store.lock_record(KEY, "b", ttl=30)                      # released all the same


def test_finish_record_of_a_failed_sync_keeps_the_create_note_and_frees_only_its_own_lease(store):
    started = datetime.now(UTC)
    assert store.lock_record(KEY, "a", ttl=30)
    store.note_create(KEY, True)
    failed = ActivityEntry(CRM_TO_AMEISE, "written_back", "error", "customer", "Contacts", ZOHO_ID, "A1", "ev1",
                           error="boom")

    store.finish_record(KEY, "b", synced_from=started)         # not b's lease: nothing released
    assert not store.lock_record(KEY, "b", ttl=30) and store.last_synced_from(KEY) is None
    store.finish_record(KEY, "a", entries=[failed])

    assert store.create_under_way(KEY) and not store.was_processed("ev1")
    assert store.last_synced_from(KEY) is None
    [entry] = store.activities()
    assert (entry.action, entry.error) == ("written_back", "boom") and entry.at is not None
    assert store.lock_record(KEY, "b", ttl=30)


def test_finish_record_of_a_create_whose_lease_ran_out_clears_the_note_and_leaves_the_new_holders_lease(store):
    started = datetime.now(UTC)
    assert store.take_record(KEY, "a", ttl=-1) is not None          # a's lease has run out at once
    store.note_create(KEY, True)
    assert store.take_record(KEY, "b", ttl=30) is not None

    store.finish_record(KEY, "a", synced_from=started, processed=("ev1", "created"), created=True)

    assert not store.create_under_way(KEY)                      # the record is linked, whoever holds it now
    assert store.was_processed("ev1")
    assert store.last_synced_from(KEY) is None                  # not a's lease: nothing else of it released
    assert not store.lock_record(KEY, "c", ttl=30)              # still b's
    store.finish_record(KEY, "b", synced_from=started)
    assert store.last_synced_from(KEY) == started and store.lock_record(KEY, "c", ttl=30)


def test_finish_record_writes_attempts_and_echo_marks_as_the_single_writes_do(sql_store):
    from syncbridge.adapters.db.dailyup import SqlDailyUpStore

    store, echoes = sql_store, SqlDailyUpStore(sql_store.engine)
    received = datetime(2025, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    attempt = ActivityEntry(CRM_TO_AMEISE, "created", "ok", "customer", "Contacts", ZOHO_ID, "A1", "ev1",
                            details={"message": {"Nachname": "Müller", "n": [1, 2.5, None, True]}}, at=T0,
                            source="zoho-workflow", received_at=received, attempt=2, duration_ms=41,
                            error_kind=None, error_code="X", error_field="Email")
    assert store.lock_record(KEY, "a", ttl=30)
    store.note_create(KEY, True)
    store.log(replace(attempt, event_id="ev0"))
    store.remember_echo("contract", "V1", {"Sparte": "010"})

    store.finish_record(KEY, "a", entries=[attempt, replace(attempt, action="written_back", details={})],
                        processed=("ev1", "created"), created=True,
                        echoes=[("customer", "A1", {"Nachname": "Müller", "PLZ": "51147"}),
                                ("contract", "V1", {"Sparte": "020"})])

    # Every column as store.log writes it (the entry logged by itself, ev0, is the same but for its event).
    written_back, created = store.activities(event_id="ev1")
    [alone] = store.activities(event_id="ev0")
    assert replace(created, id=None, event_id="ev0") == replace(alone, id=None)
    assert created.details == attempt.details and written_back.details == {}
    assert created.received_at == received and _aware_utc(created.received_at) and created.at == T0
    with store.engine.connect() as conn:        # the JSON as stored: the same text either way
        stored = dict(conn.execute(select(ACTIVITY.c.event_id, cast(ACTIVITY.c.details, Text))
                                   .where(ACTIVITY.c.action == "created")).all())
    assert stored["ev1"] == stored["ev0"] == json.dumps(attempt.details)
    assert echoes.echo("customer", "A1") == {"Nachname": "Müller", "PLZ": "51147"}
    assert echoes.echo("contract", "V1") == {"Sparte": "020"}                     # the newer mark replaces the old
    assert not store.create_under_way(KEY) and store.was_processed("ev1")

    # A created record whose lease another worker holds by now: its create note is cleared all the same.
    assert store.lock_record(KEY, "b", ttl=30)
    store.note_create(KEY, True)
    store.finish_record(KEY, "a", created=True)
    assert not store.create_under_way(KEY) and not store.lock_record(KEY, "c", ttl=30)


# ---------------------------------------------------------------- processed events
def test_mark_processed_is_idempotent(store):
    assert store.was_processed("evt-1") is False

    store.mark_processed("evt-1", "created")
    store.mark_processed("evt-1", "skipped")

    assert store.was_processed("evt-1") is True
    assert store.was_processed("evt-2") is False


# ---------------------------------------------------------------- activity log
def _seed(store: Store) -> dict[str, int]:
    """Log five entries a minute apart; return their ids by action."""
    entries = [
        ActivityEntry(CRM_TO_AMEISE, "created", "ok", "customer", "Contacts", ZOHO_ID, "A1", "ev1"),
        ActivityEntry(CRM_TO_AMEISE, "failed", "error", "contract", "Deals", ZOHO_ID_2, None, "ev2", error="boom"),
        ActivityEntry(AMEISE_TO_CRM, "updated", "ok", "customer", "Contacts", ZOHO_ID, "A1", "ev3"),
        ActivityEntry(SYSTEM, "token_refreshed", "ok"),
        ActivityEntry(AMEISE_TO_CRM, "written_back", "error", "contract", "Deals", ZOHO_ID_2, "A2", "ev3"),
    ]
    return {
        entry.action: store.log(replace(entry, at=T0 + timedelta(minutes=minute))).id
        for minute, entry in enumerate(entries)
    }


@pytest.mark.parametrize(("filters", "expected"), [
    ({}, ["written_back", "token_refreshed", "updated", "failed", "created"]),
    ({"direction": CRM_TO_AMEISE}, ["failed", "created"]),
    ({"direction": SYSTEM}, ["token_refreshed"]),
    ({"entity": "contract"}, ["written_back", "failed"]),
    ({"result": "error"}, ["written_back", "failed"]),
    ({"action": "updated"}, ["updated"]),
    ({"zoho_id": ZOHO_ID}, ["updated", "created"]),
    ({"ameise_id": "A2"}, ["written_back"]),
    ({"event_id": "ev3"}, ["written_back", "updated"]),
    ({"since": T0 + timedelta(minutes=3)}, ["written_back", "token_refreshed"]),
    ({"until": T0 + timedelta(minutes=1)}, ["created"]),
    ({"since": T0 + timedelta(minutes=1), "until": T0 + timedelta(minutes=3)}, ["updated", "failed"]),
    ({"direction": AMEISE_TO_CRM, "result": "ok", "entity": "customer"}, ["updated"]),
    ({"direction": SYSTEM, "entity": "customer"}, []),
    ({"limit": 2}, ["written_back", "token_refreshed"]),
    ({"limit": 0}, []),
])
def test_activities_filter_newest_first(store, filters, expected):
    ids = _seed(store)

    found = store.activities(**filters)

    assert [entry.id for entry in found] == [ids[action] for action in expected]


def test_activities_compare_times_across_timezones(store):
    ids = _seed(store)
    berlin = timezone(timedelta(hours=1))

    # 09:02 in Berlin is 08:02 UTC: the third entry onwards.
    found = store.activities(since=datetime(2025, 3, 1, 9, 2, tzinfo=berlin), until=T0 + timedelta(minutes=4))

    assert [entry.id for entry in found] == [ids["token_refreshed"], ids["updated"]]


def test_log_fills_id_and_time_and_round_trips_everything(store):
    details = {"fields": ["Vorname", "Straße"], "count": 3, "ratio": 0.5, "nested": {"ok": True, "none": None}}
    before = datetime.now(UTC)

    logged = store.log(ActivityEntry(
        CRM_TO_AMEISE, "failed", "error", "customer", "Contacts", ZOHO_ID, "5001234567", "evt-9",
        error="Ameise lehnte ab: Pflichtfeld fehlt", details=details,
    ))

    after = datetime.now(UTC)
    assert logged.id is not None
    assert _aware_utc(logged.at) and before <= logged.at <= after
    [read] = store.activities()
    assert read == logged
    assert _aware_utc(read.at)
    assert read.details == details
    assert isinstance(read.zoho_id, str) and read.zoho_id == ZOHO_ID


def test_log_keeps_a_given_time_as_utc(store):
    at = datetime(2025, 3, 1, 10, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))

    logged = store.log(ActivityEntry(SYSTEM, "imported", "ok", at=at))

    [read] = store.activities()
    assert logged.at == read.at == at
    assert read.at.tzinfo is not None and read.at.utcoffset() == timedelta(0)
    assert read.at.hour == 8 and read.at.microsecond == 123456


def test_log_rejects_naive_times(store):
    with pytest.raises(ValueError, match="naive"):
        store.log(ActivityEntry(SYSTEM, "imported", "ok", at=datetime(2025, 3, 1, 8, 0)))
    with pytest.raises(ValueError, match="naive"):
        store.activities(since=datetime(2025, 3, 1, 8, 0))


def test_entries_at_the_same_time_come_newest_logged_first(store):
    first = store.log(ActivityEntry(SYSTEM, "first", "ok", at=T0))
    second = store.log(ActivityEntry(SYSTEM, "second", "ok", at=T0))

    assert [entry.id for entry in store.activities()] == [second.id, first.id]


def test_details_are_copies(store):
    details: dict[str, Any] = {"fields": ["a"]}
    logged = store.log(ActivityEntry(SYSTEM, "imported", "ok", details=details))

    details["fields"].append("changed")
    logged.details["fields"].append("changed too")

    assert store.activities()[0].details == {"fields": ["a"]}


# ---------------------------------------------------------------- tokens
def test_token_store(store):
    tokens = store.tokens
    token = OAuthToken("access-1", "refresh-1", 1740816000.123456,
                       {"api_domain": "https://www.zohoapis.eu", "scope": "ZohoCRM.modules.ALL"})

    assert tokens.load("zoho") is None
    assert tokens.status("zoho") == ("not_connected", "")

    tokens.save("zoho", token)
    assert tokens.load("zoho") == token
    assert tokens.status("zoho") == ("active", "")
    assert tokens.load("ameise") is None
    assert tokens.status("ameise") == ("not_connected", "")

    tokens.set_status("zoho", "reconnect_needed", "invalid_grant")
    assert tokens.status("zoho") == ("reconnect_needed", "invalid_grant")
    assert tokens.load("zoho") == token

    renewed = OAuthToken("access-2", "refresh-1", 1740819600.0, {"api_domain": "https://www.zohoapis.eu"})
    tokens.save("zoho", renewed)
    assert tokens.load("zoho") == renewed
    assert tokens.status("zoho") == ("active", "")


def test_token_status_can_be_set_before_any_token(store):
    store.tokens.set_status("ameise", "reconnect_needed", "never connected")

    assert store.tokens.status("ameise") == ("reconnect_needed", "never connected")
    assert store.tokens.load("ameise") is None


def test_returned_tokens_are_copies(store):
    store.tokens.save("ameise", OAuthToken("a", "r", 1.0, {"employee_id": "E1"}))

    store.tokens.load("ameise").extra["employee_id"] = "changed"

    assert store.tokens.load("ameise").extra == {"employee_id": "E1"}


def test_sql_token_store_is_the_store_tokens(sql_store):
    assert isinstance(sql_store.tokens, SqlTokenStore)
    SqlTokenStore(sql_store.engine).save("zoho", OAuthToken("a", "r", 1.0))
    assert sql_store.tokens.status("zoho") == ("active", "")


# ---------------------------------------------------------------- tokens at rest
KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()
PLAIN = OAuthToken("plain-access-7f3a", "plain-refresh-9c1e", 1740816000.5, {"employee_id": "E1"})


def _raw_row(engine, provider: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(select(TOKENS).where(TOKENS.c.provider == provider)).one()._mapping)


def test_tokens_are_encrypted_at_rest(sql_store):
    sql_store.tokens.save("ameise", PLAIN)

    row = _raw_row(sql_store.engine, "ameise")
    assert "plain-access" not in repr(row) and "plain-refresh" not in repr(row)
    assert row["access_token"].startswith("gAAAAA") and row["refresh_token"].startswith("gAAAAA")
    assert sql_store.tokens.load("ameise") == PLAIN
    assert sql_store.tokens.status("ameise") == ("active", "")


def test_a_token_saved_with_another_key_reads_as_reconnect_needed(sql_store, caplog):
    SqlTokenStore(sql_store.engine, TokenCipher(KEY_A)).save("ameise", PLAIN)
    wrong = SqlTokenStore(sql_store.engine, TokenCipher(KEY_B))

    assert wrong.load("ameise") is None
    assert wrong.status("ameise") == ("reconnect_needed", UNREADABLE_TOKEN)
    assert "SYNCBRIDGE_TOKEN_KEY" in UNREADABLE_TOKEN and "SYNCBRIDGE_TOKEN_KEY" in caplog.text
    # Nothing was written: a process with the right key reads the token as before.
    assert SqlTokenStore(sql_store.engine, TokenCipher(KEY_A)).load("ameise") == PLAIN
    assert SqlTokenStore(sql_store.engine, TokenCipher(KEY_A)).status("ameise") == ("active", "")


def test_the_ameise_client_with_the_wrong_key_says_reconnect_or_fix_the_key(sql_store):
    from syncbridge.adapters.ameise import AmeiseOAuth, AmeiseReconnectNeeded
    from syncbridge.config import Settings

    SqlTokenStore(sql_store.engine, TokenCipher(KEY_A)).save("ameise", PLAIN)
    oauth = AmeiseOAuth.from_settings(Settings.from_env({}), SqlTokenStore(sql_store.engine, TokenCipher(KEY_B)))

    with pytest.raises(AmeiseReconnectNeeded, match="cannot be decrypted with SYNCBRIDGE_TOKEN_KEY"):
        oauth.credentials()


def test_token_keys_rotate(sql_store):
    SqlTokenStore(sql_store.engine, TokenCipher(KEY_A)).save("zoho", PLAIN)
    rotating = SqlTokenStore(sql_store.engine, TokenCipher(f"{KEY_B},{KEY_A}"))

    assert rotating.load("zoho") == PLAIN              # the old key still decrypts
    rotating.save("zoho", PLAIN)                        # the next save (a refresh) encrypts with the new one
    assert SqlTokenStore(sql_store.engine, TokenCipher(KEY_B)).load("zoho") == PLAIN
    assert SqlTokenStore(sql_store.engine, TokenCipher(KEY_A)).load("zoho") is None


# ---------------------------------------------------------------- readiness
def test_ping(store):
    store.ping()


def test_a_postgresql_server_that_never_answers_fails_the_connection_in_bounded_time(monkeypatch):
    import socket
    import time

    from syncbridge.adapters.db import sql

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)        # the kernel completes the handshake; nobody ever answers the startup message
    monkeypatch.setattr(sql, "POSTGRES_CONNECT_TIMEOUT_S", 1)
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/none")
    started = time.monotonic()
    try:
        with pytest.raises(OperationalError):
            engine.connect()
    finally:
        engine.dispose()
        silent.close()
    assert time.monotonic() - started < 10


def test_ping_raises_when_the_database_is_unreachable():
    unreachable = SqlStore.from_url("postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=2")

    with pytest.raises(OperationalError):
        unreachable.ping()
    unreachable.engine.dispose()


# ---------------------------------------------------------------- concurrency
def _together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released at once; re-raise the first error."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    if errors:
        raise errors[0]
    return results


def _assert_race_safe(store: Store) -> None:
    _together(8, lambda _: store.save_link("customer", "Contacts", ZOHO_ID, "5001234567"))
    assert store.find_link("customer", zoho_id=ZOHO_ID).ameise_id == "5001234567"
    assert _link_rows(store) in (1, None)

    # Racing updates of one Zoho record leave one row with one of the numbers.
    _together(8, lambda i: store.save_link("contract", "Deals", ZOHO_ID_2, f"V-{i}"))
    winner = store.find_link("contract", zoho_id=ZOHO_ID_2)
    assert winner.ameise_id in {f"V-{i}" for i in range(8)}
    assert store.find_link("contract", ameise_id=winner.ameise_id) == winner
    assert _link_rows(store) in (2, None)

    _together(8, lambda i: store.mark_processed("evt-race", f"outcome-{i}"))
    assert store.was_processed("evt-race")

    _together(8, lambda i: store.tokens.save("zoho", OAuthToken(f"access-{i}", "r", 1.0)))
    assert store.tokens.status("zoho") == ("active", "")


def test_concurrent_writes_are_race_safe(store):
    _assert_race_safe(store)


def test_portable_path_without_on_conflict_is_race_safe(sql_store, monkeypatch):
    # Without ON CONFLICT the store falls back to update-or-insert and retries.
    monkeypatch.setattr("syncbridge.adapters.db.sql._CONFLICT_INSERTS", {})
    _assert_race_safe(sql_store)
    sql_store.save_link("customer", "Contacts", ZOHO_ID_2, "other")
    with pytest.raises(LinkConflict, match="already linked"):
        sql_store.save_link("customer", "Contacts", ZOHO_ID_2, "5001234567")


# ---------------------------------------------------------------- engines
def test_sqlite_file_engine_settings(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'settings.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_sqlite_in_memory_is_shared_between_threads():
    engine = make_engine("sqlite://")
    config = alembic_config("sqlite://")
    with engine.begin() as conn:
        # An in-memory database exists only on its connection: migrate on that one.
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    memory_db = SqlStore(engine)

    _together(2, lambda i: memory_db.mark_processed(f"evt-{i}", "done"))

    assert memory_db.was_processed("evt-0") and memory_db.was_processed("evt-1")
    engine.dispose()


# ---------------------------------------------------------------- migrations
@pytest.fixture(params=["sqlite-relative", "sqlite-absolute", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request, tmp_path, monkeypatch) -> Iterator[str]:
    """The URL of an empty database."""
    if request.param == "sqlite-relative":
        monkeypatch.chdir(tmp_path)
        yield "sqlite:///relative.db"
    elif request.param == "sqlite-absolute":
        assert tmp_path.is_absolute()
        yield f"sqlite:///{tmp_path / 'absolute.db'}"
    else:
        with pg_schema(request.getfixturevalue("postgres_url")) as url:
            yield url




# The revision of the newest migration file, by its number: 0001_initial.py, 0002_dailyup.py, ...
_NEWEST = max((MIGRATIONS_DIR / "versions").glob("[0-9]*_*.py"), key=lambda p: p.name.split("_", 1)[0])
HEAD = re.search(r'^revision = "([^"]+)"', _NEWEST.read_text(encoding="utf-8"), re.M).group(1)


def test_alembic_config_points_at_the_shipped_migrations():
    config = alembic_config("sqlite:///x.db")
    script = ScriptDirectory.from_config(config)

    assert MIGRATIONS_DIR.is_absolute() and (MIGRATIONS_DIR / "env.py").is_file()
    assert script.get_heads() == [HEAD]  # one line of history, ending at the newest file
    assert config.attributes["database_url"] == "sqlite:///x.db"


def test_upgrade_creates_the_schema_of_the_models(fresh_url):
    assert current(fresh_url) is None
    assert is_up_to_date(fresh_url) is False

    upgrade(fresh_url)

    assert current(fresh_url) == HEAD
    assert is_up_to_date(fresh_url) is True
    assert schema_differences(fresh_url) == []


def test_upgrade_twice_is_a_no_op(fresh_url):
    upgrade(fresh_url)
    db = SqlStore.from_url(fresh_url)
    db.save_link("customer", "Contacts", ZOHO_ID, "5001234567")

    upgrade(fresh_url)

    assert current(fresh_url) == HEAD
    assert db.find_link("customer", zoho_id=ZOHO_ID).ameise_id == "5001234567"
    db.engine.dispose()


def test_downgrade_removes_the_schema_and_upgrade_restores_it(fresh_url):
    upgrade(fresh_url)

    command.downgrade(alembic_config(fresh_url), "base")

    engine = make_engine(fresh_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    assert current(fresh_url) is None
    upgrade(fresh_url)
    assert is_up_to_date(fresh_url) and schema_differences(fresh_url) == []


def test_the_migration_encrypts_plaintext_tokens_and_its_downgrade_decrypts_them(fresh_url):
    upgrade(fresh_url, "0005")
    engine = make_engine(fresh_url)
    with engine.begin() as conn:
        conn.execute(TOKENS.insert().values(
            provider="ameise", access_token=PLAIN.access_token, refresh_token=PLAIN.refresh_token,
            expires_at=PLAIN.expires_at, extra=PLAIN.extra, status="active", status_detail="",
            updated_at=datetime.now(UTC)))
        conn.execute(TOKENS.insert().values(
            provider="zoho", access_token=None, refresh_token=None, expires_at=None, extra={},
            status="reconnect_needed", status_detail="never connected", updated_at=datetime.now(UTC)))

    upgrade(fresh_url, token_key=KEY_A)

    row = _raw_row(engine, "ameise")
    assert "plain-" not in repr(row) and row["access_token"].startswith("gAAAAA")
    assert SqlStore(engine, token_cipher=TokenCipher(KEY_A)).tokens.load("ameise") == PLAIN
    assert SqlStore(engine, token_cipher=TokenCipher(KEY_A)).tokens.status("zoho") == (
        "reconnect_needed", "never connected")

    config = alembic_config(fresh_url)
    config.attributes["token_key"] = KEY_A
    command.downgrade(config, "0005")

    row = _raw_row(engine, "ameise")
    assert (row["access_token"], row["refresh_token"]) == (PLAIN.access_token, PLAIN.refresh_token)
    assert _raw_row(engine, "zoho")["access_token"] is None
    engine.dispose()


def test_the_migration_takes_the_key_from_the_environment(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'env.db'}"
    upgrade(url, "0005")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(TOKENS.insert().values(
            provider="zoho", access_token="a", refresh_token="r", expires_at=1.0, extra={}, status="active",
            status_detail="", updated_at=datetime.now(UTC)))
    monkeypatch.setenv("SYNCBRIDGE_TOKEN_KEY", KEY_B)

    command.upgrade(alembic_config(url), "head")   # as plain Alembic would: no key handed over

    assert SqlStore(engine, token_cipher=TokenCipher(KEY_B)).tokens.load("zoho") == OAuthToken("a", "r", 1.0)
    engine.dispose()


@pytest.mark.postgres
def test_a_busy_postgresql_engine_keeps_its_connections_instead_of_opening_more(migrated_postgres_url):
    from sqlalchemy import event

    from syncbridge.adapters.db.sql import POOL_SIZE

    engine = make_engine(migrated_postgres_url)
    opened = []
    event.listen(engine, "connect", lambda *_: opened.append(1))
    store = SqlStore(engine)
    try:
        # Three times as many threads as connections, each running transactions back to back.
        _together(3 * POOL_SIZE, lambda i: [store.mark_processed(f"busy-{i}-{n}", "created") for n in range(20)])
        assert all(store.was_processed(f"busy-{i}-19") for i in range(3 * POOL_SIZE))
        assert len(opened) <= POOL_SIZE and engine.pool.checkedout() == 0
    finally:
        engine.dispose()
