"""The DailyUp import on SQLite and PostgreSQL, publishing on memory:// and a real RabbitMQ.

Deliveries come from :mod:`syncbridge.dailyup.generate`, whose ``expected_delta``
says exactly what each generation changed; broken ones are made from them.
"""
from __future__ import annotations

import csv
import gc
import hashlib
import io
import json
import os
import re
import socket
import threading
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kombu import Connection, Consumer
from sqlalchemy import select

from contracts.base import load_or_raise
from contracts.events import AmeiseDeltasSchema, AmeiseRecordChangedSchema
from producers.memory import MemoryPublisher
from producers.publisher import Publisher
from producers.topology import build_topology
from syncbridge.adapters.db.dailyup import DELTAS, IMPORTS, SNAPSHOT, SqlDailyUpStore
from syncbridge.dailyup.generate import LOOKUPS, csv_bytes, expected_delta, write_delivery, write_zip
from syncbridge.dailyup.importer import YOUNG_OBJECTS, DailyUpImporter, _collecting_seldom
from syncbridge.dailyup.reader import ReadingStopped, open_delivery
from syncbridge.deliveries import (
    CUSTOMERS,
    VOLATILE_COLUMNS,
    ParsedRow,
    changed_fields,
    in_column_order,
    row_hash,
)
from tests.support.net import TcpProxy

N = 1000            # customers per delivery: one turnover and a few changes per generation
CLOSED_PORT = "amqp://guest:guest@127.0.0.1:1//"


# ---------------------------------------------------------------- helpers
@pytest.fixture
def store(dailyup_store) -> SqlDailyUpStore:
    return dailyup_store


@pytest.fixture
def importer(store) -> DailyUpImporter:
    return DailyUpImporter(store)


def deliver(tmp_path: Path, generation: int, customers: int = N) -> Path:
    folder = tmp_path / f"g{generation}-{customers}"
    folder.mkdir(exist_ok=True)
    return write_delivery(folder, customers=customers, generation=generation)


def outbox(store: SqlDailyUpStore, import_id: int) -> dict[str, dict[str, set[str]]]:
    """The deltas of an import as expected_delta gives them."""
    found = {e: {"created": set(), "changed": set(), "deleted": set()} for e in ("customer", "contract")}
    with store.engine.connect() as conn:
        for row in conn.execute(select(DELTAS).where(DELTAS.c.import_id == import_id)):
            assert row.key not in found[row.entity][row.change], "one delta per record and import"
            found[row.entity][row.change].add(row.key)
    return found


def outbox_rows(store: SqlDailyUpStore) -> list:
    with store.engine.connect() as conn:
        return conn.execute(select(DELTAS).order_by(DELTAS.c.id)).all()


def snapshot(store: SqlDailyUpStore) -> dict[tuple[str, str], tuple]:
    with store.engine.connect() as conn:
        return {(r.table, r.key): (r.hash, r.data, r.deleted, r.import_id) for r in conn.execute(select(SNAPSHOT))}


def import_count(store: SqlDailyUpStore) -> int:
    with store.engine.connect() as conn:
        return len(conn.execute(select(IMPORTS.c.id)).all())


def parsed(path: Path, table: str) -> dict[str, dict]:
    """The valid rows of a table of a delivery, by key, as the reader gives them."""
    with open_delivery(path) as delivery:
        return {r.key: r.data for r in delivery.rows(table) if isinstance(r, ParsedRow)}


