"""The DailyUp store on SQLite and PostgreSQL: migration 0002, imports, snapshot, outbox, echoes, transactions."""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import func, inspect, select

from syncbridge.adapters.db.dailyup import DELTAS, SNAPSHOT, STAGING, SqlDailyUpStore
from syncbridge.adapters.db.migrate import alembic_config, current, upgrade
from syncbridge.adapters.db.sql import make_engine
from syncbridge.deliveries import RowError, row_hash
from syncbridge.ports import Candidate, SnapshotRow
from tests.support.databases import pg_schema, schema_differences

SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
DAILYUP_TABLES = {"dailyup_imports", "dailyup_row_errors", "dailyup_snapshot", "dailyup_staging",
                  "dailyup_deltas", "dailyup_echoes"}


@pytest.fixture
def store(dailyup_store) -> SqlDailyUpStore:
    return dailyup_store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        with pg_schema(request.getfixturevalue("postgres_url")) as url:
            yield url


def row(table: str, key: str, **data) -> Candidate:
    values = {"ID": key, **data} if table != "kunden" else {"Kundennummer": key, **data}
    return Candidate(key, values, row_hash(table, values), None, None, False, None)


def new_import(store: SqlDailyUpStore, sha: str, *, state: str = "accepted", delivered_on=date(2026, 11, 2),
               rows: list[tuple[str, Candidate]] = (), deltas: list[tuple[str, str, str]] = ()) -> int:
    """Write an import with snapshot rows and outbox deltas (entity, change, key) through a session."""
    with store.session() as session:
        import_id = session.start_import(file_name=f"DailyUp_100200_{delivered_on:%Y%m%d}.zip", sha256=sha,
                                         hauptvermittler="100200", delivered_on=delivered_on, source="cli")
        for table, candidate in rows:
            session.insert_snapshot(table, import_id, [candidate])
        session.add_deltas([{"import_id": import_id, "entity": e, "change": c, "key": k,
                             "changed_fields": ["Ort"] if c == "changed" else []} for e, c, k in deltas])
        session.finish_import(import_id, state=state, rows={"kunden": len(rows)}, deltas={"customer.created": 1})
    return import_id


def count(store: SqlDailyUpStore, table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# ---------------------------------------------------------------- migration 0002
def test_migration_creates_the_tables_of_the_models_and_goes_back(fresh_url):
    upgrade(fresh_url, "0002")

    assert current(fresh_url) == "0002"
    engine = make_engine(fresh_url)
    assert DAILYUP_TABLES <= set(inspect(engine).get_table_names())
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("dailyup_deltas")}
    assert {"ix_dailyup_deltas_unpublished", "ix_dailyup_deltas_import_id"} <= indexes

    command.downgrade(alembic_config(fresh_url), "0001")

    assert current(fresh_url) == "0001"
    assert not DAILYUP_TABLES & set(inspect(engine).get_table_names())
    engine.dispose()
    upgrade(fresh_url)
    assert schema_differences(fresh_url) == []   # at the head, the tables are those of the models


# ---------------------------------------------------------------- snapshot reads
def test_snapshot_rows_and_lookups(store):
    assert store.lookups("sparten") == {}
    import_id = new_import(store, "a" * 64, rows=[
        ("kunden", row("kunden", "5000000001", Ort="Köln")), ("kunden", row("kunden", "5000000002", Ort="Jena")),
        ("sparten", row("sparten", "010", Text="Kfz-Haftpflicht")), ("sparten", row("sparten", "030", Text="Hausrat")),
    ])

    found = store.snapshot_rows("kunden", ["5000000002", "5000000001", "9999999999", "5000000001"])

    assert found == {
        "5000000001": SnapshotRow("kunden", "5000000001", {"Kundennummer": "5000000001", "Ort": "Köln"}, False, import_id),
        "5000000002": SnapshotRow("kunden", "5000000002", {"Kundennummer": "5000000002", "Ort": "Jena"}, False, import_id),
    }
    assert store.snapshot_rows("vertraege", ["5000000001"]) == {}
    assert store.lookups("sparten") == {"010": "Kfz-Haftpflicht", "030": "Hausrat"}


