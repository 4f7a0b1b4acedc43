"""Zoho's search criteria: ``(Field:equals:value)`` parsed and matched."""
from __future__ import annotations

import logging
import re
from typing import Any

log = logging.getLogger(__name__)

class CriteriaError(ValueError):
    """A search criteria string is malformed."""


# ------------------------------------------------------------------ search criteria
def parse_criteria(text: str):
    """Parse ``((A:equals:x)and(B:starts_with:y))`` into a tree of ("and"|"or", [...]) and ("cond", f, op, values)."""
    node, pos = _parse_expr(text, 0)
    if pos != len(text):
        raise CriteriaError(f"unexpected text at {pos}: {text[pos:]!r}")
    return node


def _parse_expr(text: str, pos: int):
    groups: list[list] = [[]]  # "and" binds tighter than "or": a list of and-groups joined by or
    node, pos = _parse_term(text, pos)
    groups[-1].append(node)
    while True:
        rest = text[pos:].lstrip()
        skipped = len(text) - pos - len(rest)
        lowered = rest[:4].lower()
        if lowered.startswith("and") and rest[3:4] in ("(", " "):
            pos += skipped + 3
        elif lowered.startswith("or") and rest[2:3] in ("(", " "):
            pos += skipped + 2
            groups.append([])
        else:
            break
        node, pos = _parse_term(text, pos)
        groups[-1].append(node)
    ands = [grp[0] if len(grp) == 1 else ("and", grp) for grp in groups]
    return (ands[0] if len(ands) == 1 else ("or", ands)), pos


def _parse_term(text: str, pos: int):
    while pos < len(text) and text[pos] == " ":
        pos += 1
    if pos >= len(text) or text[pos] != "(":
        raise CriteriaError(f"expected '(' at {pos}")
    pos += 1
    if pos < len(text) and text[pos] in "( ":
        node, pos = _parse_expr(text, pos)
        while pos < len(text) and text[pos] == " ":
            pos += 1
        if pos >= len(text) or text[pos] != ")":
            raise CriteriaError(f"expected ')' at {pos}")
        return node, pos + 1
    match = re.compile(r"([A-Za-z0-9_$.]+):([a-z_]+):").match(text, pos)
    if not match:
        raise CriteriaError(f"expected Field:operator:value at {pos}")
    field_name, operator = match.group(1), match.group(2)
    pos = match.end()
    values, current = [], []
    while True:
        if pos >= len(text):
            raise CriteriaError("unterminated condition")
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            current.append(text[pos + 1])
            pos += 2
            continue
        if char == ",":
            values.append("".join(current))
            current = []
        elif char == ")":
            values.append("".join(current))
            return ("cond", field_name, operator, values), pos + 1
        else:
            current.append(char)
        pos += 1


def _plain(value: Any) -> list[str]:
    """Return the strings a stored value can be matched by (a lookup by its id and its name)."""
    if isinstance(value, dict):
        return [str(v) for v in (value.get("id"), value.get("name")) if v is not None]
    if value is None:
        return []
    if isinstance(value, bool):
        return ["true" if value else "false"]
    return [str(value)]


def _same(stored: str, wanted: str) -> bool:
    try:
        return float(stored) == float(wanted)
    except ValueError:
        return stored.casefold() == wanted.casefold()


def _matches(node, record: dict[str, Any]) -> bool:
    kind = node[0]
    if kind == "and":
        return all(_matches(child, record) for child in node[1])
    if kind == "or":
        return any(_matches(child, record) for child in node[1])
    _, field_name, operator, values = node
    name, _, sub = field_name.partition(".")
    stored = record.get(name)
    if sub and isinstance(stored, dict):
        stored = stored.get(sub)
    candidates = _plain(stored)
    if operator in ("equals", "in"):
        return any(_same(c, v) for c in candidates for v in values)
    if operator == "not_equal":
        return not any(_same(c, v) for c in candidates for v in values)
    if operator == "starts_with":
        return any(c.casefold().startswith(v.casefold()) for c in candidates for v in values)
    raise CriteriaError(f"operator {operator!r} is not supported")


def _digits(value: Any) -> str:
    return "".join(ch for ch in str(value) if ch.isdigit())


def _norm(value: Any) -> str:
    return str(value).strip().casefold()
