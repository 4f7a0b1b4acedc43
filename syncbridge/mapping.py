"""Apply the declarative field mapping (``syncbridge/mappings/default.toml``).

The mapping is data: which CRM field goes to which Ameise field (direction
``crm_to_ameise``), which DailyUp column goes to which CRM field (direction
``ameise_to_crm``), and which Ameise field is which DailyUp column (direction
``ameise_to_dailyup``, to recognise our own writes in the next delivery), with a
type and, for codes, a value table.  This module only reads it, checks it, and applies it.

Ameise paths are nested: ``Person.Vorname`` is a field of an object,
``Kontaktdaten[Kontext=privat,Typ=email].Value`` the ``Value`` of the entry of the
list ``Kontaktdaten`` whose ``Kontext`` and ``Typ`` are these (written: that entry,
made when missing; read: the first such entry).
"""
from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from syncbridge.config import ENTITY_KINDS
from syncbridge.deliveries import (
    CONTRACT_COLUMNS,
    CUSTOMER_COLUMNS,
    DECIMAL_COLUMNS,
    LOOKUP_TABLES,
    normalize_decimal,
    parse_decimal,
)

CRM_TO_AMEISE = "crm_to_ameise"
AMEISE_TO_CRM = "ameise_to_crm"
AMEISE_TO_DAILYUP = "ameise_to_dailyup"
DIRECTIONS = (CRM_TO_AMEISE, AMEISE_TO_CRM, AMEISE_TO_DAILYUP)
VALUE_TABLES = "values"         # the top-level table of value tables: [values.<name>] text = "code"
DEFAULT_MAPPING = "default.toml"
# The DailyUp columns an ameise_to_crm rule of each entity kind may read.
DAILYUP_COLUMNS = {"person": CUSTOMER_COLUMNS, "company": CUSTOMER_COLUMNS, "contract": CONTRACT_COLUMNS}
# A template placeholder: {Column} is the column's value, {Column|table} its text in a lookup list.
PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)(?:\|([a-z_]+))?\}")


class MappingError(Exception):
    """The mapping file is invalid."""


class FieldValueError(ValueError):
    """A record's value cannot be converted as the mapping says; names the field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def _as_string(value: Any) -> str:
    if isinstance(value, dict):
        # A lookup written without a path: its display name is the useful text.
        value = value.get("name", "")
    return str(value).strip()


def _as_code(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _as_string(value)


def _as_date(value: Any) -> str:
    text = _as_string(value)[:10]
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError(f"not an ISO date (YYYY-MM-DD): {value!r}") from None


def _as_decimal(value: Any) -> float | int:
    number = parse_decimal(value)
    return int(number) if number == number.to_integral_value() else float(number)


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "string": _as_string,
    "code": _as_code,
    "date": _as_date,
    "decimal": _as_decimal,
}


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# One segment of an Ameise path: a name, optionally a selector of list entries ``[Key=value,...]``.
SEGMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<select>[^\[\]]+)\])?$")
SELECTOR_ITEM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([^,=]*?)\s*$")


def parse_path(path: str) -> list[tuple[str, dict[str, str] | None]]:
    """The segments of a path: (name, selector or None); ValueError when it is malformed."""
    segments: list[tuple[str, dict[str, str] | None]] = []
    for part in _split_path(path):
        match = SEGMENT.match(part)
        if not match:
            raise ValueError(f"malformed path segment {part!r} in {path!r}")
        select = None
        if match["select"] is not None:
            select = {}
            for item in match["select"].split(","):
                pair = SELECTOR_ITEM.match(item)
                if not pair or not pair.group(2):
                    raise ValueError(f"write a selector as [Key=value,...], not [{match['select']}] in {path!r}")
                select[pair.group(1)] = pair.group(2)
        segments.append((match["name"], select))
    if segments and segments[-1][1] is not None:
        raise ValueError(f"{path!r} ends at a list entry: name the entry's field, e.g. {path}.Value")
    return segments


def _split_path(path: str) -> list[str]:
    """Split at the dots outside of selectors."""
    parts, depth, current = [], 0, ""
    for char in path:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "." and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _matches(entry: Any, select: dict[str, str]) -> bool:
    return isinstance(entry, dict) and all(str(entry.get(k)) == v for k, v in select.items())


# A path as its segments, parsed once: a mapping's rules are read and written for every record.
Segments = tuple[tuple[str, dict[str, str] | None], ...]


@lru_cache(maxsize=1024)
def _segments(path: str) -> Segments:
    return tuple(parse_path(path))


def read_path(record: dict[str, Any], path: str) -> Any:
    """The value at ``path`` in a nested record; None where anything on the way is missing."""
    return _read_segments(record, _segments(path))


def _read_segments(record: dict[str, Any], segments: Segments) -> Any:
    value: Any = record
    for name, select in segments:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
        if select is not None:
            value = next((e for e in value if _matches(e, select)), None) if isinstance(value, list) else None
    return value


def write_path(target: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` in a nested record, making the objects and list entries on the way."""
    _write_segments(target, _segments(path), value)