def test_snapshot_rows_reads_many_keys_and_includes_deleted_ones(store):
    rows = [("kunden", row("kunden", f"{5_000_000_000 + i}")) for i in range(1200)]
    import_id = new_import(store, "b" * 64, rows=rows)
    with store.session() as session:
        # Every row but the first vanished from the delivery.
        assert session.mark_deleted(import_id, "kunden", [c.key for _, c in rows[1:]]) == 1199

    found = store.snapshot_rows("kunden", [c.key for _, c in rows])

    assert len(found) == 1200
    assert found["5000000000"].deleted is False and found["5000000001"].deleted is True
    assert [r["Kundennummer"] for r in store.iter_snapshot("kunden")] == ["5000000000"]


def test_iter_snapshot_pages_in_key_order_and_filters_by_import(store):
    first = new_import(store, "c" * 64, rows=[("kunden", row("kunden", f"{5_000_000_000 + i}")) for i in (3, 1, 2)])
    second = new_import(store, "d" * 64, delivered_on=date(2026, 11, 3),
                        rows=[("kunden", row("kunden", "5000000000"))])

    assert [r["Kundennummer"] for r in store.iter_snapshot("kunden", page=2)] == \
        ["5000000000", "5000000001", "5000000002", "5000000003"]
    assert [r["Kundennummer"] for r in store.iter_snapshot("kunden", import_id=second)] == ["5000000000"]
    assert len(list(store.iter_snapshot("kunden", import_id=first, page=1))) == 3
    assert list(store.iter_snapshot("vertraege")) == []


# ---------------------------------------------------------------- imports and row errors
def test_imports_newest_first(store):
    assert store.imports() == [] and store.latest_import() is None and store.get_import(1) is None
    ids = [new_import(store, c * 64, delivered_on=date(2026, 11, 2 + n)) for n, c in enumerate("efg")]

    assert [i.id for i in store.imports()] == ids[::-1]
    assert [i.id for i in store.imports(limit=2)] == ids[:0:-1]
    latest = store.latest_import()
    assert latest == store.get_import(ids[-1])
    assert (latest.file_name, latest.sha256, latest.hauptvermittler, latest.delivered_on, latest.source,
            latest.state, latest.rows, latest.deltas) == (
        "DailyUp_100200_20261104.zip", "g" * 64, "100200", date(2026, 11, 4), "cli", "accepted", {"kunden": 0},
        {"customer.created": 1})
    assert latest.received_at.utcoffset().total_seconds() == 0 and latest.finished_at >= latest.received_at


def test_row_errors_in_order_with_a_limit(store):
    import_id = new_import(store, "h" * 64)
    errors = [RowError("kunden.csv", 3, "Email", "Not a valid email address.", "5000000001"),
              RowError("vertraege.csv", 9, None, "expected 14 fields, found 3", None)]
    with store.session() as session:
        session.add_row_errors(import_id, errors)

    assert store.row_errors(import_id) == errors
    assert store.row_errors(import_id, limit=1) == errors[:1]
    assert store.row_errors(import_id + 1) == []


def test_record_rejected_takes_over_a_rejected_import_but_never_a_kept_one(store):
    first = store.record_rejected(file_name="DailyUp_1_20261102.zip", sha256="i" * 64, hauptvermittler="1",
                                  delivered_on=date(2026, 11, 2), source="upload", message="truncated")
    again = store.record_rejected(file_name="DailyUp_1_20261102.zip", sha256="i" * 64, hauptvermittler="1",
                                  delivered_on=date(2026, 11, 2), source="cli", message="still truncated",
                                  rows={"kunden": 7}, errors=2)
    kept = new_import(store, "j" * 64)
    untouched = store.record_rejected(file_name="x.zip", sha256="j" * 64, hauptvermittler=None, delivered_on=None,
                                      source="cli", message="must not replace an accepted import")

    assert first == again and untouched == kept
    rejected = store.get_import(first)
    assert (rejected.state, rejected.message, rejected.source, rejected.rows, rejected.errors) == (
        "rejected", "still truncated", "cli", {"kunden": 7}, 2)
    assert store.get_import(kept).state == "accepted"
    assert len(store.imports()) == 2


# ---------------------------------------------------------------- sessions
def test_a_session_is_one_transaction(store):
    with pytest.raises(RuntimeError):
        with store.session() as session:
            session.stage([{"import_id": 1, "table": "kunden", "key": "1", "line": 2, "hash": "h", "data": {},
                            "error": False}])
            session.start_import(file_name="f.zip", sha256="k" * 64, hauptvermittler="1", delivered_on=None,
                                 source="cli")
            raise RuntimeError("broken half-way")
    with store.session(dry_run=True) as session:
        session.start_import(file_name="f.zip", sha256="l" * 64, hauptvermittler="1", delivered_on=None, source="cli")
        assert session.find_import("l" * 64).state == "importing"

    assert store.imports() == []
    assert count(store, STAGING) == 0