def rewrite(path: Path, table: str, change: Callable[[list[str], list[list[str]]], tuple[list[str], list[list[str]]]],
            *, raw: Callable[[bytes], bytes] | None = None) -> Path:
    """Rewrite one CSV member of a delivery in place: ``change(header, rows)``, then optionally its bytes."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    header, *rows = list(csv.reader(io.StringIO(members[f"{table}.csv"].decode("utf-8"), newline=""), delimiter=";"))
    header, rows = change(header, rows)
    data = csv_bytes(header, rows)
    members[f"{table}.csv"] = raw(data) if raw else data
    path.unlink()
    return write_zip(path, members)


def drop_members(path: Path, *names: str) -> Path:
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist() if info.filename not in names}
    path.unlink()
    return write_zip(path, members)


# ---------------------------------------------------------------- first and later deliveries
def test_the_first_delivery_creates_everything(store, tmp_path):
    progress: list[tuple[str, int, int | None]] = []
    importer = DailyUpImporter(store, progress=lambda *report: progress.append(report))
    path = deliver(tmp_path, 0, customers=4000)

    result = importer.import_file(path, source="drop-folder")

    expected = expected_delta(4000, 0)
    assert (result.state, result.message, result.errors, result.published) == ("accepted", "", 0, 0)
    assert outbox(store, result.import_id) == expected
    assert result.deltas == {"customer.created": 4000, "contract.created": len(expected["contract"]["created"])}
    assert result.rows["kunden"] == 4000 and result.rows["sparten"] == len(LOOKUPS["sparten"])
    assert len(result.samples["customer.created"]) == 5
    assert all(s["key"] in expected["customer"]["created"] for s in result.samples["customer.created"])
    imp = store.get_import(result.import_id)
    assert (imp.state, imp.source, imp.hauptvermittler, imp.rows, imp.deltas, imp.errors) == (
        "accepted", "drop-folder", "100200", result.rows, result.deltas, 0)
    assert imp.encodings["kunden"] == "utf-8" and imp.extra_columns == {}
    assert set(imp.timings) == {"read", "diff"}
    # Lookup lists are stored, but make no delta messages.
    assert store.lookups("sparten") == dict(LOOKUPS["sparten"])
    assert {r.entity for r in outbox_rows(store)} == {"customer", "contract"}
    # The snapshot holds the normalized rows of the delivery.
    contracts = parsed(path, "vertraege")
    some = next(iter(contracts))
    assert store.snapshot_rows("vertraege", [some])[some].data == contracts[some]
    total = sum(result.rows.values())
    assert ("read", 10_000, None) in progress and ("read", total, total) in progress
    assert ("diff", 0, 9) in progress and ("diff", 9, 9) in progress


def test_customer_deltas_come_grouped_by_person_type_so_upserts_fill_one_crm_module(store, importer, tmp_path):
    path = deliver(tmp_path, 0, customers=3000)
    kinds = {key: row["Personentyp"] for key, row in parsed(path, "kunden").items()}
    assert set(kinds.values()) == {"natuerlich", "juristisch"}

    result = importer.import_file(path)

    customers = [r.key for r in outbox_rows(store) if r.entity == "customer"]
    assert len(customers) == 3000
    # One run of each person type per page of the comparison: the worker's batches of 100 rarely mix
    # Contacts and Accounts, each of which would be a partly filled upsert billed a whole credit.
    runs = sum(1 for before, after in zip(customers, customers[1:]) if kinds[before] != kinds[after]) + 1
    assert runs <= 2 * -(-3000 // 5000), runs
    assert result.deltas["customer.created"] == 3000
    # Customers still all come before contracts: a new contract never overtakes its customer.
    entities = [r.entity for r in outbox_rows(store)]
    assert entities == sorted(entities, key=lambda entity: entity != "customer")


def test_each_next_generation_gives_exactly_the_expected_delta(store, importer, tmp_path):
    first_path = deliver(tmp_path, 0)
    first = importer.import_file(first_path)

    for generation in (1, 2, 3):
        path = deliver(tmp_path, generation)
        result = importer.import_file(path)

        expected = expected_delta(N, generation)
        assert result.state == "accepted"
        assert outbox(store, result.import_id) == expected
        assert result.deltas == {f"{e}.{c}": len(keys) for e, changes in expected.items()
                                 for c, keys in changes.items() if keys}
    # Changed fields are the stable columns that differ; volatile ones never count.
    for row in outbox_rows(store):
        if row.change != "changed":
            assert row.changed_fields == []
        elif row.entity == "customer":
            assert len(row.changed_fields) == 1 and row.changed_fields[0] in ("Telefon", "Strasse", "Email")
        else:
            assert set(row.changed_fields) <= {"Status", "BeitragBrutto", "BeitragNetto"} and row.changed_fields
    # The snapshot has the last delivery's values; its volatile columns are those of the delivery that last
    # changed the record (a day on which only they move rewrites nothing); unchanged records keep their last change.
    latest = parsed(path, CUSTOMERS)
    rows = {key: data for (table, key), data in snapshot(store).items() if table == CUSTOMERS}
    assert {k for k, (_, _, deleted, _) in rows.items() if not deleted} == set(latest)

    def stable(data):
        return {c: v for c, v in data.items() if c not in ("LetzterLogin", "GeaendertAm")}

    assert all(stable(rows[key][1]) == stable(data) for key, data in latest.items())
    changed_once = set().union(*(expected_delta(N, g)["customer"]["changed"] for g in (1, 2, 3)))
    first_rows = parsed(first_path, CUSTOMERS)
    untouched = next(k for k in latest if k not in changed_once and rows[k][3] == first.import_id
                     and first_rows[k]["GeaendertAm"] != latest[k]["GeaendertAm"])
    assert rows[untouched][1] == first_rows[untouched]
    changed_last = next(iter(expected_delta(N, 3)["customer"]["changed"]))
    assert rows[changed_last][1] == latest[changed_last] and rows[changed_last][3] == result.import_id


def test_customers_come_before_contracts_in_the_outbox(store, importer, tmp_path):
    importer.import_file(deliver(tmp_path, 0))
    second = importer.import_file(deliver(tmp_path, 1))

    rows = [r for r in outbox_rows(store) if r.import_id == second.import_id]
    entities = [r.entity for r in rows]
    assert "customer" in entities and "contract" in entities
    assert entities == sorted(entities, key=("customer", "contract").index)


def test_diff_is_a_dry_run(store, importer, tmp_path):
    importer.import_file(deliver(tmp_path, 0))
    before = (snapshot(store), outbox_rows(store), store.imports())
    path = deliver(tmp_path, 1)

    preview = importer.diff(path)

    expected = expected_delta(N, 1)
    assert (preview.import_id, preview.state) == (None, "accepted")
    assert preview.deltas["customer.changed"] == len(expected["customer"]["changed"])
    assert {s["key"] for s in preview.samples["customer.changed"]} <= expected["customer"]["changed"]
    assert all(s["changed_fields"] for s in preview.samples["customer.changed"])
    assert (snapshot(store), outbox_rows(store), store.imports()) == before
    assert importer.import_file(path).deltas == preview.deltas


# ---------------------------------------------------------------- deliveries to leave alone
def test_the_same_file_twice_is_a_no_op(store, importer, tmp_path):
    path = deliver(tmp_path, 0)
    first = importer.import_file(path)
    before = (snapshot(store), outbox_rows(store))

    again = importer.import_file(path, source="upload")

    assert (again.state, again.import_id) == ("duplicate", first.import_id)
    assert again.message.startswith("already imported on ") and f"import {first.import_id}" in again.message
    assert import_count(store) == 1
    assert (snapshot(store), outbox_rows(store)) == before
    assert importer.diff(path).state == "duplicate"


def test_an_older_delivery_after_a_newer_one_is_superseded(store, importer, tmp_path):
    importer.import_file(deliver(tmp_path, 0))
    newer = importer.import_file(deliver(tmp_path, 2))
    before = (snapshot(store), outbox_rows(store))

    late = importer.import_file(deliver(tmp_path, 1))

    assert late.state == "superseded"
    assert "03.11.2026" in late.message and "04.11.2026" in late.message and f"import {newer.import_id}" in late.message
    assert (snapshot(store), outbox_rows(store)) == before
    assert store.get_import(late.import_id).state == "superseded"
    assert late.deltas == {}


# ---------------------------------------------------------------- rejected deliveries
def truncated_zip(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def cut_last_row(path: Path) -> Path:
    # A transfer cut off inside the last row of vertraege.csv: kunden.csv was read whole before.
    return rewrite(path, "vertraege", lambda h, rows: (h, rows), raw=lambda data: data.rstrip(b"\r\n")[:-40])


def unclosed_quote(path: Path) -> Path:
    return rewrite(path, "vertraege", lambda h, rows: (h, rows), raw=lambda data: data + b'"VN-broken;12345')


def no_customers(path: Path) -> Path:
    return rewrite(path, "kunden", lambda h, rows: (h, []))


@pytest.mark.parametrize(("damage", "reason"), [
    (truncated_zip, "ZIP"),
    (cut_last_row, "truncated"),
    (unclosed_quote, "not closed"),
    (no_customers, "kunden.csv has no rows"),
], ids=["truncated-zip", "truncated-csv", "corrupt-csv", "empty-kunden"])
def test_a_broken_delivery_is_rejected_and_changes_nothing(store, importer, tmp_path, damage, reason):
    importer.import_file(deliver(tmp_path, 0))
    before = (snapshot(store), outbox_rows(store))
    path = damage(deliver(tmp_path, 1))

    result = importer.import_file(path)

    assert result.state == "rejected" and reason in result.message
    assert (snapshot(store), outbox_rows(store)) == before
    rejected = store.get_import(result.import_id)
    assert (rejected.state, rejected.message, rejected.file_name) == ("rejected", result.message, path.name)
    assert store.row_errors(result.import_id) == []
    # The complete file, delivered again, is imported after all.
    (tmp_path / "again").mkdir()
    fixed = importer.import_file(deliver(tmp_path / "again", 1))
    assert fixed.state == "accepted" and outbox(store, fixed.import_id) == expected_delta(N, 1)


def test_a_file_that_is_no_delivery_is_rejected(store, importer, tmp_path):
    path = tmp_path / "kunden.zip"
    path.write_bytes(b"PK\x03\x04 not really")

    result = importer.import_file(path)

    assert result.state == "rejected" and "DailyUp_" in result.message
    imp = store.get_import(result.import_id)
    assert (imp.hauptvermittler, imp.delivered_on, imp.state) == (None, None, "rejected")
    assert snapshot(store) == {}


# ---------------------------------------------------------------- hostile deliveries, stopping
def wide_header(path: Path) -> Path:
    return rewrite(path, "kunden", lambda header, rows: (header + [f"Spalte{i}" for i in range(5000)], rows))


def huge_row(path: Path) -> Path:
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members["kunden.csv"] += b"5009999998;" + b"a;" * (3 << 19) + b"\r\n"     # a row of 3 MiB
    path.unlink()
    return write_zip(path, members)


def newline_bomb(path: Path) -> Path:
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    path.unlink()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            with archive.open(name, "w", force_zip64=True) as member:
                member.write(data)
                if name == "kunden.csv":
                    for _ in range(256):
                        member.write(b"\n" * (1 << 20))
    return path


@pytest.mark.parametrize(("damage", "reason"), [
    (wide_header, "kunden.csv: the header has 5020 columns, more than the limit of 1000"),
    (huge_row, r"kunden.csv: the row at line \d+ is longer than the limit of 1048576 characters"),
    (newline_bomb, "a compression ratio above the limit of 100"),
], ids=["wide-header", "huge-row", "zip-bomb"])
def test_a_delivery_over_a_limit_is_rejected_set_aside_and_the_next_one_is_taken(store, importer, tmp_path, damage,
                                                                              reason):
    from syncbridge.dailyup.intake import DropFolder, process_inbox

    folder = DropFolder.at(tmp_path / "dailyup")
    hostile = damage(deliver(tmp_path, 0)).rename(folder.inbox / "DailyUp_100200_20261102.zip")
    deliver(tmp_path, 1).rename(folder.inbox / "DailyUp_100200_20261103.zip")
    for path in folder.inbox.iterdir():
        settled = time.time() - 60
        os.utime(path, (settled, settled))

    first, second = process_inbox(importer, folder)

    assert first.state == "rejected" and re.search(reason, first.message), first.message
    assert store.get_import(first.import_id).state == "rejected"
    assert list(folder.inbox.iterdir()) == []
    (kept,) = [p for p in folder.rejected.iterdir() if p.name.endswith(hostile.name)]
    assert kept.with_name(kept.name + ".reason.txt").read_text() == first.message + "\n"
    assert second.state == "accepted" and second.rows["kunden"] == N


@pytest.mark.parametrize("stage", ["read", "diff"])
def test_an_import_stopped_half_way_changes_nothing_and_stays_in_the_inbox(store, tmp_path, stage):
    from syncbridge.dailyup.intake import DropFolder, process_inbox

    stages: list[str] = []
    importer = DailyUpImporter(store, progress=lambda name, done, total: stages.append(name))
    importer.import_file(deliver(tmp_path, 0, customers=5000))
    stages.clear()
    before = (snapshot(store), outbox_rows(store), import_count(store))
    folder = DropFolder.at(tmp_path / "dailyup")
    path = deliver(tmp_path, 1, customers=5000).rename(folder.inbox / "DailyUp_100200_20261103.zip")
    os.utime(path, (time.time() - 60, time.time() - 60))
    asked = []

    def should_stop() -> bool:
        asked.append(stages[-1] if stages else None)
        # "read": stop among the rows, after 10,000 were staged; "diff": at the first page compared.
        return asked[-1] == stage

    assert process_inbox(importer, folder, should_stop=should_stop) == []

    assert asked[-1] == stage and stages.count("read") == (1 if stage == "read" else 2)
    assert [p.name for p in folder.inbox.iterdir()] == [path.name]
    assert list(folder.rejected.iterdir()) == [] and list(folder.archive.iterdir()) == []
    assert (snapshot(store), outbox_rows(store), import_count(store)) == before
    # Taken again (the next start), it is imported whole.
    (result,) = process_inbox(importer, folder)
    assert result.state == "accepted" and outbox(store, result.import_id) == expected_delta(5000, 1)


def test_the_cycle_collector_runs_seldom_while_importing_and_as_before_after_it(store, tmp_path, namespace):
    before = gc.get_threshold()
    seen: dict[str, set[tuple[int, int, int]]] = {}
    topology = build_topology(namespace)
    publisher = MemoryPublisher(topology)

    def note(name: str, done: int, total: int | None) -> None:
        seen.setdefault(name, set()).add(gc.get_threshold())

    importer = DailyUpImporter(store, publisher=publisher, topology=topology, progress=note)
    try:
        assert importer.import_file(deliver(tmp_path, 0)).state == "published"
        assert gc.get_threshold() == before
        # Rejected, and stopped half-way: the thresholds are back all the same.
        (tmp_path / "broken").mkdir()
        assert importer.import_file(cut_last_row(deliver(tmp_path / "broken", 1))).state == "rejected"
        assert gc.get_threshold() == before
        with pytest.raises(ReadingStopped):
            importer.import_file(deliver(tmp_path, 1), should_stop=lambda: True)
        assert gc.get_threshold() == before
    finally:
        publisher.close()
    seldom = (max(before[0], YOUNG_OBJECTS), *before[1:])
    assert {name: thresholds for name, thresholds in seen.items()} == {
        "read": {seldom}, "diff": {seldom}, "publish": {seldom}}


def test_imports_in_two_threads_restore_the_collector_when_the_last_one_ends(store, tmp_path):
    before = gc.get_threshold()
    inside, leave = threading.Barrier(2), threading.Event()
    seen: list[tuple[int, int, int]] = []

    def hold(first: bool) -> None:
        with _collecting_seldom():
            inside.wait(timeout=10)
            if first:
                leave.set()     # the first one out: the other one is still inside
            else:
                assert leave.wait(timeout=10)
                seen.append(gc.get_threshold())

    threads = [threading.Thread(target=hold, args=(index == 0,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == [(max(before[0], YOUNG_OBJECTS), *before[1:])]
    assert gc.get_threshold() == before


# ---------------------------------------------------------------- rows with errors, missing columns
def test_row_errors_are_stored_and_their_records_kept_as_they_were(store, importer, tmp_path):
    importer.import_file(deliver(tmp_path, 0))
    before = snapshot(store)
    expected = expected_delta(N, 1)
    changed, twice = sorted(expected["customer"]["changed"])[:2]
    gone = sorted(expected["customer"]["deleted"])[0]
    with zipfile.ZipFile(deliver(tmp_path, 0)) as archive:
        text = archive.read("kunden.csv").decode()
    gone_row = next(r for r in csv.reader(io.StringIO(text, newline=""), delimiter=";") if r[0] == gone)
    short: list[str] = []

    def break_rows(header, rows):
        email, telefon = header.index("Email"), header.index("Telefon")
        for row in rows:
            if row[0] == changed:
                row[email] = "not-an-email"
        # One row lacks fields; the deleted customer comes back on a row that cannot be read (line 2).
        at = next(n for n, row in enumerate(rows) if row[0] not in (changed, gone))
        short.append(rows[at][0])
        rows[at] = rows[at][:telefon]
        rows.insert(0, [*gone_row[:email], "also@not", *gone_row[email + 1:]])
        # A key delivered twice: which row is right cannot be told.
        rows.append(next(row for row in rows if row[0] == twice))
        return header, rows

    path = rewrite(deliver(tmp_path, 1), "kunden", break_rows)
    [short_key] = short

    result = importer.import_file(path)

    assert result.state == "accepted" and result.errors == 4
    errors = store.row_errors(result.import_id)
    assert {(e.file, e.column, e.key) for e in errors} == {
        ("kunden.csv", "Email", changed), ("kunden.csv", "Email", gone), ("kunden.csv", None, short_key),
        ("kunden.csv", "Kundennummer", twice)}
    assert {e.line for e in errors if e.key == gone} == {2}
    assert all(e.message for e in errors)
    delta = outbox(store, result.import_id)
    assert delta["customer"]["changed"] == expected["customer"]["changed"] - {changed, twice}
    assert delta["customer"]["deleted"] == expected["customer"]["deleted"] - {gone}
    after = snapshot(store)
    for key in (changed, twice, gone, short_key):
        assert after[("kunden", key)] == before[("kunden", key)]


def test_row_errors_are_counted_all_but_stored_up_to_the_cap(store, tmp_path, monkeypatch):
    monkeypatch.setattr("syncbridge.dailyup.importer.MAX_STORED_ERRORS", 4)
    path = rewrite(deliver(tmp_path, 0), "kunden",
                   lambda h, rows: (h, [r[:1] if n < 10 else r for n, r in enumerate(rows)]))

    result = DailyUpImporter(store).import_file(path)

    assert result.errors == store.get_import(result.import_id).errors == 10
    assert [e.line for e in store.row_errors(result.import_id)] == [2, 3, 4, 5]
    assert result.deltas["customer.created"] == N - 10


def test_a_missing_optional_column_keeps_the_values_it_had(store, importer, tmp_path):
    importer.import_file(deliver(tmp_path, 0))
    old = parsed(deliver(tmp_path, 0), CUSTOMERS)
    full = deliver(tmp_path, 1)
    new = parsed(full, CUSTOMERS)

    def without_email(header, rows):
        at = header.index("Email")
        return header[:at] + header[at + 1:], [r[:at] + r[at + 1:] for r in rows]

    result = importer.import_file(rewrite(full, "kunden", without_email))

    assert store.get_import(result.import_id).state == "accepted"
    changes = {k: changed_fields(CUSTOMERS, old[k], new[k]) for k in expected_delta(N, 1)["customer"]["changed"]}
    assert ["Email"] in changes.values() and any(f != ["Email"] for f in changes.values())
    assert outbox(store, result.import_id)["customer"]["changed"] == {k for k, f in changes.items() if f != ["Email"]}
    kept = store.snapshot_rows(CUSTOMERS, list(old))
    assert all(kept[k].data.get("Email") == old[k].get("Email") for k in old if k in new)
    assert any(kept[k].data.get("Email") for k in old if k in new)
    assert store.get_import(result.import_id).rows["kunden"] == len(new)


def test_lookup_lists_update_the_snapshot_and_a_missing_one_stays(store, importer, tmp_path):
    importer.import_file(deliver(tmp_path, 0))

    def renamed(header, rows):
        rows = [r for r in rows if r[0] != "6"]
        return header, [[r[0], "in Kraft" if r[0] == "1" else r[1]] for r in rows]

    path = rewrite(drop_members(deliver(tmp_path, 1), "sparten.csv"), "vertragsstatus", renamed)
    result = importer.import_file(path)

    assert result.state == "accepted"
    assert store.lookups("sparten") == dict(LOOKUPS["sparten"])
    expected_states = {code: "in Kraft" if code == "1" else text for code, text in LOOKUPS["vertragsstatus"]}
    del expected_states["6"]
    assert store.lookups("vertragsstatus") == expected_states
    assert store.snapshot_rows("vertragsstatus", ["6"])["6"].deleted is True
    assert {r.entity for r in outbox_rows(store)} == {"customer", "contract"}
    assert outbox(store, result.import_id) == expected_delta(N, 1)


# ---------------------------------------------------------------- echoes of our own writes
ECHO_N = 60     # customers of the deliveries of the echo tests


def with_cells(path: Path, cells: dict[str, dict[str, str]]) -> Path:
    """The delivery at ``path`` with these kunden cells set (Kundennummer -> column -> CSV text)."""
    def change(header, rows):
        for row in rows:
            for column, text in cells.get(row[header.index("Kundennummer")], {}).items():
                row[header.index(column)] = text
        return header, rows
    return rewrite(path, CUSTOMERS, change)


def delta_rows(store: SqlDailyUpStore, import_id: int) -> dict[str, tuple[str, list[str], list[str]]]:
    """Kundennummer -> (change, changed_fields, echoed_fields) of an import's customer deltas."""
    with store.engine.connect() as conn:
        return {r.key: (r.change, list(r.changed_fields), list(r.echoed_fields or ()))
                for r in conn.execute(select(DELTAS).where(DELTAS.c.import_id == import_id,
                                                           DELTAS.c.entity == "customer"))}


