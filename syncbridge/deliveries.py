"""The shape of a DailyUp delivery as the rest of the service sees it.

The real container and file format are not public; the reader adapter turns our
stand-in format (ZIP of ``;`` CSV files) into :class:`ParsedRow` values whose
``data`` holds **normalized strings**: dates as ISO ``YYYY-MM-DD``, decimals in
canonical form (``1234.5``, no thousands separator, ``.`` as decimal point),
everything else stripped text, ``None`` for empty.  Normalized rows hash and
compare the same whatever the encoding or number format of the delivery.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import orjson

CUSTOMERS = "kunden"
CONTRACTS = "vertraege"
LOOKUP_TABLES = ("gesellschaften", "sparten", "vertragsstatus", "zahlweisen", "laender", "rechtsformen", "anreden")
TABLES = (CUSTOMERS, CONTRACTS, *LOOKUP_TABLES)

# Entity of each record table (the name used in links, messages and the activity log).
ENTITY_OF = {CUSTOMERS: "customer", CONTRACTS: "contract"}

CUSTOMER_COLUMNS = (
    "Kundennummer", "Vermittlernummer", "Personentyp", "Anrede", "Titel", "Vorname", "Nachname", "Firma",
    "Rechtsform", "Geburtsdatum", "Strasse", "PLZ", "Ort", "Land", "Email", "Telefon", "Mobil",
    "BenutzernameSimplr", "LetzterLogin", "GeaendertAm",
)
CONTRACT_COLUMNS = (
    "Vertragsnummer", "Kundennummer", "Versicherungsscheinnummer", "Gesellschaft", "Sparte", "Status",
    "BeitragBrutto", "BeitragNetto", "Zahlweise", "Beginn", "Ablauf", "Risiko", "Vermittlernummer", "GeaendertAm",
)
LOOKUP_COLUMNS = ("ID", "Text")

COLUMNS = {CUSTOMERS: CUSTOMER_COLUMNS, CONTRACTS: CONTRACT_COLUMNS, **{t: LOOKUP_COLUMNS for t in LOOKUP_TABLES}}
# Without these columns a table cannot be read at all: the delivery is rejected.
KEY_COLUMNS = {CUSTOMERS: ("Kundennummer", "Personentyp"), CONTRACTS: ("Vertragsnummer", "Kundennummer"),
               **{t: LOOKUP_COLUMNS for t in LOOKUP_TABLES}}
KEY_OF = {CUSTOMERS: "Kundennummer", CONTRACTS: "Vertragsnummer", **{t: "ID" for t in LOOKUP_TABLES}}
# Columns that change on every export without the record changing: not part of the hash or the delta.
VOLATILE_COLUMNS = {CUSTOMERS: ("LetzterLogin", "GeaendertAm"), CONTRACTS: ("GeaendertAm",)}
# Files every delivery must contain; lookup lists may be missing (the last ones stay).
REQUIRED_TABLES = (CUSTOMERS, CONTRACTS)

DELIVERY_NAME = re.compile(r"^DailyUp_(?P<hvn>[A-Za-z0-9]+)_(?P<date>\d{8})\.zip$")


@dataclass(frozen=True)
class DeliveryName:
    """What a delivery's file name says: ``DailyUp_{Hauptvermittlernummer}_{YYYYMMDD}.zip``."""

    hauptvermittler: str
    delivered_on: date

    @classmethod
    def parse(cls, file_name: str) -> DeliveryName:
        match = DELIVERY_NAME.match(file_name.rsplit("/", 1)[-1])
        if not match:
            raise ValueError(f"{file_name!r} is not named DailyUp_<Hauptvermittlernummer>_<YYYYMMDD>.zip")
        try:
            day = date(int(match["date"][:4]), int(match["date"][4:6]), int(match["date"][6:]))
        except ValueError:
            raise ValueError(f"{file_name!r}: {match['date']} is not a date") from None
        return cls(match["hvn"], day)


@dataclass(frozen=True)
class RowError:
    """One problem of one row: where (file, line, column) and what."""

    file: str
    line: int
    column: str | None
    message: str
    key: str | None = None      # the row's key when it could be read: that record is kept as it was

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" + (f" [{self.column}]" if self.column else "")
        return f"{where}: {self.message}"


@dataclass(slots=True)
class ParsedRow:
    """One valid row: its table, where it started, its key and its normalized values.

    Treated as a value and never changed, but not declared frozen: the reader makes one
    per new or changed row, and a frozen dataclass's constructor costs about four
    times as much (1.0 against 0.25 µs, a few per cent of a first day's import).
    """

    table: str
    line: int
    key: str
    data: dict[str, str | None]
    extra: dict[str, str] = field(default_factory=dict)   # unknown extra columns, kept aside
    raw_hash: bytes | None = None   # digest of the row's text as delivered, volatile columns aside (reader)

    @property
    def hash(self) -> str:
        return row_hash(self.table, self.data)


