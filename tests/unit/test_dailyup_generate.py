"""The synthetic deliveries: deterministic, realistic, and read back exactly through the reader."""
from __future__ import annotations

import hashlib
import re
from datetime import date
from itertools import islice

import pytest

from contracts.dailyup import row_schema
from syncbridge.dailyup.generate import expected_delta, generation_rows, write_delivery
from syncbridge.dailyup.reader import open_delivery
from syncbridge.deliveries import CONTRACTS, CUSTOMERS, LOOKUP_TABLES, TABLES, ParsedRow, changed_fields

CUSTOMERS_N = 400


def read_back(path) -> dict[str, dict[str, ParsedRow]]:
    """Every table of a delivery by key; every row must be valid."""
    with open_delivery(path) as opened:
        tables = {}
        for table in opened.tables:
            items = list(opened.rows(table))
            assert all(isinstance(i, ParsedRow) for i in items), [i for i in items if not isinstance(i, ParsedRow)][:3]
            tables[table] = {i.key: i for i in items}
            assert len(tables[table]) == len(items)
    return tables


@pytest.fixture(scope="module")
def generations(tmp_path_factory):
    """Generations 0 to 4 of one delivery series, read back."""
    folder = tmp_path_factory.mktemp("deliveries")
    return [read_back(write_delivery(folder, customers=CUSTOMERS_N, generation=g)) for g in range(5)]


def folder(tmp_path, name: str):
    path = tmp_path / name
    path.mkdir()
    return path


def naive_delta(old: dict[str, ParsedRow], new: dict[str, ParsedRow], table: str) -> dict[str, set[str]]:
    both = old.keys() & new.keys()
    return {"created": set(new) - set(old), "deleted": set(old) - set(new),
            "changed": {k for k in both if changed_fields(table, old[k].data, new[k].data)}}


def test_file_name_is_hauptvermittler_and_day_of_the_generation(tmp_path):
    path = write_delivery(tmp_path, customers=3, generation=30, hauptvermittler="A77", first_day=date(2026, 11, 2))
    assert path.name == "DailyUp_A77_20261202.zip"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]     # no partial file left behind
    with open_delivery(path) as opened:
        assert opened.tables == TABLES


def test_same_arguments_same_bytes(tmp_path):
    first = write_delivery(folder(tmp_path, "a"), customers=50, generation=2)
    second = write_delivery(folder(tmp_path, "b"), customers=50, generation=2)
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    other = write_delivery(folder(tmp_path, "c"), customers=50, generation=2, seed=8)
    assert other.read_bytes() != first.read_bytes()


def test_generation_zero_creates_everything(generations):
    delta = expected_delta(CUSTOMERS_N, 0)
    assert delta["customer"]["created"] == set(generations[0][CUSTOMERS])
    assert delta["contract"]["created"] == set(generations[0][CONTRACTS])
    assert not any(delta[e][c] for e in delta for c in ("changed", "deleted"))


@pytest.mark.parametrize("g", [1, 2, 3, 4])
def test_expected_delta_is_what_a_comparison_of_two_deliveries_finds(generations, g):
    expected = expected_delta(CUSTOMERS_N, g)
    assert naive_delta(generations[g - 1][CUSTOMERS], generations[g][CUSTOMERS], CUSTOMERS) == expected["customer"]
    assert naive_delta(generations[g - 1][CONTRACTS], generations[g][CONTRACTS], CONTRACTS) == expected["contract"]


def test_every_kind_of_change_happens(generations):
    totals = {(e, c): sum(len(expected_delta(CUSTOMERS_N, g)[e][c]) for g in range(1, 5))
              for e in ("customer", "contract") for c in ("created", "changed", "deleted")}
    assert all(totals.values()), totals
    assert totals["customer", "changed"] >= 4 * CUSTOMERS_N // 200
    # A deleted customer's contracts go with it; a new one comes with its own.
    for g in range(1, 5):
        delta = expected_delta(CUSTOMERS_N, g)
        owners = {generations[g - 1][CONTRACTS][k].data["Kundennummer"] for k in delta["contract"]["deleted"]}
        assert owners <= delta["customer"]["deleted"]
        new_owners = {generations[g][CONTRACTS][k].data["Kundennummer"] for k in delta["contract"]["created"]}
        assert new_owners == delta["customer"]["created"]