def test_rows_written_in_batches_are_there_for_the_next_statement_and_go_with_a_rollback(store):
    keys = [f"{n:010d}" for n in range(1, 5)]
    with store.session() as session:
        import_id = session.start_import(file_name="f.zip", sha256="m" * 64, hauptvermittler="1",
                                         delivered_on=None, source="cli")
        for key in keys[:2]:    # batch after batch (one COPY on PostgreSQL), then other statements
            session.insert_snapshot("kunden", import_id, [row("kunden", key, Ort="Bonn")])
            session.add_deltas([{"import_id": import_id, "entity": "customer", "change": "created", "key": key,
                                 "changed_fields": []}])
        assert session.snapshot_data("kunden", keys) == {key: {"Kundennummer": key, "Ort": "Bonn"} for key in keys[:2]}
        session.insert_snapshot("kunden", import_id, [row("kunden", keys[2])])
    assert [d.key for d in store.unpublished_deltas(10)] == keys[:2]
    assert set(store.snapshot_rows("kunden", keys)) == set(keys[:3])
    with store.engine.connect() as conn:
        written = conn.execute(select(SNAPSHOT.c.updated_at).where(SNAPSHOT.c.key == keys[0])).scalar_one()
    assert abs(datetime.now(UTC) - written) < timedelta(minutes=5)

    for broken in (keys[0], None):      # a row the database refuses (its key is there), an error of the import
        with pytest.raises(Exception) as raised:
            with store.session() as session:
                session.insert_snapshot("kunden", import_id, [row("kunden", keys[3])])
                session.insert_snapshot("kunden", import_id, [row("kunden", broken or keys[3] + "x")])
                if broken is None:
                    raise RuntimeError("broken half-way")
        assert broken is not None or isinstance(raised.value, RuntimeError)
        assert set(store.snapshot_rows("kunden", keys + [keys[3] + "x"])) == set(keys[:3])


AWKWARD = ["K\\1", "K\t2", "K\n3", "K\r4", "K\\N", "K\\.", "\\.", "Kä €\u2028", 'K"7;', "K\\x00"]


def test_awkward_texts_are_stored_as_they_are_in_snapshot_staging_and_outbox(store):
    """Backslashes, tabs, line breaks: what COPY's text format treats apart is stored as given."""
    with store.session() as session:
        import_id = session.start_import(file_name="f.zip", sha256="w" * 64, hauptvermittler="1",
                                         delivered_on=date(2026, 11, 2), source="cli")
        session.insert_snapshot("sparten", import_id, [
            Candidate(key, {"ID": key, "Text": f"{key} \\ \" \t\n ä", "Leer": None}, f"h\\{n}", None, None,
                      False, None, None, bytes([92, 9, 10, 13, n]) * 3)
            for n, key in enumerate(AWKWARD)])
        session.add_deltas([{"import_id": import_id, "entity": "customer", "change": "created", "key": key,
                             "changed_fields": ["A\\b", "C\td"] if n % 2 else [], "echoed_fields": ["E\\"]}
                            for n, key in enumerate(AWKWARD)])
        session.stage([{"import_id": import_id, "table": "sparten", "key": key, "line": n + 2,
                        "hash": None if n % 2 else f"s\\{n}", "data": None if n % 2 else {"ID": key, "T": "\\"},
                        "raw_hash": bytes([92, n]), "error": bool(n % 2)} for n, key in enumerate(AWKWARD)])
        with session.conn.begin_nested():
            staged = session.conn.execute(select(STAGING.c.key, STAGING.c.line, STAGING.c.hash, STAGING.c.data,
                                                 STAGING.c.raw_hash, STAGING.c.error)
                                          .order_by(STAGING.c.line)).all()
        session.clear_staging()
        session.finish_import(import_id, state="accepted")

    assert [tuple(r) for r in staged] == [
        (key, n + 2, None if n % 2 else f"s\\{n}", None if n % 2 else {"ID": key, "T": "\\"}, bytes([92, n]),
         bool(n % 2)) for n, key in enumerate(AWKWARD)]
    found = store.snapshot_rows("sparten", AWKWARD)
    assert {key: found[key].data for key in found} == {
        key: {"ID": key, "Text": f"{key} \\ \" \t\n ä", "Leer": None} for key in AWKWARD}
    with store.engine.connect() as conn:
        stored = dict(conn.execute(select(SNAPSHOT.c.key, SNAPSHOT.c.hash)).all())
        digests = dict(conn.execute(select(SNAPSHOT.c.key, SNAPSHOT.c.raw_hash)).all())
    assert stored == {key: f"h\\{n}" for n, key in enumerate(AWKWARD)}
    assert digests == {key: bytes([92, 9, 10, 13, n]) * 3 for n, key in enumerate(AWKWARD)}
    assert [(d.key, d.changed_fields, d.echoed_fields) for d in store.unpublished_deltas(20)] == [
        (key, ("A\\b", "C\td") if n % 2 else (), ("E\\",)) for n, key in enumerate(AWKWARD)]


