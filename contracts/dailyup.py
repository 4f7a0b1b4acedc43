"""Contracts of DailyUp rows: the only validators of what a delivery's CSV rows hold.

Each schema loads one row given as ``{CSV column: raw text}`` and returns the
*normalized row form* of :mod:`syncbridge.deliveries`: stripped text, ``None``
for empty, dates ISO, decimals canonical.  Only the columns given are returned, so
a column the delivery does not have stays absent (not delivered) instead of
becoming ``None`` (delivered empty).

Rows come by the million, so the schemas are flat, built once per reader options
(:func:`row_schema`) and check values inside their fields instead of through
chains of validators.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import getcontext
from functools import cache, lru_cache
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validates_schema
from marshmallow.decorators import VALIDATES_SCHEMA
from marshmallow.utils import missing as missing_

from syncbridge.deliveries import (
    CONTRACT_COLUMNS,
    CONTRACTS,
    CUSTOMER_COLUMNS,
    CUSTOMERS,
    DECIMAL_COLUMNS,
    LOOKUP_COLUMNS,
    LOOKUP_TABLES,
    normalize_decimal,
)

PERSON_TYPES = ("natuerlich", "juristisch")
DATE_COLUMNS = {"Geburtsdatum", "LetzterLogin", "GeaendertAm", "Beginn", "Ablauf"}

# Lenient on purpose: a CRM refuses what is clearly no address; anything subtler is the sender's business.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
KUNDENNUMMER = re.compile(r"^[0-9]{10}$")
VERTRAGSNUMMER = re.compile(r"^\S{1,40}$")
SPARTE = re.compile(r"^[0-9]{3}$")
# ``1.234,56`` or ``1234,56`` with a decimal comma; ``1,234.56`` or ``1234.56`` without.  A separator
# anywhere else (``12.5`` in a comma delivery) is refused rather than guessed, as guessing can change a value.
NUMBER_WITH_COMMA = re.compile(r"^[+-]?(?:[0-9]{1,3}(?:\.[0-9]{3})+|[0-9]+)(?:,[0-9]+)?$")
NUMBER_WITH_DOT = re.compile(r"^[+-]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?$")


class Text(fields.Field):
    """Stripped text, ``None`` when empty; optionally required non-empty and matching a pattern."""

    default_error_messages = {
        "invalid": "Not a valid string.",
        "empty": "Must not be empty.",
        "pattern": "Invalid value.",
    }

    def __init__(self, *, not_empty: bool = False, pattern: re.Pattern | None = None, error: str | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.not_empty = not_empty
        self.pattern = pattern
        if error:
            self.error_messages = {**self.error_messages, "pattern": error}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        text = value.strip()
        if not text:
            if self.not_empty:
                raise self.make_error("empty")
            return None
        if self.pattern is not None and self.pattern.match(text) is None:
            raise self.make_error("pattern")
        return self._convert(text)

    def _convert(self, text: str) -> str:
        return text

    def _validate(self, value) -> None:
        # marshmallow builds a validator chain on every call; these fields check in _deserialize.
        if self.validators:
            super()._validate(value)


class Choice(Text):
    """Text that must be one of a few values."""

    def __init__(self, choices: tuple[str, ...], **kwargs) -> None:
        super().__init__(error=f"Must be one of: {', '.join(choices)}.", **kwargs)
        self.choices = frozenset(choices)

    def _convert(self, text: str) -> str:
        if text not in self.choices:
            raise self.make_error("pattern")
        return text


class DateText(Text):
    """A date in the delivery's format, as ISO ``YYYY-MM-DD``."""

    default_error_messages = {"invalid_date": "Not a valid date."}

    def __init__(self, parse: Callable[[str], str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.parse = parse

    def _convert(self, text: str) -> str:
        try:
            return self.parse(text)
        except ValueError:
            raise self.make_error("invalid_date") from None


class DecimalText(Text):
    """A number in the delivery's format, as canonical text (``1.234,50`` -> ``1234.5``)."""

    default_error_messages = {"invalid_number": "Not a valid number."}

    def __init__(self, *, decimal_comma: bool, **kwargs) -> None:
        super().__init__(**kwargs)
        self.number = NUMBER_WITH_COMMA if decimal_comma else NUMBER_WITH_DOT
        self.thousands, self.point = (".", ",") if decimal_comma else (",", ".")

    def _convert(self, text: str) -> str:
        if self.number.match(text) is None:
            raise self.make_error("invalid_number")
        return normalize_decimal(text.replace(self.thousands, "").replace(self.point, "."))


# ``DD.MM.YYYY`` in ASCII digits: what ``strptime(text, "%d.%m.%Y")`` reads as these three numbers.
GERMAN_DATE = re.compile(r"[0-9]{2}\.[0-9]{2}\.[0-9]{4}")


def date_parser(date_format: str) -> Callable[[str], str]:
    """A function turning a date in ``date_format`` into ISO text; memoized, as dates repeat a lot."""

    @lru_cache(maxsize=65536)
    def parse(text: str) -> str:
        if date_format == "%d.%m.%Y" and GERMAN_DATE.fullmatch(text):
            # The common case without strptime's machinery: the same date, the same ValueError if none.
            return date(int(text[6:]), int(text[3:5]), int(text[:2])).isoformat()
        return datetime.strptime(text, date_format).date().isoformat()

    return parse


class RowSchema(Schema):
    """Base of the row schemas.

    ``unknown = EXCLUDE``: the reader keeps unknown columns aside (``ParsedRow.extra``)
    before it loads a row, so the schema judges the columns it knows and never fails a
    row for one it does not.
    """

    class Meta:
        unknown = EXCLUDE


class CustomerRowSchema(RowSchema):
    """A row of ``kunden.csv``; a natural person needs Nachname, a legal person Firma."""

    @validates_schema(skip_on_field_errors=False)
    def _name_of_person_type(self, data, **kwargs):
        _check_name_of_person_type(data)


def _check_name_of_person_type(data: dict) -> None:
    # A column the delivery lacks altogether cannot be asked for: that shows in Delivery.missing_columns.
    kind = data.get("Personentyp")
    if kind == "natuerlich" and "Nachname" in data and not data["Nachname"]:
        raise ValidationError("Required for a natural person (Personentyp natuerlich).", "Nachname")
    if kind == "juristisch" and "Firma" in data and not data["Firma"]:
        raise ValidationError("Required for a legal person (Personentyp juristisch).", "Firma")


class ContractRowSchema(RowSchema):
    """A row of ``vertraege.csv``."""


class LookupRowSchema(RowSchema):
    """A row of a lookup list (``ID;Text``)."""


def _column_field(column: str, parse_date: Callable[[str], str], decimal_comma: bool) -> fields.Field:
    if column in DATE_COLUMNS:
        return DateText(parse_date)
    if column in DECIMAL_COLUMNS:
        return DecimalText(decimal_comma=decimal_comma)
    return Text()


SPECIAL_FIELDS: dict[str, dict[str, Callable[[], fields.Field]]] = {
    CUSTOMERS: {
        "Kundennummer": lambda: Text(required=True, not_empty=True, pattern=KUNDENNUMMER,
                                     error="Must be exactly 10 digits."),
        "Personentyp": lambda: Choice(PERSON_TYPES, required=True, not_empty=True),
        "Email": lambda: Text(pattern=EMAIL, error="Not a valid email address."),
    },
    CONTRACTS: {
        "Vertragsnummer": lambda: Text(required=True, not_empty=True, pattern=VERTRAGSNUMMER,
                                       error="Must be at most 40 characters without whitespace."),
        "Kundennummer": lambda: Text(required=True, not_empty=True, pattern=KUNDENNUMMER,
                                     error="Must be exactly 10 digits."),
        "Sparte": lambda: Text(pattern=SPARTE, error="Must be a 3-digit code."),
    },
}
SPECIAL_FIELDS.update({t: {c: (lambda: Text(required=True, not_empty=True)) for c in LOOKUP_COLUMNS}
                       for t in LOOKUP_TABLES})

BASE_OF = {CUSTOMERS: (CustomerRowSchema, CUSTOMER_COLUMNS), CONTRACTS: (ContractRowSchema, CONTRACT_COLUMNS),
           **{t: (LookupRowSchema, LOOKUP_COLUMNS) for t in LOOKUP_TABLES}}


@cache
def row_schema(table: str, *, date_format: str = "%d.%m.%Y", decimal_comma: bool = True) -> Schema:
    """The schema (an instance, shared) of the rows of ``table`` under these reader options."""
    try:
        base, columns = BASE_OF[table]
    except KeyError:
        raise ValueError(f"no DailyUp table {table!r}") from None
    parse_date = date_parser(date_format)
    special = SPECIAL_FIELDS.get(table, {})
    declared = {c: special[c]() if c in special else _column_field(c, parse_date, decimal_comma) for c in columns}
    return base.from_dict(declared, name=f"{base.__name__}_{table}")()


# The checks of a whole row beside its fields' (the schemas' ``validates_schema`` methods call the same).
ROW_CHECKS: dict[str, Callable[[dict], None]] = {CUSTOMERS: _check_name_of_person_type}


@cache
def row_loader(table: str, *, date_format: str = "%d.%m.%Y", decimal_comma: bool = True) -> Callable[[dict], dict]:
    """A function loading a row exactly as ``row_schema(table, ...).load`` does, several times faster.

    The schema stays the definition: the function is compiled from its fields (their
    patterns, choices, date and number formats) and its row check.  A row it accepts
    gets the values the schema gives; a row any field or the row check refuses, or one
    it does not know how to judge (a value that is no text, a missing required column),
    is loaded again by the schema itself, so the :class:`ValidationError` raised is the
    schema's, with every message of the row.
    """
    schema = row_schema(table, date_format=date_format, decimal_comma=decimal_comma)
    declared = list(schema.load_fields.items())
    check = ROW_CHECKS.get(table)
    hooks = {kind for kind, found in getattr(schema, "_hooks", {"unknown": [True]}).items() if found}
    if (any(f.validators or f.data_key or f.attribute or f.load_default is not missing_ for _, f in declared)
            or hooks != ({VALIDATES_SCHEMA} if check is not None else set())):
        return schema.load  # a field or hook the compiled function does not know how to run: the schema does all
    return _compile(declared, schema.load, check)


def _compile(declared: list[tuple[str, fields.Field]], load: Callable[[dict], dict],
             check: Callable[[dict], None] | None) -> Callable[[dict], dict]:
    """The source of a function loading a row field by field as ``_deserialize`` does, compiled."""
    env: dict[str, Any] = {"load": load, "check": check, "MISSING": object(), "ValidationError": ValidationError,
                           "decimal": decimal_text}
    lines = ["def load_row(raw):", "    data = {}", "    get = raw.get", "    try:"]
    for i, (name, field) in enumerate(declared):
        column = repr(name)
        lines += [f"        v = get({column}, MISSING)", "        if v is not MISSING:"]
        body = _field_steps(i, field, env)
        if body is None:    # another kind of field: its own _deserialize
            env[f"field{i}"] = field
            body = [f"data[{column}] = field{i}._deserialize(v, {column}, raw)"]
        else:
            body = ["if v.__class__ is not str: return load(raw)", "t = v.strip()"] + [
                line.replace("COLUMN", column) for line in body]
        lines += [f"            {line}" for line in body]
        if field.required:
            lines += ["        else:", "            return load(raw)"]
    if check is not None:
        lines.append("        check(data)")
    lines += ["    except ValidationError:", "        return load(raw)", "    return data"]
    exec(compile("\n".join(lines), f"<row loader of {len(declared)} columns>", "exec"), env)  # noqa: S102
    return env["load_row"]


@lru_cache(maxsize=64)
def fields_loader(table: str, known: tuple[tuple[int, str], ...], *, date_format: str = "%d.%m.%Y",
                  decimal_comma: bool = True) -> Callable[[Sequence[str]], dict]:
    """A function loading a CSV row given as its list of fields (texts), as :func:`row_loader` loads it.

    ``known`` names the ``(index, column)`` of each field the schema knows.  The row
    ``fields`` loads to what ``row_loader(table, ...)`` makes of ``{column: fields[index]}``,
    with the same ValidationError, but a row the compiled steps accept is read from its
    fields where they are: no mapping is built for it and no column looked up by name.
    """
    load = row_loader(table, date_format=date_format, decimal_comma=decimal_comma)

    def by_name(fields: Sequence[str]) -> dict:
        return load({column: fields[index] for index, column in known})

    schema = row_schema(table, date_format=date_format, decimal_comma=decimal_comma)
    if load == schema.load:     # the schema does all (see row_loader)
        return by_name
    at = {column: index for index, column in known}
    env: dict[str, Any] = {"by_name": by_name, "check": ROW_CHECKS.get(table), "ValidationError": ValidationError,
                           "decimal": decimal_text}
    lines = ["def load_fields(f):", "    data = {}", "    try:"]
    declared = list(schema.load_fields.items())
    for i, (name, field) in enumerate(declared):
        if name not in at:
            if field.required:
                return by_name      # every row lacks it: the schema says so, row by row
            continue
        body = _field_steps(i, field, env, refuse="return by_name(f)")
        if body is None:
            return by_name
        lines += [f"        t = f[{at[name]}].strip()", *(f"        {line.replace('COLUMN', repr(name))}"
                                                          for line in body)]
    if env["check"] is not None:
        lines.append("        check(data)")
    lines += ["    except ValidationError:", "        return by_name(f)", "    return data"]
    exec(compile("\n".join(lines), f"<fields loader of {len(at)} columns>", "exec"), env)  # noqa: S102
    return env["load_fields"]


def _field_steps(i: int, field: fields.Field, env: dict[str, Any], refuse: str = "return load(raw)") -> list[str] | None:
    """What ``field._deserialize`` does to the stripped text ``t`` of column COLUMN, as lines of code;
    ``refuse`` is the line run for a value the field refuses."""
    kind = type(field)
    if kind not in (Text, Choice, DateText, DecimalText):
        return None
    assert isinstance(field, Text)
    steps = []
    if field.pattern is not None:
        env[f"pattern{i}"] = field.pattern.match
        steps.append(f"if pattern{i}(t) is None: {refuse}")
    if isinstance(field, Choice):
        env[f"choices{i}"] = field.choices
        steps.append(f"if t not in choices{i}: {refuse}")
    elif isinstance(field, DateText):
        env[f"parse{i}"] = field.parse
        steps += ["try:", f"    t = parse{i}(t)", "except ValueError:", f"    {refuse}"]
    elif isinstance(field, DecimalText):
        env[f"number{i}"] = field.number.match
        steps += [f"if number{i}(t) is None: {refuse}",
                  f"t = decimal(t.replace({field.thousands!r}, '').replace({field.point!r}, '.'))"]
    if field.not_empty:
        return [f"if not t: {refuse}", *steps, "data[COLUMN] = t"]
    if not steps:
        return ["data[COLUMN] = t or None"]
    return ["if t:", *(f"    {step}" for step in steps), "    data[COLUMN] = t", "else:", "    data[COLUMN] = None"]


def decimal_text(text: str) -> str | None:
    """``normalize_decimal(text)`` of a number without thousands separators (``[+-]?[0-9]+(.[0-9]+)?``).

    Done on the digits themselves where the decimal context could not round them (at most
    20 digits); any other text is left to :func:`~syncbridge.deliveries.normalize_decimal`.
    """
    sign = text[:1]
    digits = text[1:] if sign in ("+", "-") else text
    whole, point, fraction = digits.partition(".")
    if (len(digits) > 20 or not whole or not whole.isascii() or not whole.isdigit()
            or (point and (not fraction or not fraction.isascii() or not fraction.isdigit()))
            or getcontext().prec < 20):
        return normalize_decimal(text)
    whole, fraction = whole.lstrip("0") or "0", fraction.rstrip("0")
    number = f"{whole}.{fraction}" if fraction else whole
    return "-" + number if sign == "-" and number != "0" else number