def test_volatile_columns_move_without_being_a_change(generations):
    old, new = generations[0][CUSTOMERS], generations[1][CUSTOMERS]
    moved = {k for k in old.keys() & new.keys() if old[k].data != new[k].data}
    assert len(moved) > CUSTOMERS_N // 2
    assert len(expected_delta(CUSTOMERS_N, 1)["customer"]["changed"]) < 10


def test_changed_customers_change_telefon_strasse_or_email(generations):
    for g in range(1, 5):
        for key in expected_delta(CUSTOMERS_N, g)["customer"]["changed"]:
            old, new = generations[g - 1][CUSTOMERS][key], generations[g][CUSTOMERS][key]
            fields = changed_fields(CUSTOMERS, old.data, new.data)
            assert len(fields) == 1 and fields[0] in ("Telefon", "Strasse", "Email")


def test_data_looks_german_and_real(generations):
    customers = generations[0][CUSTOMERS]
    contracts = generations[0][CONTRACTS]
    assert 1.3 <= len(contracts) / len(customers) <= 1.7
    assert all(re.fullmatch(r"[0-9]{10}", k) for k in customers)
    text = " ".join(str(v) for row in customers.values() for v in row.data.values())
    assert all(ch in text for ch in "äöüß")
    assert any(r.data["PLZ"].startswith("0") for r in customers.values())
    legal = [r for r in customers.values() if r.data["Personentyp"] == "juristisch"]
    assert legal and all(r.data["Firma"] for r in legal)
    assert any(r.data["Rechtsform"] for r in legal) and any(r.data["Rechtsform"] is None for r in legal)
    assert all(r.data["Nachname"] for r in customers.values() if r.data["Personentyp"] == "natuerlich")
    assert {r.data["Kundennummer"] for r in contracts.values()} <= set(customers)
    assert generations[0]["sparten"]["010"].data["Text"] == "Kfz-Haftpflicht"
    assert all(generations[0][t] for t in LOOKUP_TABLES)


def test_messy_fields_round_trip(tmp_path):
    raw = {(t, row[("Kundennummer", "Vertragsnummer")[t == CONTRACTS]]): row
           for t, row in generation_rows(3000, 0) if t in (CUSTOMERS, CONTRACTS)}
    messy = {k: row for k, row in raw.items() if any(c in v for v in row.values() for c in ';"\n')}
    kinds = {c for row in messy.values() for v in row.values() for c in ';"\n' if c in v}
    assert kinds == {";", '"', "\n"} and len(messy) >= 10
    read = read_back(write_delivery(tmp_path, customers=3000))
    for (table, key), row in messy.items():
        expected = row_schema(table).load(row)
        assert read[table][key].data == expected
        assert any(c in v for v in read[table][key].data.values() if v for c in ';"\n')


@pytest.mark.parametrize(("encoding", "bom", "detected"), [
    ("utf-8", True, "utf-8-sig"), ("cp1252", False, "cp1252"), ("iso-8859-1", False, "cp1252")])
def test_every_encoding_reads_back_the_same(tmp_path, encoding, bom, detected):
    plain = read_back(write_delivery(folder(tmp_path, "plain"), customers=200))
    path = write_delivery(folder(tmp_path, "other"), customers=200, encoding=encoding, bom=bom)
    with open_delivery(path) as opened:
        assert opened.encodings[CUSTOMERS] == detected
        assert set(opened.encodings.values()) <= {detected, "utf-8"}   # pure ASCII files are UTF-8 as well
    other = read_back(path)
    assert {t: {k: r.data for k, r in rows.items()} for t, rows in other.items()} == \
        {t: {k: r.data for k, r in rows.items()} for t, rows in plain.items()}


def test_rows_stream_without_building_the_delivery_first():
    # A billion customers: the first rows come at once, as nothing is computed ahead.
    first = list(islice(generation_rows(1_000_000_000, 3), 3))
    assert [table for table, _ in first] == [CUSTOMERS] * 3
    assert len({row["Kundennummer"] for _, row in first}) == 3
