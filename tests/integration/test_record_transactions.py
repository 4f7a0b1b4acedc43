"""How many database transactions the CRM -> Ameise handler runs for one record, on SQLite.

The lease is taken with what the sync reads of the record in one transaction, and the
outcome (log entries, processed mark, cleared create note, release) written in one; the
note before a create is sent stays a transaction of its own.
"""
from __future__ import annotations

import pytest
from sqlalchemy import event

from simulators.ameise import seed_demo as seed_ameise
from simulators.fakes.ameise import InMemoryAmeise
from simulators.fakes.zoho import InMemoryZoho
from simulators.zoho import seed_demo as seed_zoho
from syncbridge.adapters.db.sql import SqlStore, make_engine
from syncbridge.handlers import SyncDependencies, sync_crm_record_to_ameise
from syncbridge.mapping import load_mapping
from syncbridge.messages import SyncCrmRecordToAmeise

MODULES = {"Contacts": "person", "Accounts": "company", "Deals": "contract"}


@pytest.fixture
def counted(database_url):
    engine = make_engine(database_url)
    statements: list[list[str]] = []

    @event.listens_for(engine, "begin")
    def _begin(_conn) -> None:
        statements.append([])

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(_conn, _cursor, sql, *_args) -> None:
        statements[-1].append(sql.split()[0].upper())

    yield SqlStore(engine), statements
    engine.dispose()


def test_a_create_takes_seven_transactions_and_an_update_five(counted):
    store, statements = counted
    zoho, ameise = InMemoryZoho(), InMemoryAmeise()
    ids = seed_zoho(zoho.state)
    seed_ameise(ameise.state)
    deps = SyncDependencies(crm=zoho, ameise=ameise, store=store, mapping=load_mapping(),
                            module_entities=MODULES, default_vermittler="A1B2C3")

    created = sync_crm_record_to_ameise(SyncCrmRecordToAmeise("Contacts", ids["Max Neumann"], "ev-1"), deps)
    on_create = list(statements)
    statements.clear()
    updated = sync_crm_record_to_ameise(SyncCrmRecordToAmeise("Contacts", ids["Max Neumann"], "ev-2"), deps)

    assert (created.action, updated.action) == ("created", "updated")
    assert len(on_create) == 7 and len(statements) == 5
    # The last transaction writes the whole outcome: two log entries, the processed mark, the note, the release.
    assert on_create[-1] == ["INSERT", "INSERT", "UPDATE", "UPDATE"]
    assert [e.action for e in store.activities()] == ["updated", "written_back", "created"]
    assert store.was_processed("ev-1") and store.was_processed("ev-2")
    assert not store.create_under_way(f"Contacts/{ids['Max Neumann']}")