# What json.dumps(value, ensure_ascii=False, separators=(",", ":")) uses, made once rather than per call.
_compact = json.JSONEncoder(check_circular=False, ensure_ascii=False, separators=(",", ":")).encode


def compact_json(value: Any) -> bytes:
    """``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` as UTF-8, made by orjson.

    For the normalized values of a row (texts and None; a tenth of json's time). What orjson
    refuses (an integer beyond 64 bits, a key that is no text) ``json`` writes, to the same text.
    Not for floats: orjson writes NaN and infinities as null.
    """
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _compact(value).encode()


def in_column_order(table: str, data: dict[str, Any]) -> dict[str, Any]:
    """The row's values with its table's columns first, in their order, then any other column by name."""
    known = COLUMNS.get(table, ())
    return {c: data[c] for c in known if c in data} | {c: data[c] for c in sorted(data) if c not in known}


def row_hash(table: str, data: dict[str, Any]) -> str:
    """A stable hash of a row's normalized values, volatile columns left out.

    The SHA-256 of the compact JSON text (:func:`compact_json`) of the other values in column
    order (:func:`in_column_order`), the text the snapshot stores a row's values in:
    :func:`row_text` makes both from one encoding.
    """
    volatile = VOLATILE_COLUMNS.get(table, ())
    stable = {c: v for c, v in in_column_order(table, data).items() if c not in volatile}
    return hashlib.sha256(compact_json(stable)).hexdigest()


def row_text(table: str, data: dict[str, Any]) -> tuple[str, str]:
    """The JSON text of a row's values as stored, and its :func:`row_hash`, from one encoding.

    With ``data`` in column order, the volatile columns are its last ones (they are the
    last columns of their tables): the stable values' text is the text's beginning then.
    """
    raw = compact_json(data)
    cut = _volatile_start(table, tuple(data))
    if cut is None:
        return raw.decode(), row_hash(table, data)
    if cut:
        # JSON escapes every quote inside a string: ',"Column":' only occurs where that column starts.
        end = raw.rfind(cut)
        if end < 0:
            return raw.decode(), row_hash(table, data)
        stable = raw[:end] + b"}" if end else b"{}"
    else:
        stable = raw
    return raw.decode(), hashlib.sha256(stable).hexdigest()


@lru_cache(maxsize=256)
def _volatile_start(table: str, keys: tuple[str, ...]) -> bytes | None:
    """Where the volatile values of a row with these columns begin in its JSON text: the text that
    introduces the first of them (``b',"LetzterLogin":'``), b"" for none, None when they are not
    the last columns of a row in column order (:func:`row_hash` then hashes a text of its own)."""
    if tuple(in_column_order(table, dict.fromkeys(keys))) != keys:
        return None
    volatile = set(VOLATILE_COLUMNS.get(table, ()))
    stable = [k for k in keys if k not in volatile]
    if list(keys[:len(stable)]) != stable:
        return None
    if len(stable) == len(keys):
        return b""
    first = compact_json(keys[len(stable)])
    return b"," + first + b":" if stable else b"{" + first + b":"


def changed_fields(table: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Columns whose normalized value differs, volatile ones left out, in column order."""
    volatile = VOLATILE_COLUMNS.get(table, ())
    order = COLUMNS.get(table, ())
    names = [c for c in order if c in old or c in new] + sorted((set(old) | set(new)) - set(order))
    return [c for c in names if c not in volatile and old.get(c) != new.get(c)]


def parse_decimal(value: Any) -> Decimal:
    """A finite ``Decimal`` from a number or its text; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


def normalize_decimal(value: Any) -> str | None:
    """Canonical text of a number: ``Decimal`` normalized, no exponent (``100.00`` -> ``100``)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = format(parse_decimal(value).normalize(), "f")
    return "0" if text in ("-0", "") else text


DECIMAL_COLUMNS = {"BeitragBrutto", "BeitragNetto"}
# Columns that carry the code of a lookup list (column -> lookup table).  Ameise's
# API takes and gives some of them as text ("Deutschland", "GmbH"), the DailyUp as code.
# How an Ameise record becomes a DailyUp row is part of the mapping (ameise_to_dailyup).
LOOKUP_OF_COLUMN = {"Anrede": "anreden", "Land": "laender", "Rechtsform": "rechtsformen",
                    "Gesellschaft": "gesellschaften", "Sparte": "sparten", "Status": "vertragsstatus",
                    "Zahlweise": "zahlweisen"}
