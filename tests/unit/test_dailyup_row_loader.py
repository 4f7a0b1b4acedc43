"""The fast row loader of the DailyUp contracts answers exactly as the row schemas do."""
from __future__ import annotations

import pytest
from marshmallow import ValidationError

from contracts.dailyup import row_loader, row_schema
from syncbridge.dailyup.generate import generation_rows
from syncbridge.deliveries import CONTRACTS, CUSTOMERS, LOOKUP_TABLES


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
