"""Apply the declarative field mapping (``syncbridge/mappings/default.toml``).

The mapping is data: which CRM field goes to which Ameise field, with a type.
This module only reads it, checks it, and applies it.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from syncbridge.config import ENTITY_KINDS

DIRECTIONS = ("crm_to_ameise",)
DEFAULT_MAPPING = "default.toml"


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
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return int(number) if number == number.to_integral_value() else float(number)


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "string": _as_string,
    "code": _as_code,
    "date": _as_date,
    "decimal": _as_decimal,
}


def _read_path(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _write_path(target: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


@dataclass(frozen=True)
class FieldRule:
    crm: str
    ameise: str
    type: str = "string"


@dataclass(frozen=True)
class EntityMapping:
    """The mapping of one entity kind in one direction."""

    kind: str
    direction: str
    fields: tuple[FieldRule, ...]
    constants: dict[str, Any] = field(default_factory=dict)
    customer_lookups: dict[str, str] = field(default_factory=dict)

    def to_ameise(self, record: dict[str, Any]) -> dict[str, Any]:
        """Build the Ameise body from a CRM record; empty CRM values are left out."""
        result: dict[str, Any] = {}
        for rule in self.fields:
            raw = _read_path(record, rule.crm)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                continue
            try:
                value = CONVERTERS[rule.type](raw)
            except ValueError as exc:
                raise FieldValueError(rule.crm, str(exc)) from exc
            if value == "":
                continue
            _write_path(result, rule.ameise, value)
        for path, value in self.constants.items():
            _write_path(result, path, value)
        return result


@dataclass(frozen=True)
class Mapping:
    """Every entity mapping, by (kind, direction)."""

    entities: dict[tuple[str, str], EntityMapping]
    source: str

    def get(self, kind: str, direction: str = "crm_to_ameise") -> EntityMapping:
        try:
            return self.entities[(kind, direction)]
        except KeyError:
            raise MappingError(f"{self.source}: no mapping for [{kind}.{direction}]") from None


def _parse_entity(kind: str, direction: str, table: dict[str, Any], source: str) -> EntityMapping:
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
        extra = set(raw) - {"crm", "ameise", "type"}
        if extra:
            raise MappingError(f"{where}: field rule {raw['crm']!r} has unknown keys {sorted(extra)}")
        rule = FieldRule(str(raw["crm"]), str(raw["ameise"]), str(raw.get("type", "string")))
        if rule.type not in CONVERTERS:
            raise MappingError(f"{where}: field {rule.crm!r} has type {rule.type!r}; known: {', '.join(CONVERTERS)}")
        if rule.ameise in targets:
            raise MappingError(f"{where}: Ameise field {rule.ameise!r} is mapped twice")
        targets.add(rule.ameise)
        rules.append(rule)
    if not rules:
        raise MappingError(f"{where}: no field rules")
    constants = dict(table.get("constants", {}))
    lookups = {str(k): str(v) for k, v in dict(table.get("customer_lookups", {})).items()}
    if kind == "contract" and not lookups:
        raise MappingError(f"{where}: customer_lookups is required for contracts")
    return EntityMapping(kind, direction, tuple(rules), constants, lookups)


def parse_mapping(text: str, source: str = "<mapping>") -> Mapping:
    """Parse and check a TOML mapping."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{source}: {exc}") from exc
    entities: dict[tuple[str, str], EntityMapping] = {}
    for kind, directions in data.items():
        if kind not in ENTITY_KINDS:
            raise MappingError(f"{source}: unknown entity kind [{kind}]; known: {', '.join(ENTITY_KINDS)}")
        for direction, table in directions.items():
            if direction not in DIRECTIONS:
                raise MappingError(f"{source}: unknown direction [{kind}.{direction}]; known: {', '.join(DIRECTIONS)}")
            entities[(kind, direction)] = _parse_entity(kind, direction, table, source)
    return Mapping(entities, source)


def load_mapping(path: str | None = None) -> Mapping:
    """Load the mapping file at ``path``, or the bundled default."""
    if path:
        file = Path(path)
        try:
            return parse_mapping(file.read_text(encoding="utf-8"), str(file))
        except OSError as exc:
            raise MappingError(f"cannot read mapping file {file}: {exc.strerror}") from exc
    text = resources.files("syncbridge.mappings").joinpath(DEFAULT_MAPPING).read_text(encoding="utf-8")
    return parse_mapping(text, DEFAULT_MAPPING)
