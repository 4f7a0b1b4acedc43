"""The fast row loader of the DailyUp contracts answers exactly as the row schemas do."""
from __future__ import annotations

import random
from datetime import datetime

import pytest
from marshmallow import ValidationError

from contracts.dailyup import date_parser, decimal_text, fields_loader, row_loader, row_schema
from syncbridge.dailyup.generate import generation_rows
from syncbridge.deliveries import CONTRACTS, CUSTOMERS, LOOKUP_TABLES, normalize_decimal


def outcome(load, raw: dict):
    try:
        return "ok", load(raw)
    except ValidationError as exc:
        return "error", exc.messages


def generated(table: str, count: int = 300) -> list[dict[str, str]]:
    return [dict(row) for kind, row in generation_rows(120, 0) if kind == table][:count]


BROKEN = [
    {"Kundennummer": "12345"},                          # not 10 digits
    {"Kundennummer": "  "},                             # empty required
    {"Personentyp": "robot"},                           # not a choice
    {"Personentyp": "natuerlich", "Nachname": " "},     # the row check: a person needs a Nachname
    {"Personentyp": "juristisch", "Firma": ""},         # the row check: a company needs a Firma
    {"Email": "no address"},
    {"Geburtsdatum": "31.02.1990"},
    {"Geburtsdatum": "1990-01-31"},
]


@pytest.mark.parametrize("table", [CUSTOMERS, CONTRACTS, *LOOKUP_TABLES])
def test_valid_rows_load_to_the_schemas_values(table):
    schema, fast = row_schema(table).load, row_loader(table)
    rows = generated(table) if table in (CUSTOMERS, CONTRACTS) else [{"ID": " 7 ", "Text": " Sieben "}]
    for raw in rows:
        assert outcome(fast, raw) == outcome(schema, raw)
        assert list(fast(raw)) == list(schema(raw))   # the same columns in the same order


@pytest.mark.parametrize("change", BROKEN)
def test_a_refused_row_raises_the_schemas_messages(change):
    schema, fast = row_schema(CUSTOMERS).load, row_loader(CUSTOMERS)
    raw = {**generated(CUSTOMERS, 1)[0], **change}
    assert outcome(fast, raw)[0] == "error"
    assert outcome(fast, raw) == outcome(schema, raw)


def test_a_missing_required_column_and_other_options_are_the_schemas_too():
    raw = generated(CONTRACTS, 1)[0]
    del raw["Vertragsnummer"]
    assert outcome(row_loader(CONTRACTS), raw) == outcome(row_schema(CONTRACTS).load, raw)
    assert outcome(row_loader(CONTRACTS), raw)[0] == "error"
    dotted = {**generated(CONTRACTS, 1)[0], "BeitragBrutto": "1,234.50", "Beginn": "2024-01-31"}
    options = {"date_format": "%Y-%m-%d", "decimal_comma": False}
    assert outcome(row_loader(CONTRACTS, **options), dotted) == outcome(row_schema(CONTRACTS, **options).load, dotted)
    assert outcome(row_loader(CONTRACTS, **options), dotted)[0] == "error"   # German dates and numbers left


# Values that exercise every branch of the compiled loader: empty, padded, no text, odd dates and numbers.
EDGE_VALUES = [
    "", "  ", " x ", None, 5, "\u00a0", "1234567890", " 1234567890 ", "123456789", "natuerlich", "juristisch",
    "robot", "a@b.de", " a@b.de ", "a@b", "010", "10", "01.03.2020", " 29.02.2024 ", "29.02.2023", "1.3.2020",
    "00.01.2020", "31.04.2021", "01.13.2020", "01.01.0000", "2024-01-31", "\u0661\u0662.\u0660\u0663.\u0662\u0660\u0662\u0660",
    "1.234,56", "1234,50", "-0,00", "+5", "007", "0,0010", "12.5", "1,234.50", "1.2345", "-1.000.000,01",
    "99999999999999999999999999999,5", "123456789012345678,12", "1e5", "NaN", "\u0661\u0662", "VN 1", "X" * 41,
]


@pytest.mark.parametrize("options", [{}, {"date_format": "%Y-%m-%d", "decimal_comma": False}])
@pytest.mark.parametrize("table", [CUSTOMERS, CONTRACTS, LOOKUP_TABLES[0]])
def test_rows_with_edge_values_load_as_the_schema_loads_them(table, options):
    schema, fast = row_schema(table, **options).load, row_loader(table, **options)
    rows = generated(table, 100) if table in (CUSTOMERS, CONTRACTS) else [{"ID": "7", "Text": "Sieben"}] * 100
    columns = list(rows[0])
    chance = random.Random(13)
    for base in rows * 5:
        raw = dict(base)
        for column in chance.sample(columns, chance.randint(1, min(3, len(columns)))):
            if chance.random() < 0.1:
                del raw[column]
            else:
                raw[column] = chance.choice(EDGE_VALUES)
        assert outcome(fast, raw) == outcome(schema, raw), raw
        if outcome(fast, raw)[0] == "ok":
            assert list(fast(raw)) == list(schema(raw))


