"""One suite for what the return path reads of the DailyUp snapshot: the in-memory fake and the SQL store alike."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import update

from simulators.fakes.snapshot import MemorySnapshot
from syncbridge.adapters.db.dailyup import SNAPSHOT, SqlDailyUpStore
from syncbridge.deliveries import row_hash
from syncbridge.ports import Candidate, DailyUpSnapshot, SnapshotRow
from tests.support.databases import emptied_engine

Put = Callable[..., int]   # put(table, key, data, deleted=False) -> the import id that wrote the row


def _sql_put(store: SqlDailyUpStore) -> Put:
    sequence = iter(range(1, 10_000))

    def put(table: str, key: str, data: dict[str, Any], *, deleted: bool = False) -> int:
        with store.session() as session:
            import_id = session.start_import(file_name=f"DailyUp_100200_{next(sequence):05d}.zip",
                                             sha256=f"{next(sequence):064x}", hauptvermittler="100200",
                                             delivered_on=date(2026, 11, 2), source="cli")
            session.insert_snapshot(table, import_id, [Candidate(key, data, row_hash(table, data), None, None,
                                                                 False, None)])
            session.finish_import(import_id, state="accepted")
        if deleted:
            with store.engine.begin() as conn:
                conn.execute(update(SNAPSHOT).where(SNAPSHOT.c.table == table, SNAPSHOT.c.key == key)
                             .values(deleted=True))
        return import_id

    return put


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def snapshot(request) -> Iterator[tuple[DailyUpSnapshot, Put]]:
    if request.param == "memory":
        fake = MemorySnapshot()
        imports = iter(range(1, 10_000))

        def put(table: str, key: str, data: dict[str, Any], *, deleted: bool = False) -> int:
            import_id = next(imports)
            fake.put(table, key, data, deleted=deleted, import_id=import_id)
            return import_id

        yield fake, put
        return
    engine = emptied_engine(request.getfixturevalue(f"migrated_{request.param}_url"))
    store = SqlDailyUpStore(engine)
    yield store, _sql_put(store)
    engine.dispose()


def test_rows_are_found_by_key_deleted_ones_included_unknown_ones_left_out(snapshot):
    reader, put = snapshot
    alive = put("kunden", "5001", {"Kundennummer": "5001", "Ort": "Köln"})
    gone = put("kunden", "5002", {"Kundennummer": "5002", "Ort": "Bonn"}, deleted=True)
    put("vertraege", "5001", {"Vertragsnummer": "5001"})

    assert reader.snapshot_rows("kunden", ["5001", "5002", "9999", "5001"]) == {
        "5001": SnapshotRow("kunden", "5001", {"Kundennummer": "5001", "Ort": "Köln"}, False, alive),
        "5002": SnapshotRow("kunden", "5002", {"Kundennummer": "5002", "Ort": "Bonn"}, True, gone),
    }
    assert reader.snapshot_rows("kunden", []) == {}
    assert reader.snapshot_rows("gesellschaften", ["5001"]) == {}


def test_a_lookup_list_is_its_rows_texts_without_the_deleted_ones(snapshot):
    reader, put = snapshot
    put("sparten", "050", {"ID": "050", "Text": "Wohngebäude"})
    put("sparten", "040", {"ID": "040", "Text": "Privathaftpflicht"})
    put("sparten", "010", {"ID": "010", "Text": "Kfz-Haftpflicht"}, deleted=True)
    put("anreden", "1", {"ID": "1", "Text": "Herr"})

    assert reader.lookups("sparten") == {"040": "Privathaftpflicht", "050": "Wohngebäude"}
    assert list(reader.lookups("sparten")) == ["040", "050"]
    assert reader.lookups("zahlweisen") == {}


def test_the_fake_built_from_lookup_lists_reads_like_delivered_rows():
    fake = MemorySnapshot({"anreden": {"2": "Frau", "1": "Herr"}})
    assert fake.lookups("anreden") == {"1": "Herr", "2": "Frau"}
    assert fake.snapshot_rows("anreden", ["1"])["1"].data == {"ID": "1", "Text": "Herr"}
