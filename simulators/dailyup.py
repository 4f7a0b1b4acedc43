"""The DailyUp delivery of the simulated Ameise: its customers and contracts as blau direkt would push them.

Written in the stand-in format of ``reference/dailyup.md`` (ZIP of ``;`` CSV
files, ``DD.MM.YYYY`` dates, decimal commas), with the lookup lists.  Which field
of the nested customer (``Person.Vorname``, ``Hauptwohnsitz.Postleitzahl``,
``Kontaktdaten[...]``) fills which column follows the bundled mapping's
``ameise_to_dailyup`` rules, the ones echo suppression uses.  Texts the simulator
keeps (Land "Deutschland", Rechtsform "GmbH") are delivered as the codes of the
lookup lists, as the real export does.
"""
from __future__ import annotations

import functools
import io
import zipfile
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from syncbridge.dailyup.generate import LOOKUPS, csv_bytes
from syncbridge.deliveries import COLUMNS, CONTRACTS, CUSTOMERS, DECIMAL_COLUMNS, LOOKUP_OF_COLUMN
from syncbridge.mapping import load_mapping

# Codes the simulator's demo data uses beyond the generated lookup lists.
EXTRA_LOOKUPS = {
    "gesellschaften": (("10330", "Muster Versicherung AG"),),
    "vertragsstatus": (("A", "aktiv"),),
    "zahlweisen": (("5", "jährlich (Sonderzahlweise)"),),
}
DATES = {"Geburtsdatum", "Beginn", "Ablauf"}
_mapping = functools.cache(load_mapping)


def lookup_lists() -> dict[str, tuple[tuple[str, str], ...]]:
    return {table: rows + EXTRA_LOOKUPS.get(table, ()) for table, rows in LOOKUPS.items()}


def _code_of(table: str, text: str) -> str:
    wanted = text.strip().lower()
    for code, label in lookup_lists()[table]:
        if label.lower() == wanted or code.lower() == wanted:
            return code
    return text


def _text(column: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if column in DECIMAL_COLUMNS:
        return f"{Decimal(str(value)):.2f}".replace(".", ",")
    if column in DATES:
        return date.fromisoformat(str(value)[:10]).strftime("%d.%m.%Y")
    return str(value)


def _changed_on(record: dict[str, Any]) -> str:
    stamp = record.get("GeaendertAm")
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).strftime("%d.%m.%Y") if stamp else ""
    except ValueError:
        return ""


def customer_row(record: dict[str, Any]) -> dict[str, str]:
    row = {column: "" for column in COLUMNS[CUSTOMERS]}
    row.update({"Kundennummer": record["Id"], "BenutzernameSimplr": record.get("Benutzername") or "",
                "GeaendertAm": _changed_on(record)})
    kind = "company" if (record.get("Person") or {}).get("Typ") == "juristisch" else "person"
    rules = _mapping().as_dailyup(kind)
    values = rules.columns(record)
    for column in {rule.dailyup: None for rule in rules.fields}:
        value = values.get(column)
        if column in LOOKUP_OF_COLUMN and value:
            value = _code_of(LOOKUP_OF_COLUMN[column], str(value))
        row[column] = _text(column, value)
    return row


def contract_row(record: dict[str, Any]) -> dict[str, str]:
    row = {"Vertragsnummer": record["Id"], "GeaendertAm": _changed_on(record)}
    rules = _mapping().as_dailyup("contract")
    values = rules.columns(record)
    for rule in rules.fields:
        row[rule.dailyup] = _text(rule.dailyup, values.get(rule.dailyup))
    return row


def delivery(customers: dict[str, dict], contracts: dict[str, dict], *, hauptvermittler: str = "100200",
             day: date | None = None) -> tuple[str, bytes]:
    """The file name and bytes of a delivery of these records."""
    day = day or date.today()
    members = {
        f"{CUSTOMERS}.csv": csv_bytes(COLUMNS[CUSTOMERS], [customer_row(c) for _, c in sorted(customers.items())]),
        f"{CONTRACTS}.csv": csv_bytes(COLUMNS[CONTRACTS], [contract_row(c) for _, c in sorted(contracts.items())]),
        **{f"{table}.csv": csv_bytes(COLUMNS[table], rows) for table, rows in lookup_lists().items()},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(day.year, day.month, day.day, 5, 30, 0)), data,
                             compress_type=zipfile.ZIP_DEFLATED)
    return f"DailyUp_{hauptvermittler}_{day:%Y%m%d}.zip", buffer.getvalue()