def test_new_rows_and_created_deltas_are_stored_as_through_candidates_and_delta_rows(store):
    """insert_new (given the values' JSON text) and add_created write what insert_snapshot and add_deltas
    write for the same rows."""
    rows = [(key, {"ID": key, "Text": f"{key} ä \\", "Leer": None}, f"h{n}", None if n % 3 else bytes([n]) * 16)
            for n, key in enumerate(AWKWARD)]
    stored = []
    for way, sha in (("general", "g"), ("new", "n")):
        with store.session() as session:
            import_id = session.start_import(file_name=f"{way}.zip", sha256=sha * 64, hauptvermittler="1",
                                             delivered_on=date(2026, 11, 2), source="cli")
            table = f"sparten_{way}"
            if way == "general":
                session.insert_snapshot(table, import_id, [Candidate(key, data, hashed, None, None, False, None,
                                                                     None, raw) for key, data, hashed, raw in rows])
                session.add_deltas([{"import_id": import_id, "entity": "contract", "change": "created", "key": key,
                                     "changed_fields": (), "echoed_fields": ()} for key, *_ in rows])
            else:
                session.insert_new(table, import_id, [(key, json.dumps(data), hashed, raw)
                                                      for key, data, hashed, raw in rows])
                session.add_created(import_id, "contract", [key for key, *_ in rows])
            session.finish_import(import_id, state="accepted")
        with store.engine.connect() as conn:
            snapshot = conn.execute(select(SNAPSHOT.c.key, SNAPSHOT.c.hash, SNAPSHOT.c.data, SNAPSHOT.c.raw_hash,
                                           SNAPSHOT.c.deleted).where(SNAPSHOT.c.table == table)
                                    .order_by(SNAPSHOT.c.key)).all()
        deltas = [(d.entity, d.change, d.key, d.changed_fields, d.echoed_fields) for d in store.unpublished_deltas(50)
                  if d.import_id == import_id]
        stored.append(([tuple(r) for r in snapshot], deltas))

    assert stored[0] == stored[1]
    assert len(stored[1][0]) == len(AWKWARD) and [d[2] for d in stored[1][1]] == AWKWARD


# ---------------------------------------------------------------- outbox
def test_unpublished_deltas_in_id_order_and_import_published_when_its_outbox_is_empty(store):
    first = new_import(store, "m" * 64, deltas=[("customer", "created", "5000000001"),
                                                 ("contract", "created", "VN-1")])
    second = new_import(store, "n" * 64, delivered_on=date(2026, 11, 3),
                        deltas=[("customer", "changed", "5000000001")])
    empty = new_import(store, "o" * 64, delivered_on=date(2026, 11, 4))

    pending = store.unpublished_deltas(10)
    assert [(d.import_id, d.entity, d.change, d.key) for d in pending] == [
        (first, "customer", "created", "5000000001"), (first, "contract", "created", "VN-1"),
        (second, "customer", "changed", "5000000001")]
    assert pending[0].delta_id == f"{first}:customer:5000000001"
    assert pending[0].delivered_on == date(2026, 11, 2)
    assert pending[2].changed_fields == ("Ort",)
    assert store.count_unpublished() == 3
    assert [d.id for d in store.unpublished_deltas(2)] == [d.id for d in pending[:2]]

    store.mark_published([pending[0].id])

    assert store.get_import(first).state == "accepted"
    # An import without deltas has an empty outbox: published too.
    assert store.get_import(empty).state == "published"
    store.mark_published([pending[1].id])
    assert store.get_import(first).state == "published" and store.get_import(first).published_at is not None
    assert store.get_import(second).state == "accepted"
    assert [d.id for d in store.unpublished_deltas(10)] == [pending[2].id]
    assert count(store, DELTAS) == 3