def test_echoes_are_suppressed_per_field(store, importer, tmp_path):
    importer.import_file(deliver(tmp_path, 0, ECHO_N))
    old = parsed(deliver(tmp_path, 0, ECHO_N), CUSTOMERS)
    expected = expected_delta(ECHO_N, 1)
    touched = set().union(*expected["customer"].values())
    persons = [k for k in sorted(old) if k not in touched and old[k]["Personentyp"] == "natuerlich"]
    ours, partial, theirs, unconfirmed, by_text = persons[:5]
    anrede = dict(LOOKUPS["anreden"])
    other_code = next(code for code in anrede if code != old[by_text]["Anrede"])
    path = with_cells(deliver(tmp_path, 1, ECHO_N), {
        ours: {"Mobil": "0170 1111111"},
        partial: {"Mobil": "0170 2222222", "Ort": "Neustadt"},
        theirs: {"Mobil": "0170 3333333"},
        unconfirmed: {"Mobil": "0170 4444444"},
        by_text: {"Anrede": other_code},
    })
    new = parsed(path, CUSTOMERS)
    # We wrote what the delivery now shows; unchanged columns too, lookups by their text.
    store.remember_echo("customer", ours, {"Mobil": "0170 1111111", "Ort": new[ours]["Ort"],
                                           "Anrede": anrede[new[ours]["Anrede"]]})
    # We wrote the Mobil; the Ort was changed in Ameise.
    store.remember_echo("customer", partial, {"Mobil": "0170 2222222"})
    # We wrote another Mobil than Ameise has: the change is someone else's.
    store.remember_echo("customer", theirs, {"Mobil": "0170 9999999"})
    # The changed column is ours, but the text of another ID is not the delivered Anrede.
    wrong = next(text for code, text in LOOKUPS["anreden"] if code != new[unconfirmed]["Anrede"])
    store.remember_echo("customer", unconfirmed, {"Mobil": "0170 4444444", "Anrede": wrong})
    # We wrote the Anrede as Ameise's API takes it, as text; the DailyUp has its ID.
    store.remember_echo("customer", by_text, {"Anrede": anrede[other_code]})

    result = importer.import_file(path)

    rows = delta_rows(store, result.import_id)
    assert {k for k, (change, _, _) in rows.items() if change == "changed"} == (
        expected["customer"]["changed"] | {partial, theirs})
    assert rows[partial] == ("changed", ["Ort"], ["Mobil"])
    assert rows[theirs] == ("changed", ["Mobil"], [])
    assert result.deltas["suppressed"] == 3
    assert {s["key"] for s in result.samples["suppressed"]} == {ours, unconfirmed, by_text}
    # A column leaves the mark when delivered as we wrote it, or sent to the CRM with another value.
    assert [k for k in (ours, partial, theirs, unconfirmed, by_text) if store.echo("customer", k) is not None] == [
        unconfirmed]
    assert store.echo("customer", unconfirmed) == {"Anrede": wrong}    # unchanged, so maybe not exported yet
    # The snapshot takes the delivered values either way.
    assert store.snapshot_rows(CUSTOMERS, [ours])[ours].data == new[ours]


