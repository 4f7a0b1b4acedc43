"""DailyUp deliveries for the Imports page's tests: written, optionally tampered with, and imported."""
from __future__ import annotations

import zipfile
from pathlib import Path

from syncbridge.bootstrap import bootstrap_dailyup
from syncbridge.config import Settings
from syncbridge.dailyup.generate import write_delivery
from syncbridge.dailyup.intake import import_delivery

FORMULA = "=1+2"             # a Nachname a spreadsheet would compute


def delivery(directory: Path, *, customers: int = 4, generation: int = 0, formula: bool = False,
             bad_date: bool = False) -> Path:
    """A synthetic delivery; ``formula`` makes the first customer's Nachname formula-like text,
    ``bad_date`` gives the second customer a date that does not exist (a row error)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = write_delivery(directory, customers=customers, generation=generation)
    if not (formula or bad_date):
        return path
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    lines = members["kunden.csv"].decode("utf-8").split("\r\n" if b"\r\n" in members["kunden.csv"] else "\n")
    header = lines[0].split(";")
    if formula:
        cells = lines[1].split(";")
        cells[header.index("Nachname")] = FORMULA
        lines[1] = ";".join(cells)
    if bad_date:
        cells = lines[2].split(";")
        cells[header.index("GeaendertAm")] = "31.02.2025"
        lines[2] = ";".join(cells)
    members["kunden.csv"] = ("\r\n" if b"\r\n" in members["kunden.csv"] else "\n").join(lines).encode("utf-8")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def imported(settings: Settings, path: Path):
    """Import ``path`` as the DailyUp worker would (archived afterwards, deltas left in the outbox)."""
    with bootstrap_dailyup(settings, publish=False, migrate=False) as (importer, folder):
        return import_delivery(importer, folder, path, source="cli", keep_original=True)
