"""Reading the nested Ameise customer in tests."""
from __future__ import annotations

from typing import Any


def contact(customer: dict[str, Any] | None, typ: str, kontext: str | None = None) -> str | None:
    """The Value of a customer's first Kontaktdaten entry of ``typ`` (and ``kontext``, if given)."""
    for entry in (customer or {}).get("Kontaktdaten") or []:
        if entry.get("Typ") == typ and kontext in (None, entry.get("Kontext")):
            return entry.get("Value")
    return None


def contacts(customer: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(Typ, Kontext, Value) of every Kontaktdaten entry, in order."""
    return [(e["Typ"], e["Kontext"], e["Value"]) for e in (customer or {}).get("Kontaktdaten") or []]


def person(customer: dict[str, Any] | None) -> dict[str, Any]:
    return (customer or {}).get("Person") or {}


def address(customer: dict[str, Any] | None) -> dict[str, Any]:
    return (customer or {}).get("Hauptwohnsitz") or {}