def test_a_created_record_is_suppressed_only_when_every_delivered_value_is_ours(store, importer, tmp_path):
    path = deliver(tmp_path, 0, ECHO_N)
    rows = parsed(path, CUSTOMERS)
    anrede, laender = dict(LOOKUPS["anreden"]), dict(LOOKUPS["laender"])
    whole, part = [k for k in sorted(rows) if rows[k]["Personentyp"] == "natuerlich"][:2]
    # Every value Ameise delivers of ``whole`` is one we wrote (lookups as text); key and volatile columns aside.
    written = {c: v for c, v in rows[whole].items()
               if v and c not in ("Kundennummer", "LetzterLogin", "GeaendertAm")}
    written.update(Anrede=anrede[written["Anrede"]], Land=laender[written["Land"]])
    store.remember_echo("customer", whole, written)
    # Of ``part`` we wrote the name and the phone; Ameise has more (Geburtsdatum, Ort, ...).
    store.remember_echo("customer", part, {"Nachname": rows[part]["Nachname"], "Telefon": rows[part]["Telefon"],
                                           "Vorname": "not what Ameise has"})

    result = importer.import_file(path)

    delta = delta_rows(store, result.import_id)
    assert whole not in delta and result.deltas["suppressed"] == 1
    assert result.deltas["customer.created"] == ECHO_N - 1
    assert delta[part] == ("created", [], ["Nachname", "Telefon"])
    # The record went to the CRM with Ameise's Vorname: nothing of the mark is left to recognise.
    assert store.echo("customer", whole) is None and store.echo("customer", part) is None


