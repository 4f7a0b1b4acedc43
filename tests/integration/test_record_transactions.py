"""How many database transactions the CRM -> Ameise handler runs for one record, on SQLite.

The lease is taken with what the sync reads of the record (the processed check, its state,
its link; for a record without a link, the note that a create may be sent) in one transaction,
and the outcome (link, log entries with the delivery's own, processed mark, cleared create note,
the DailyUp echo mark, release) written in one.  On PostgreSQL the outcome is one statement, run
on its own (autocommit): no BEGIN and COMMIT round trips around it.
"""
from __future__ import annotations

import pytest
from sqlalchemy import event

from simulators.ameise import seed_demo as seed_ameise
from simulators.fakes.ameise import InMemoryAmeise
from simulators.fakes.zoho import InMemoryZoho
from simulators.zoho import seed_demo as seed_zoho
from syncbridge.adapters.db.dailyup import SqlDailyUpStore
from syncbridge.adapters.db.sql import SqlStore
from syncbridge.handlers import SyncDependencies, sync_crm_record_to_ameise
from syncbridge.mapping import load_mapping
from syncbridge.messages import SyncCrmRecordToAmeise
from syncbridge.ports import CRM_TO_AMEISE, ActivityEntry
from tests.support.databases import emptied_engine

MODULES = {"Contacts": "person", "Accounts": "company", "Deals": "contract"}
SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=SQL_BACKENDS)
def counted(request):
    engine = emptied_engine(request.getfixturevalue(f"migrated_{request.param}_url"))
    statements: list[list[str]] = []

    @event.listens_for(engine, "begin")
    def _begin(_conn) -> None:
        statements.append([])

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(conn, _cursor, sql, *_args) -> None:
        # A statement PostgreSQL runs on its own (autocommit: no BEGIN and COMMIT sent around it) in lower case.
        alone = engine.dialect.name == "postgresql" and conn.connection.dbapi_connection.autocommit
        statements[-1].append(sql.split()[0].lower() if alone else sql.split()[0].upper())

    yield SqlStore(engine), statements
    engine.dispose()


def test_a_create_takes_two_transactions_and_an_update_two(counted):
    store, statements = counted
    zoho, ameise = InMemoryZoho(), InMemoryAmeise()
    ids = seed_zoho(zoho.state)
    seed_ameise(ameise.state)
    # As the worker is wired: the store notes the echo marks, and writes them with the record's outcome.
    deps = SyncDependencies(crm=zoho, ameise=ameise, store=store, mapping=load_mapping(),
                            module_entities=MODULES, default_vermittler="A1B2C3", echoes=store)

    def attempt(result):
        return ActivityEntry(direction=CRM_TO_AMEISE, action=result.action, result="ok", entity=result.entity,
                             zoho_module="Contacts", zoho_id=result.zoho_id, attempt=1, source="test")

    max_id = ids["Max Neumann"]
    created = sync_crm_record_to_ameise(SyncCrmRecordToAmeise("Contacts", max_id, "ev-1"), deps, attempt)
    on_create = list(statements)
    statements.clear()
    updated = sync_crm_record_to_ameise(SyncCrmRecordToAmeise("Contacts", max_id, "ev-2"), deps, attempt)
    on_update = list(statements)
    statements.clear()
    again = sync_crm_record_to_ameise(SyncCrmRecordToAmeise("Contacts", max_id, "ev-2"), deps, attempt)

    assert (created.action, updated.action, again.action) == ("created", "updated", "duplicate")
    # The lease (inserting the record's row; a write first), the processed check and the link lookup, and for
    # the record without a link the note that a create may be sent: one transaction (on PostgreSQL the check,
    # the lookup and the note are one statement).
    postgres = store.engine.dialect.name == "postgresql"
    assert on_create[0] == (["INSERT", "WITH"] if postgres else ["INSERT", "SELECT", "SELECT", "UPDATE"])
    # The whole outcome: the link, the log entries (one statement), the processed mark, the echo mark, note
    # cleared and release; on PostgreSQL all of it one statement, on its own.
    assert on_create[1] == (["with"] if postgres else ["INSERT", "INSERT", "INSERT", "INSERT", "UPDATE"])
    assert on_update[1] == on_create[1]
    assert len(on_create) == 2 and len(on_update) == 2
    # A linked record: the lease and its reads, no note (on PostgreSQL the same statement, which notes nothing
    # when a link is there: see the note's absence at the end).
    assert on_update[0] == (["INSERT", "WITH"] if postgres else ["INSERT", "SELECT", "SELECT"])
    # A delivery seen before: the lease taken is rolled back once the processed check tells it; its own log entry.
    assert statements == [["INSERT", "WITH" if postgres else "SELECT"], ["INSERT"]]
    assert [(e.action, e.source) for e in store.activities()] == [
        ("duplicate", "test"), ("updated", "test"), ("updated", None), ("created", "test"),
        ("written_back", None), ("created", None)]
    assert store.was_processed("ev-1") and store.was_processed("ev-2")
    assert not store.create_under_way(f"Contacts/{max_id}")
    echo = SqlDailyUpStore(store.engine).echo("customer", created.ameise_id)
    assert echo is not None and echo == load_mapping().as_dailyup("person").as_dailyup(
        load_mapping().from_crm("person").to_ameise(zoho.get_record("Contacts", max_id)))
    link = store.find_link("customer", zoho_id=max_id)
    assert link is not None and link.ameise_id == created.ameise_id
    assert store.take_record(f"Contacts/{max_id}", "someone", 30) is not None      # released


def test_a_contract_and_the_customer_synced_under_its_lease_write_their_echo_marks_with_their_outcomes(counted):
    store, statements = counted
    zoho, ameise = InMemoryZoho(), InMemoryAmeise()
    seed_zoho(zoho.state)
    seed_ameise(ameise.state)
    deps = SyncDependencies(crm=zoho, ameise=ameise, store=store, mapping=load_mapping(),
                            module_entities=MODULES, default_vermittler="A1B2C3", echoes=store)
    deal = next(r for r in zoho.state.records("Deals"))
    tables: list[list[str]] = []

    @event.listens_for(store.engine, "begin")
    def _begin(_conn) -> None:
        tables.append([])

    @event.listens_for(store.engine, "before_cursor_execute")
    def _statement(_conn, _cursor, sql, *_args) -> None:
        tables[-1].append(" ".join(sql.split()))

    result = sync_crm_record_to_ameise(SyncCrmRecordToAmeise("Deals", deal["id"], "ev-deal"), deps)

    # The two echo marks (the customer's, synced inside the contract's lease, then the contract's), each
    # in the transaction that releases its record; none in a transaction of its own.
    with_echo = [sql for sql in tables if any("INSERT INTO dailyup_echoes" in statement for statement in sql)]
    assert len(with_echo) == 2
    if store.engine.dialect.name == "postgresql":      # one statement: its parts as CTEs, the release the main one
        assert all(len(sql) == 1 and sql[0].startswith("WITH") and "UPDATE record_syncs SET locked_by =" in sql[0]
                   for sql in with_echo)
    else:
        assert all(sql[-1].startswith("UPDATE record_syncs SET") and len(sql) > 2 for sql in with_echo)
    echoes = SqlDailyUpStore(store.engine)
    customer = store.find_link("customer", zoho_id=str(deal["Contact_Name"]["id"]))
    assert result.ameise_id and customer is not None
    assert echoes.echo("contract", result.ameise_id)["Kundennummer"] == customer.ameise_id
    assert echoes.echo("customer", customer.ameise_id) is not None