def test_decimal_text_is_normalize_decimal():
    chance = random.Random(7)
    numbers = ["0", "-0", "+0", "0.0", "-0.000", "007", "100", "100.00", "0.5", "-0.50", "+12.340", "1" * 20,
               "1" * 21, "9" * 19 + ".9", "0." + "0" * 25 + "1", "12.", ".5", "1.2.3", "\u0661\u0662", "1e5", "-"]
    numbers += [f"{chance.choice('+-')}{chance.randint(0, 10 ** chance.randint(0, 12))}"
                f".{chance.randint(0, 999):0{chance.randint(3, 6)}d}" for _ in range(2000)]
    for text in numbers:
        try:
            expected = normalize_decimal(text)
        except ValueError:
            expected = "error"
        try:
            assert decimal_text(text) == expected, text
        except ValueError:
            assert expected == "error", text


def test_german_dates_are_read_as_strptime_reads_them():
    parse = date_parser("%d.%m.%Y").__wrapped__
    texts = [f"{day:02d}.{month:02d}.{year}" for day in range(34) for month in range(14)
             for year in ("0000", "0001", "1900", "2023", "2024", "9999")]
    texts += ["1.3.2020", "01.03.20201", "01-03-2020", "\u0660\u0661.\u0660\u0663.\u0662\u0660\u0662\u0660", ""]
    for text in texts:
        try:
            expected = datetime.strptime(text, "%d.%m.%Y").date().isoformat()
        except ValueError:
            expected = "error"
        try:
            assert parse(text) == expected, text
        except ValueError:
            assert expected == "error", text


def test_the_tables_are_loaded_by_compiled_functions_not_the_schema():
    for table in (CUSTOMERS, CONTRACTS, *LOOKUP_TABLES):
        assert row_loader(table) is not row_schema(table).load


def as_fields(raw: dict, chance: random.Random) -> tuple[list[str], tuple[tuple[int, str], ...]]:
    """``raw`` as a CSV row: its columns in a random order, with unknown columns between them."""
    columns = list(raw) + [f"Extra{n}" for n in range(chance.randint(0, 2))]
    chance.shuffle(columns)
    fields = [raw.get(c, "x") for c in columns]
    return fields, tuple((i, c) for i, c in enumerate(columns) if c in raw)


@pytest.mark.parametrize("options", [{}, {"date_format": "%Y-%m-%d", "decimal_comma": False}])
@pytest.mark.parametrize("table", [CUSTOMERS, CONTRACTS, LOOKUP_TABLES[0]])
def test_a_row_read_from_its_fields_loads_as_its_mapping_does(table, options):
    """Columns in any order, unknown ones between them, some missing (required ones too), edge values."""
    by_mapping = row_loader(table, **options)
    rows = generated(table, 100) if table in (CUSTOMERS, CONTRACTS) else [{"ID": "7", "Text": "Sieben"}] * 100
    chance = random.Random(29)
    texts = [value for value in EDGE_VALUES if isinstance(value, str)]
    compiled = 0
    for base in rows * 5:
        raw = dict(base)
        for column in chance.sample(list(raw), chance.randint(0, min(3, len(raw)))):
            if chance.random() < 0.1:
                del raw[column]
            else:
                raw[column] = chance.choice(texts)
        fields, known = as_fields(raw, chance)
        load = fields_loader(table, known, **options)
        compiled += load.__name__ == "load_fields"
        assert outcome(load, fields) == outcome(by_mapping, raw), raw
        if outcome(load, fields)[0] == "ok":
            assert list(load(fields)) == list(by_mapping(raw))     # the same columns in the same order
    assert compiled > len(rows)     # most rows were read by compiled steps, not the mapping


def test_without_a_required_column_every_row_is_refused_as_the_schema_refuses_it():
    raw = generated(CONTRACTS, 1)[0]
    del raw["Vertragsnummer"]
    fields, known = as_fields(raw, random.Random(3))
    assert outcome(fields_loader(CONTRACTS, known), fields) == outcome(row_schema(CONTRACTS).load, raw)
    assert outcome(fields_loader(CONTRACTS, known), fields)[0] == "error"