def test_a_column_sent_to_the_crm_with_another_value_leaves_the_mark(store, importer, tmp_path):
    importer.import_file(deliver(tmp_path, 0, ECHO_N))
    touched = set().union(*expected_delta(ECHO_N, 1)["customer"].values())
    key = next(k for k in sorted(parsed(deliver(tmp_path, 0, ECHO_N), CUSTOMERS)) if k not in touched)
    # We wrote Mobil A; Ameise's user set B before the next export.
    store.remember_echo("customer", key, {"Mobil": "0170 1000001"})
    first = importer.import_file(with_cells(deliver(tmp_path, 1, ECHO_N), {key: {"Mobil": "0170 2000002"}}))
    assert delta_rows(store, first.import_id)[key] == ("changed", ["Mobil"], [])
    assert store.echo("customer", key) is None
    # The user sets A again: the CRM has B by now, so A is news for it, not an echo.
    second = importer.import_file(with_cells(deliver(tmp_path, 2, ECHO_N), {key: {"Mobil": "0170 1000001"}}))

    assert delta_rows(store, second.import_id)[key] == ("changed", ["Mobil"], [])
    assert "suppressed" not in second.deltas


def test_an_ameise_edit_back_to_the_delivered_value_after_our_write_reaches_the_crm(store, importer, tmp_path):
    today = datetime.now(UTC).date()

    def delivery_of(day):
        folder = tmp_path / f"day-{day}"
        folder.mkdir()
        return write_delivery(folder, customers=ECHO_N, first_day=day)   # the same rows on every day

    importer.import_file(delivery_of(today - timedelta(days=3)))
    key = next(k for k, row in sorted(parsed(delivery_of(today - timedelta(days=4)), CUSTOMERS).items())
               if row.get("Ort"))
    # We wrote Ort "Bonn" today; Ameise's user set the delivered value again before the export.
    store.remember_echo("customer", key, {"Ort": "Bonn"})

    same_day = importer.import_file(delivery_of(today))
    # Exported on the day of our write: maybe before it, so nothing is decided yet.
    assert key not in delta_rows(store, same_day.import_id)
    assert store.echo("customer", key) == {"Ort": "Bonn"}

    next_day = importer.import_file(delivery_of(today + timedelta(days=1)))

    assert delta_rows(store, next_day.import_id)[key] == ("changed", ["Ort"], [])
    assert store.echo("customer", key) is None