def test_unpublished_deltas_are_found_across_gaps_of_published_ones(store):
    import_id = new_import(store, "p" * 64, deltas=[("customer", "created", f"50000{n:05d}") for n in range(40)])
    ids = [d.id for d in store.unpublished_deltas(40)]
    waiting = [ids[0], ids[1], ids[17], ids[18], ids[39]]
    store.mark_published([i for i in ids if i not in waiting], settle=False)

    # Reads go range by range of ids (twice the limit wide): the gaps between them are skipped.
    assert [d.id for d in store.unpublished_deltas(2)] == waiting[:2]
    assert [d.id for d in store.unpublished_deltas(2, waiting[1])] == waiting[2:4]
    assert [d.id for d in store.unpublished_deltas(3, waiting[0])] == waiting[1:4]
    assert [d.id for d in store.unpublished_deltas(10)] == waiting
    assert [d.key for d in store.unpublished_deltas(10, waiting[3])] == ["5000000039"]
    assert store.unpublished_deltas(10, waiting[4]) == []
    assert {d.import_id for d in store.unpublished_deltas(10)} == {import_id}


# ---------------------------------------------------------------- echoes
def test_remember_echo_keeps_the_last_write(store):
    assert store.echo("customer", "5000000001") is None

    store.remember_echo("customer", "5000000001", {"Ort": "Köln", "PLZ": "50667"})
    store.remember_echo("customer", "5000000001", {"Email": "a@b.de"})
    store.remember_echo("contract", "5000000001", {"Status": "1"})

    assert store.echo("customer", "5000000001") == {"Email": "a@b.de"}
    assert store.echo("contract", "5000000001") == {"Status": "1"}
    with store.session() as session:
        session.consume_echoes("customer", ["5000000001"])
    assert store.echo("customer", "5000000001") is None
    assert store.echo("contract", "5000000001") == {"Status": "1"}


def test_from_url_opens_a_store_on_its_own_engine(migrated_sqlite_url):
    writer, reader = SqlDailyUpStore.from_url(migrated_sqlite_url), SqlDailyUpStore.from_url(migrated_sqlite_url)
    try:
        assert writer.engine is not reader.engine
        writer.remember_echo("contract", "VN-9", {"Status": "3"})
        assert reader.echo("contract", "VN-9") == {"Status": "3"}
    finally:
        writer.engine.dispose()
        reader.engine.dispose()


@pytest.mark.parametrize("odd", ["none", "separator in a key", "digest of another length"])
def test_raw_digests_are_the_stored_ones_of_rows_still_delivered(store, odd):
    digests: dict[str, bytes | None] = {f"50{n:08d}": bytes([n % 256]) * 16 for n in range(300)}
    digests.update({"5000000997": None, "5000000998": None, "K;ä €": b"\x00" * 16})
    if odd == "separator in a key":
        digests["50\x1e01"] = b"\x1e" * 16
    elif odd == "digest of another length":
        digests["5000000999"] = b"abc"
    with store.session() as session:
        import_id = session.start_import(file_name="DailyUp_100200_20261102.zip", sha256="s" * 64,
                                         hauptvermittler="100200", delivered_on=date(2026, 11, 2), source="cli")
        session.insert_snapshot("kunden", import_id, [
            Candidate(key, {"Kundennummer": key}, "h", None, None, False, None, None, digest)
            for key, digest in digests.items()])
        session.insert_snapshot("vertraege", import_id, [Candidate("VN-1", {"ID": "VN-1"}, "h", None, None, False,
                                                                   None, None, b"v" * 16)])
        session.mark_deleted(import_id, "kunden", ["5000000001"])
        session.finish_import(import_id, state="accepted")
    del digests["5000000001"]

    with store.session(dry_run=True) as session:
        session.lock(then="kunden")     # read ahead on PostgreSQL
        assert session.raw_digests("kunden", then="vertraege") == digests
        assert session.raw_digests("vertraege") == {"VN-1": b"v" * 16}
        assert session.raw_digests("kunden") == digests