def _write_segments(target: dict[str, Any], segments: Segments, value: Any) -> None:
    for name, select in segments[:-1]:
        if select is None:
            target = target.setdefault(name, {})
            continue
        entries = target.setdefault(name, [])
        found = next((e for e in entries if _matches(e, select)), None)
        if found is None:
            found = dict(select)
            entries.append(found)
        target = found
    target[segments[-1][0]] = value


@dataclass(frozen=True)
class FieldRule:
    crm: str
    ameise: str
    type: str = "string"
    values: str = ""            # name of a value table: the CRM text becomes the table's code


def _lookup_value(tables: dict[str, dict[str, str]], table: str, value: Any) -> str:
    """The code of ``value`` in a value table (case and blanks ignored); ValueError when it has none."""
    wanted = str(value).strip().casefold()
    entries = tables.get(table, {})
    for text, code in entries.items():
        if text.strip().casefold() == wanted:
            return code
    raise ValueError(f"{value!r} is not in the value table {table!r} (known: {', '.join(entries)})")


@dataclass(frozen=True)
class EntityMapping:
    """The mapping of one entity kind in one direction."""

    kind: str
    direction: str
    fields: tuple[FieldRule, ...]
    constants: dict[str, Any] = field(default_factory=dict)
    customer_lookups: dict[str, str] = field(default_factory=dict)
    value_tables: dict[str, dict[str, str]] = field(default_factory=dict)
    _plan: tuple[tuple[str, tuple[str, ...], Callable[[Any], Any], str, Segments], ...] = \
        field(init=False, repr=False, compare=False)
    _constants: tuple[tuple[Segments, Any], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Each rule as it is applied to every record: the CRM field's path split, the converter, the Ameise
        # path parsed; and the constants' paths parsed.  Compiled once per mapping, not per record.
        object.__setattr__(self, "_plan", tuple(
            (rule.crm, tuple(rule.crm.split(".")), CONVERTERS[rule.type], rule.values, _segments(rule.ameise))
            for rule in self.fields))
        object.__setattr__(self, "_constants", tuple(
            (_segments(path), value) for path, value in self.constants.items()))

    def to_ameise(self, record: dict[str, Any]) -> dict[str, Any]:
        """Build the (nested) Ameise body from a CRM record; empty CRM values are left out."""
        result: dict[str, Any] = {}
        for crm, parts, convert, values, target in self._plan:
            raw: Any = record
            for part in parts:
                raw = raw.get(part) if isinstance(raw, dict) else None
            if _empty(raw):
                continue
            try:
                value = convert(raw)
                if values and value != "":
                    value = _lookup_value(self.value_tables, values, value)
            except ValueError as exc:
                raise FieldValueError(crm, str(exc)) from exc
            if value == "":
                continue
            _write_segments(result, target, value)
        for target, value in self._constants:
            _write_segments(result, target, value)
        return result



# ---------------------------------------------------------------- ameise_to_dailyup
@dataclass(frozen=True)
class EchoRule:
    """One ameise_to_dailyup rule: an Ameise path and the DailyUp column that carries it."""

    ameise: str
    dailyup: str


@dataclass(frozen=True)
class AmeiseToDailyUpMapping:
    """How an Ameise record (as written or read) looks as a DailyUp row: used to recognise our own writes."""

    kind: str
    fields: tuple[EchoRule, ...]
    _plan: tuple[tuple[Segments, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The rules' Ameise paths parsed once per mapping, not for every record.
        object.__setattr__(self, "_plan", tuple((_segments(rule.ameise), rule.dailyup) for rule in self.fields))

    def columns(self, record: dict[str, Any]) -> dict[str, Any]:
        """The raw values of the DailyUp columns that ``record`` sets (None values left out)."""
        result: dict[str, Any] = {}
        for segments, column in self._plan:
            value = _read_segments(record, segments)
            if value is not None:
                result[column] = value
        return result

    def as_dailyup(self, record: dict[str, Any]) -> dict[str, str | None]:
        """The DailyUp columns (normalized as the reader normalizes a row) that ``record`` sets."""
        result: dict[str, str | None] = {}
        for column, value in self.columns(record).items():
            if column in DECIMAL_COLUMNS:
                result[column] = normalize_decimal(value)
            else:
                result[column] = str(value).strip() or None
        return result


# ---------------------------------------------------------------- ameise_to_crm
DAILYUP_TYPES = (*CONVERTERS, "lookup", "template")


@dataclass(frozen=True)
class DailyUpRule:
    """One ameise_to_crm rule: a DailyUp column (or a template of columns) into one CRM field."""

    crm: str                # API name of the CRM field written
    dailyup: str = ""       # DailyUp column read; empty for a template
    type: str = "string"    # a converter, "lookup" or "template"
    table: str = ""         # lookup list of a "lookup" rule, e.g. sparten
    template: str = ""      # text of a "template" rule, e.g. "{Sparte|sparten} {Vertragsnummer}"


@dataclass(frozen=True)
class CrmValues:
    """A CRM record built from a DailyUp row, and the codes its lookup lists did not know."""

    fields: dict[str, Any]
    unknown_codes: tuple[str, ...] = ()     # "Sparte=999 (sparten)": written as the code itself


class _Lookups:
    """The delivered lookup lists of one row's conversion; remembers the codes they lack."""

    def __init__(self, lists: dict[str, dict[str, str]]) -> None:
        self.lists = lists
        self.unknown: list[str] = []

    def text(self, column: str, table: str, code: str) -> str:
        text = self.lists.get(table, {}).get(code)
        if text:
            return text
        note = f"{column}={code} ({table})"
        if note not in self.unknown:
            self.unknown.append(note)
        return code


@dataclass(frozen=True)
class DailyUpToCrmMapping:
    """The ameise_to_crm mapping of one entity kind: a DailyUp row (normalized values) to a CRM record."""

    kind: str
    fields: tuple[DailyUpRule, ...]
    constants: dict[str, Any] = field(default_factory=dict)

    @property
    def lookup_tables(self) -> set[str]:
        """The lookup lists the rules read."""
        tables = {rule.table for rule in self.fields if rule.table}
        for rule in self.fields:
            tables.update(table for _, table in PLACEHOLDER.findall(rule.template) if table)
        return tables

    def to_crm(self, row: dict[str, Any], lookups: dict[str, dict[str, str]]) -> CrmValues:
        """Build the CRM fields of a row; empty values are left out, so they never wipe a CRM field."""
        texts = _Lookups(lookups)
        result: dict[str, Any] = {}
        for rule in self.fields:
            if rule.type == "template":
                value = self._fill(rule.template, row, texts)
            else:
                raw = row.get(rule.dailyup)
                if _empty(raw):
                    continue
                try:
                    converted = CONVERTERS["code" if rule.type == "lookup" else rule.type](raw)
                except ValueError as exc:
                    raise FieldValueError(rule.dailyup, str(exc)) from exc
                value = texts.text(rule.dailyup, rule.table, converted) if rule.type == "lookup" else converted
            if value == "":
                continue
            result[rule.crm] = value
        result.update(self.constants)
        return CrmValues(result, tuple(texts.unknown))

    @staticmethod
    def _fill(template: str, row: dict[str, Any], texts: _Lookups) -> str:
        def value(match: re.Match[str]) -> str:
            column, table = match.groups()
            raw = row.get(column)
            if _empty(raw):
                return ""
            code = _as_code(raw)
            return texts.text(column, table, code) if table else code

        # an empty placeholder leaves no double or trailing blanks behind
        return " ".join(PLACEHOLDER.sub(value, template).split())


@dataclass(frozen=True)
class Mapping:
    """Every entity mapping, by (kind, direction)."""

    entities: dict[tuple[str, str], EntityMapping | DailyUpToCrmMapping | AmeiseToDailyUpMapping]
    source: str
    value_tables: dict[str, dict[str, str]] = field(default_factory=dict)

    def get(self, kind: str, direction: str = CRM_TO_AMEISE) -> EntityMapping | DailyUpToCrmMapping | AmeiseToDailyUpMapping:
        """The mapping of ``kind`` in ``direction``."""
        try:
            return self.entities[(kind, direction)]
        except KeyError:
            raise MappingError(f"{self.source}: no mapping for [{kind}.{direction}]") from None

    def from_crm(self, kind: str) -> EntityMapping:
        """The crm_to_ameise mapping of ``kind``."""
        found = self.get(kind, CRM_TO_AMEISE)
        if not isinstance(found, EntityMapping):
            raise MappingError(f"{self.source}: [{kind}.{CRM_TO_AMEISE}] is not a CRM -> Ameise mapping")
        return found

    def to_crm(self, kind: str) -> DailyUpToCrmMapping:
        """The ameise_to_crm mapping of ``kind``."""
        found = self.get(kind, AMEISE_TO_CRM)
        if not isinstance(found, DailyUpToCrmMapping):
            raise MappingError(f"{self.source}: [{kind}.{AMEISE_TO_CRM}] is not a DailyUp -> CRM mapping")
        return found

    def as_dailyup(self, kind: str) -> AmeiseToDailyUpMapping:
        """The ameise_to_dailyup mapping of ``kind``."""
        found = self.get(kind, AMEISE_TO_DAILYUP)
        if not isinstance(found, AmeiseToDailyUpMapping):
            raise MappingError(f"{self.source}: [{kind}.{AMEISE_TO_DAILYUP}] is not an Ameise -> DailyUp mapping")
        return found


def _parse_dailyup_rule(kind: str, index: int, raw: Any, where: str) -> DailyUpRule:
    if not isinstance(raw, dict) or not raw.get("crm") or not (raw.get("dailyup") or raw.get("template")):
        raise MappingError(f"{where}: field rule {index + 1} needs dailyup (or a template) and crm")
    name = str(raw.get("dailyup") or raw["crm"])
    extra = set(raw) - {"dailyup", "crm", "type", "table", "template"}
    if extra:
        raise MappingError(f"{where}: field rule {name!r} has unknown keys {sorted(extra)}")
    rule = DailyUpRule(str(raw["crm"]), str(raw.get("dailyup", "")), str(raw.get("type", "string")),
                       str(raw.get("table", "")), str(raw.get("template", "")))
    if rule.type not in DAILYUP_TYPES:
        raise MappingError(f"{where}: field {name!r} has type {rule.type!r}; known: {', '.join(DAILYUP_TYPES)}")
    if rule.type == "template" and (rule.dailyup or not rule.template):
        raise MappingError(f"{where}: field {name!r}: a template rule has a template and no dailyup column")
    if rule.type != "template" and rule.template:
        raise MappingError(f"{where}: field {name!r}: only a rule of type template has a template")
    if (rule.type == "lookup") != bool(rule.table):
        raise MappingError(f"{where}: field {name!r}: a table is needed by, and only allowed for, type lookup")
    columns = DAILYUP_COLUMNS[kind]
    tables = [rule.table] if rule.table else []
    if rule.template:
        leftover = PLACEHOLDER.sub("", rule.template)
        if "{" in leftover or "}" in leftover:
            raise MappingError(f"{where}: template {rule.template!r}: write placeholders as {{Column}} or "
                               "{Column|table}")
        used = PLACEHOLDER.findall(rule.template)
        if not used:
            raise MappingError(f"{where}: template {rule.template!r} names no column")
        read = [column for column, _ in used]
        tables += [table for _, table in used if table]
    else:
        read = [rule.dailyup]
    for column in read:
        if column not in columns:
            raise MappingError(f"{where}: field {name!r} reads unknown DailyUp column {column!r}; "
                               f"known: {', '.join(columns)}")
    for table in tables:
        if table not in LOOKUP_TABLES:
            raise MappingError(f"{where}: field {name!r} names unknown lookup list {table!r}; "
                               f"known: {', '.join(LOOKUP_TABLES)}")
    return rule


def _parse_ameise_to_crm(kind: str, table: dict[str, Any], source: str,
                         value_tables: dict[str, dict[str, str]]) -> DailyUpToCrmMapping:
    where = f"{source} [{kind}.{AMEISE_TO_CRM}]"
    unknown = set(table) - {"fields", "constants"}
    if unknown:
        raise MappingError(f"{where}: unknown keys {sorted(unknown)}")
    rules = []
    targets: set[str] = set()
    for index, raw in enumerate(table.get("fields", [])):
        rule = _parse_dailyup_rule(kind, index, raw, where)
        if rule.crm in targets:
            raise MappingError(f"{where}: CRM field {rule.crm!r} is mapped twice")
        targets.add(rule.crm)
        rules.append(rule)
    if not rules:
        raise MappingError(f"{where}: no field rules")
    return DailyUpToCrmMapping(kind, tuple(rules), dict(table.get("constants", {})))


# ---------------------------------------------------------------- parsing
def _check_path(where: str, path: str) -> None:
    try:
        parse_path(path)
    except ValueError as exc:
        raise MappingError(f"{where}: {exc}") from None


def _parse_ameise_to_dailyup(kind: str, table: dict[str, Any], source: str,
                             value_tables: dict[str, dict[str, str]]) -> AmeiseToDailyUpMapping:
    where = f"{source} [{kind}.{AMEISE_TO_DAILYUP}]"
    unknown = set(table) - {"fields"}
    if unknown:
        raise MappingError(f"{where}: unknown keys {sorted(unknown)}")
    rules, columns = [], set()
    for index, raw in enumerate(table.get("fields", [])):
        if not isinstance(raw, dict) or not raw.get("ameise") or not raw.get("dailyup") or set(raw) - {"ameise", "dailyup"}:
            raise MappingError(f"{where}: field rule {index + 1} needs ameise and dailyup, nothing else")
        rule = EchoRule(str(raw["ameise"]), str(raw["dailyup"]))
        _check_path(where, rule.ameise)
        if rule.dailyup not in DAILYUP_COLUMNS[kind]:
            raise MappingError(f"{where}: unknown DailyUp column {rule.dailyup!r}; known: {', '.join(DAILYUP_COLUMNS[kind])}")
        if rule.dailyup in columns:
            raise MappingError(f"{where}: DailyUp column {rule.dailyup!r} is mapped twice")
        columns.add(rule.dailyup)
        rules.append(rule)
    if not rules:
        raise MappingError(f"{where}: no field rules")
    return AmeiseToDailyUpMapping(kind, tuple(rules))


def _parse_value_tables(raw: Any, source: str) -> dict[str, dict[str, str]]:
    if not isinstance(raw, dict):
        raise MappingError(f"{source}: [{VALUE_TABLES}] holds tables such as [{VALUE_TABLES}.anrede]")
    tables: dict[str, dict[str, str]] = {}
    for name, entries in raw.items():
        if not isinstance(entries, dict) or not entries:
            raise MappingError(f"{source}: [{VALUE_TABLES}.{name}] must map texts to codes, e.g. Herr = \"1\"")
        bad = [text for text, code in entries.items() if not isinstance(code, str) or not code.strip()]
        if bad:
            raise MappingError(f"{source}: [{VALUE_TABLES}.{name}]: write each code as non-empty text; "
                               f"not so for {', '.join(bad)}")
        tables[str(name)] = {str(text): code for text, code in entries.items()}
    return tables


def _parse_crm_to_ameise(kind: str, table: dict[str, Any], source: str,
                         value_tables: dict[str, dict[str, str]]) -> EntityMapping:
    direction = CRM_TO_AMEISE
    where = f"{source} [{kind}.{direction}]"
    known = {"fields", "constants", "customer_lookups"}
    unknown = set(table) - known
    if unknown:
        raise MappingError(f"{where}: unknown keys {sorted(unknown)}")
    rules = []
    targets: set[str] = set()
    for index, raw in enumerate(table.get("fields", [])):
        if not isinstance(raw, dict) or not raw.get("crm") or not raw.get("ameise"):
            raise MappingError(f"{where}: field rule {index + 1} needs crm and ameise")
        extra = set(raw) - {"crm", "ameise", "type", "values"}
        if extra:
            raise MappingError(f"{where}: field rule {raw['crm']!r} has unknown keys {sorted(extra)}")
        rule = FieldRule(str(raw["crm"]), str(raw["ameise"]), str(raw.get("type", "string")), str(raw.get("values", "")))
        if rule.type not in CONVERTERS:
            raise MappingError(f"{where}: field {rule.crm!r} has type {rule.type!r}; known: {', '.join(CONVERTERS)}")
        if rule.values and rule.values not in value_tables:
            raise MappingError(f"{where}: field {rule.crm!r} names unknown value table {rule.values!r}; "
                               f"known: {', '.join(value_tables) or 'none'} (define it as [values.{rule.values}])")
        _check_path(where, rule.ameise)
        if rule.ameise in targets:
            raise MappingError(f"{where}: Ameise field {rule.ameise!r} is mapped twice")
        targets.add(rule.ameise)
        rules.append(rule)
    if not rules:
        raise MappingError(f"{where}: no field rules")
    constants = dict(table.get("constants", {}))
    for path in constants:
        _check_path(where, path)
    lookups = {str(k): str(v) for k, v in dict(table.get("customer_lookups", {})).items()}
    if kind == "contract" and not lookups:
        raise MappingError(f"{where}: customer_lookups is required for contracts")
    used = {rule.values for rule in rules if rule.values}
    return EntityMapping(kind, direction, tuple(rules), constants, lookups,
                         {name: value_tables[name] for name in used})


def parse_mapping(text: str, source: str = "<mapping>", defaults: Mapping | None = None) -> Mapping:
    """Parse and check a TOML mapping; sections it lacks are taken from ``defaults``, if given."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{source}: {exc}") from exc
    value_tables = _parse_value_tables(data.pop(VALUE_TABLES, {}), source)
    parsers: dict[str, Callable[[str, Any, str, dict[str, dict[str, str]]],
                                EntityMapping | DailyUpToCrmMapping | AmeiseToDailyUpMapping]] = {
        CRM_TO_AMEISE: _parse_crm_to_ameise, AMEISE_TO_CRM: _parse_ameise_to_crm,
        AMEISE_TO_DAILYUP: _parse_ameise_to_dailyup}
    entities: dict[tuple[str, str], EntityMapping | DailyUpToCrmMapping | AmeiseToDailyUpMapping] = {}
    for kind, directions in data.items():
        if kind not in ENTITY_KINDS:
            raise MappingError(f"{source}: unknown entity kind [{kind}]; known: {', '.join(ENTITY_KINDS)}")
        for direction, table in directions.items():
            if direction not in DIRECTIONS:
                raise MappingError(f"{source}: unknown direction [{kind}.{direction}]; known: {', '.join(DIRECTIONS)}")
            entities[(kind, direction)] = parsers[direction](kind, table, source, value_tables)
    if defaults is not None:
        for key, entity in defaults.entities.items():
            entities.setdefault(key, entity)
    return Mapping(entities, source, value_tables)


def load_mapping(path: str | None = None) -> Mapping:
    """Load the mapping file at ``path``, or the bundled default."""
    if path:
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise MappingError(f"cannot read mapping file {file}: {exc.strerror}") from exc
        # A mapping written before the ameise_to_dailyup sections existed keeps the bundled ones.
        defaults = load_mapping()
        bundled = {key: entity for key, entity in defaults.entities.items() if key[1] == AMEISE_TO_DAILYUP}
        return parse_mapping(text, str(file), Mapping(bundled, DEFAULT_MAPPING))
    text = resources.files("syncbridge.mappings").joinpath(DEFAULT_MAPPING).read_text(encoding="utf-8")
    return parse_mapping(text, DEFAULT_MAPPING)