def test_a_record_without_an_echo_mark_names_no_echoes(store, importer, tmp_path):
    importer.import_file(deliver(tmp_path, 0, ECHO_N))
    result = importer.import_file(deliver(tmp_path, 1, ECHO_N))

    assert "suppressed" not in result.deltas
    assert all(echoed == [] for _, _, echoed in delta_rows(store, result.import_id).values())


# ---------------------------------------------------------------- publishing
def carried(messages: list) -> int:
    """How many deltas the messages carry."""
    return sum(len(m.payload["deltas"]) for m in messages)


def take(url: str, queue, *, expect: int, timeout: float = 10.0) -> list:
    """Consume the messages of ``expect`` deltas (auto-acked), then wait a little for any surplus."""
    messages: list = []
    with Connection(url) as conn:
        with Consumer(conn, [queue], accept=["application/json"], no_ack=True, prefetch_count=1000,
                      callbacks=[lambda body, message: messages.append(message)]):
            deadline = time.monotonic() + timeout
            settle = None
            while time.monotonic() < (settle or deadline):
                if settle is None and carried(messages) >= expect:
                    settle = time.monotonic() + 0.3
                try:
                    conn.drain_events(timeout=0.1)
                except TimeoutError:
                    pass
    return messages


def drain_memory(queue) -> list:
    with Connection("memory://") as conn:
        simple = conn.SimpleQueue(queue, accept=["application/json"])
        messages = []
        while True:
            try:
                message = simple.get(block=False)
            except simple.Empty:
                return messages
            message.ack()
            messages.append(message)


class BrokerLink(TcpProxy):
    """A proxy to the broker that can go down: open connections are cut, new ones closed at once."""

    down = False

    def go_down(self) -> None:
        self.down = True
        self.cut()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            upstream = socket.create_connection(self._target)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()


def check_messages(store: SqlDailyUpStore, messages: list) -> None:
    """Every delta of the outbox arrived exactly once, in id order, as a valid AmeiseRecordChanged.

    The deltas travel up to 100 to a persistent ``ameise.deltas`` message, each message
    named by the outbox ids of its first and last delta.
    """
    rows = outbox_rows(store)
    by_id = {r.id: r for r in rows}
    events = []
    for message in messages:
        assert message.delivery_info["routing_key"] == "ameise.deltas"
        assert message.properties["delivery_mode"] == 2
        deltas = load_or_raise(AmeiseDeltasSchema(), message.payload)
        assert 1 <= len(deltas) <= 100
        first, _, last = message.properties["message_id"].removeprefix("dailyup-outbox:").partition("-")
        assert (f"{by_id[int(first)].import_id}:{by_id[int(first)].entity}:{by_id[int(first)].key}",
                f"{by_id[int(last)].import_id}:{by_id[int(last)].entity}:{by_id[int(last)].key}") == (
                    deltas[0]["delta_id"], deltas[-1]["delta_id"])
        events.extend(load_or_raise(AmeiseRecordChangedSchema(), delta) for delta in deltas)
    assert len({m.properties["message_id"] for m in messages}) == len(messages)
    assert [e.delta_id for e in events] == [f"{r.import_id}:{r.entity}:{r.key}" for r in rows]
    delivered_on = {i.id: i.delivered_on.isoformat() for i in store.imports(limit=100)}
    for event, row in zip(events, rows):
        assert (event.import_id, event.entity, event.change, event.key, list(event.changed_fields),
                event.delivered_on) == (row.import_id, row.entity, row.change, row.key, row.changed_fields,
                                        delivered_on[row.import_id])
    assert all(r.published_at is not None for r in rows)


def test_deltas_are_published_after_the_commit_on_memory(store, tmp_path, namespace):
    topology = build_topology(namespace)
    publisher = MemoryPublisher(topology)
    importer = DailyUpImporter(store, publisher=publisher, topology=topology)
    try:
        first = importer.import_file(deliver(tmp_path, 0))
        second = importer.import_file(deliver(tmp_path, 1))
    finally:
        publisher.close()

    assert (first.state, second.state) == ("published", "published")
    assert first.published + second.published == len(outbox_rows(store))
    check_messages(store, drain_memory(topology.ameise_to_crm))
    assert importer.publish_pending() == 0


def test_a_delta_that_fails_its_contract_goes_to_the_dead_letters_and_the_rest_is_sent(store, tmp_path, namespace):
    topology = build_topology(namespace)
    DailyUpImporter(store).import_file(deliver(tmp_path, 0))
    first = outbox_rows(store)[0]
    with store.engine.begin() as conn:   # a key the message contract refuses
        conn.execute(DELTAS.update().where(DELTAS.c.id == first.id).values(key="50 01"))
    publisher = MemoryPublisher(topology)
    try:
        published = DailyUpImporter(store, publisher=publisher, topology=topology).publish_pending()
    finally:
        publisher.close()

    total = len(outbox_rows(store))
    assert published == total and store.count_unpublished() == 0
    [dead] = drain_memory(topology.dead_letters)
    assert dead.headers["x-error-kind"] == "contract-violation" and "key" in dead.headers["x-error"]
    assert dead.headers["x-original-routing-key"] == f"ameise.{first.entity}.{first.change}"
    assert dead.headers["x-original-exchange"] == topology.events.name
    assert dead.payload["key"] == "50 01" and dead.properties["message_id"] == f"{first.import_id}:{first.entity}:50 01"
    assert carried(drain_memory(topology.ameise_to_crm)) == total - 1


@pytest.mark.rabbitmq
def test_a_broker_outage_leaves_the_outbox_for_publish_pending(store, tmp_path, rabbitmq_url, namespace):
    topology = build_topology(namespace)
    down = Publisher(CLOSED_PORT, topology, connect_timeout=1)
    result = DailyUpImporter(store, publisher=down, topology=topology).import_file(deliver(tmp_path, 0))

    assert result.state == "accepted" and result.published == 0
    assert "the deltas wait in the outbox" in result.message
    assert store.count_unpublished() == len(outbox_rows(store)) > 0

    publisher = Publisher(rabbitmq_url, topology, confirm_timeout=5)
    try:
        importer = DailyUpImporter(store, publisher=publisher, topology=topology)
        assert importer.publish_pending() == len(outbox_rows(store))
        later = importer.import_file(deliver(tmp_path, 1))
    finally:
        publisher.close()

    assert store.get_import(result.import_id).state == "published" and later.state == "published"
    check_messages(store, take(rabbitmq_url, topology.ameise_to_crm, expect=len(outbox_rows(store))))


@pytest.mark.rabbitmq
def test_a_broker_lost_half_way_resumes_without_sending_anything_twice(store, tmp_path, rabbitmq_url, namespace):
    topology = build_topology(namespace)
    with BrokerLink(rabbitmq_url) as proxy:
        publisher = Publisher(proxy.url, topology, confirm_timeout=5, connect_timeout=1)

        def lose_the_broker(stage: str, done: int, total: int | None) -> None:
            # After the first confirmed batch the broker goes away and cannot be reached again.
            if stage == "publish" and done > 0:
                proxy.go_down()

        importer = DailyUpImporter(store, publisher=publisher, topology=topology, progress=lose_the_broker)
        try:
            result = importer.import_file(deliver(tmp_path, 0, customers=500))
        finally:
            publisher.close()
    total = len(outbox_rows(store))
    assert total > 1000, "two batches at least"
    assert result.state == "accepted" and result.published == 1000
    assert store.count_unpublished() == total - 1000

    publisher = Publisher(rabbitmq_url, topology, confirm_timeout=5)
    try:
        assert DailyUpImporter(store, publisher=publisher, topology=topology).publish_pending() == total - 1000
    finally:
        publisher.close()

    assert store.get_import(result.import_id).state == "published"
    check_messages(store, take(rabbitmq_url, topology.ameise_to_crm, expect=total))


def test_without_a_publisher_the_deltas_wait(store, importer, tmp_path):
    result = importer.import_file(deliver(tmp_path, 0))

    assert result.state == "accepted"
    assert importer.publish_pending() == 0
    assert store.count_unpublished() == len(outbox_rows(store))


# ---------------------------------------------------------------- rows delivered as they were
def raw_hashes(store: SqlDailyUpStore, table: str = CUSTOMERS) -> dict[str, bytes | None]:
    with store.engine.connect() as conn:
        return dict(conn.execute(select(SNAPSHOT.c.key, SNAPSHOT.c.raw_hash).where(SNAPSHOT.c.table == table)).all())


def counting_loader(monkeypatch) -> list[str]:
    """Count the rows the reader validates (loads through the contract), by table."""
    from syncbridge.dailyup import reader

    loaded: list[str] = []
    original = reader.fields_loader

    def fields_loader(table, known, **options):
        load = original(table, known, **options)

        def counted(fields):
            loaded.append(table)
            return load(fields)
        return counted

    monkeypatch.setattr(reader, "fields_loader", fields_loader)
    return loaded


def test_only_rows_whose_text_changed_are_validated_again(store, importer, tmp_path, monkeypatch):
    importer.import_file(deliver(tmp_path, 0))
    delivered = len(parsed(deliver(tmp_path, 1), CUSTOMERS))
    loaded = counting_loader(monkeypatch)

    result = importer.import_file(deliver(tmp_path, 1))

    expected = expected_delta(N, 1)
    assert outbox(store, result.import_id) == expected
    new_or_changed = {e: len(c["created"]) + len(c["changed"]) for e, c in expected.items()}
    assert result.rows[CUSTOMERS] == delivered
    # Volatile columns move on most rows; only rows with another stable text are read through the contract.
    assert loaded.count(CUSTOMERS) == new_or_changed["customer"]
    assert loaded.count("vertraege") == new_or_changed["contract"]


def test_after_the_upgrade_rows_without_a_raw_digest_are_compared_by_value_and_get_one(store, importer, tmp_path,
                                                                                      monkeypatch):
    importer.import_file(deliver(tmp_path, 0))
    with store.engine.begin() as conn:           # a snapshot stored before raw digests existed
        conn.execute(SNAPSHOT.update().values(raw_hash=None))
    loaded = counting_loader(monkeypatch)

    result = importer.import_file(deliver(tmp_path, 1))

    assert outbox(store, result.import_id) == expected_delta(N, 1)       # no more and no fewer changes
    assert loaded.count(CUSTOMERS) == result.rows[CUSTOMERS]             # every row compared by value once
    delivered = {k for (t, k), row in snapshot(store).items() if t == CUSTOMERS and not row[2]}
    assert all(raw_hashes(store)[key] is not None for key in delivered)  # and given its digest
    loaded.clear()
    second = importer.import_file(deliver(tmp_path, 2))
    assert outbox(store, second.import_id) == expected_delta(N, 2)
    expected = expected_delta(N, 2)["customer"]
    assert loaded.count(CUSTOMERS) == len(expected["created"]) + len(expected["changed"])


def _sorted_unescaped(stable: dict) -> str:
    return hashlib.sha256(json.dumps(stable, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _column_order_ascii(stable: dict) -> str:
    return hashlib.sha256(json.dumps(stable).encode()).hexdigest()


@pytest.mark.parametrize("former", [_sorted_unescaped, _column_order_ascii])
def test_a_snapshot_hashed_by_a_former_definition_gives_the_same_deltas_and_gets_todays_hashes(store, importer,
                                                                                              tmp_path, former):
    """Row hashes were once the SHA-256 of the values' JSON sorted by column name, non-ASCII unescaped, then
    of ``json.dumps`` of the values in column order (ASCII, with spaces).

    A stored hash of another definition only makes its row a candidate: the values decide the delta.
    """
    importer.import_file(deliver(tmp_path, 0))
    moved = 0
    with store.engine.begin() as conn:           # the snapshot as a former definition stored it
        for row in conn.execute(select(SNAPSHOT.c.table, SNAPSHOT.c.key, SNAPSHOT.c.data)).all():
            stable = {c: v for c, v in in_column_order(row.table, row.data).items()
                      if c not in VOLATILE_COLUMNS.get(row.table, ())}
            hashed = former(stable)
            moved += hashed != row_hash(row.table, row.data)
            conn.execute(SNAPSHOT.update().where(SNAPSHOT.c.table == row.table, SNAPSHOT.c.key == row.key)
                         .values(hash=hashed, raw_hash=None))
    assert moved > N      # every record's hash

    result = importer.import_file(deliver(tmp_path, 1))

    assert outbox(store, result.import_id) == expected_delta(N, 1)       # no more and no fewer changes
    stored = snapshot(store)
    assert all(hashed == row_hash(table, data) for (table, _), (hashed, data, deleted, _) in stored.items()
               if not deleted)


def test_a_new_text_of_the_same_values_is_no_change_and_its_digest_is_kept(store, importer, tmp_path, monkeypatch):
    importer.import_file(deliver(tmp_path, 0))
    before = raw_hashes(store, "vertraege")

    def reformat(header, rows):
        brutto = header.index("BeitragBrutto")
        for row in rows:
            if "," in row[brutto]:
                row[brutto] = row[brutto] + "00"     # 12,5 -> 12,500: the same amount
        return header, rows

    path = rewrite(deliver(tmp_path, 0), "vertraege", reformat)
    path = path.rename(path.with_name("DailyUp_100200_20261231.zip"))
    result = importer.import_file(path)

    assert result.state == "accepted" and result.deltas == {}
    after = raw_hashes(store, "vertraege")
    assert sum(after[k] != before[k] for k in before) > 0             # the new text's digest is stored
    loaded = counting_loader(monkeypatch)
    again = rewrite(path, "vertraege", lambda header, rows: (header, rows))
    again = again.rename(again.with_name("DailyUp_100200_20270101.zip"))
    with zipfile.ZipFile(again, "a") as archive:
        archive.writestr("note.txt", "another file, the same tables")
    assert importer.import_file(again).deltas == {}
    assert loaded.count("vertraege") == 0


def test_a_first_delivery_with_a_key_twice_creates_neither_row_of_it(store, importer, tmp_path):
    twice: list[str] = []

    def duplicate(header, rows):
        twice.append(rows[5][0])
        rows.append(list(rows[5]))
        return header, rows

    path = rewrite(deliver(tmp_path, 0), CUSTOMERS, duplicate)
    result = importer.import_file(path)

    assert result.state == "accepted" and result.errors == 1
    assert ("kunden", twice[0]) not in snapshot(store)
    assert twice[0] not in outbox(store, result.import_id)["customer"]["created"]
    assert result.deltas["customer.created"] == N - 1


def test_digests_read_ahead_are_those_the_session_would_read(store, importer, tmp_path):
    importer.import_file(deliver(tmp_path, 0))
    rows = snapshot(store)
    delivered = {t: {k: digest for k, digest in raw_hashes(store, t).items() if not rows[t, k][2]}
                 for t in (CUSTOMERS, "vertraege", "anreden")}

    with store.session(dry_run=True) as session:
        assert session.raw_digests(CUSTOMERS, then="vertraege") == delivered[CUSTOMERS]
        assert session.raw_digests("vertraege", then=CUSTOMERS) == delivered["vertraege"]
        # Asked for another table than the one read ahead: that one is read then.
        assert session.raw_digests("anreden") == delivered["anreden"]


def test_a_new_text_of_the_same_values_gets_its_digest_beside_changed_rows(store, importer, tmp_path):
    importer.import_file(deliver(tmp_path, 0))
    before = raw_hashes(store, "vertraege")
    reformatted: list[str] = []

    def reformat(header, rows):
        brutto, key = header.index("BeitragBrutto"), header.index("Vertragsnummer")
        for row in rows[2:]:
            if "," in row[brutto] and len(reformatted) < 3:
                row[brutto] = row[brutto] + "00"     # 12,5 -> 12,500: the same amount
                reformatted.append(row[key])
        rows[0][brutto], rows[1][brutto] = "1,25", "2,5"   # and two other amounts
        return header, rows

    path = rewrite(deliver(tmp_path, 0), "vertraege", reformat)
    result = importer.import_file(path.rename(path.with_name("DailyUp_100200_20261231.zip")))

    assert result.deltas.get("contract.changed") == 2
    after = raw_hashes(store, "vertraege")
    assert [k for k in reformatted if after[k] == before[k]] == []      # the new text's digest is stored
