"""Tables of a delivery as CSV that a spreadsheet opens correctly.

German spreadsheets expect what the delivery itself uses: ``;`` between fields,
dates as ``DD.MM.YYYY`` and a decimal comma; a UTF-8 byte order mark makes them
read umlauts right.  A text that starts like a formula (``=``, ``+``, ``-``,
``@``) is prefixed with ``'`` so opening the file never runs anything.
The same tables as XLSX (:func:`xlsx_chunks`) keep every text a text cell.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import re
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from syncbridge.deliveries import COLUMNS, DECIMAL_COLUMNS, TABLES, ParsedRow

BOM = "\ufeff"
ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def spreadsheet_value(column: str, value: object) -> str:
    """One normalized value as a German spreadsheet reads it."""
    if value is None:
        return ""
    text = str(value)
    if column in DECIMAL_COLUMNS and NUMBER.match(text):
        return text.replace(".", ",")
    match = ISO_DATE.match(text)
    if match:
        return f"{match[3]}.{match[2]}.{match[1]}"
    if text.startswith(FORMULA_START):
        return "'" + text
    return text


def csv_lines(columns: list[str], rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The CSV text line by line: BOM and header first, then one line per row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(columns)
    yield BOM + take()
    for row in rows:
        writer.writerow([spreadsheet_value(c, row.get(c)) for c in columns])
        yield take()


def chunked(lines: Iterable[str], size: int = 65536) -> Iterator[bytes]:
    """Group lines into byte chunks of about ``size`` for a streamed answer or a file."""
    parts: list[str] = []
    length = 0
    for line in lines:
        parts.append(line)
        length += len(line)
        if length >= size:
            yield "".join(parts).encode("utf-8")
            parts, length = [], 0
    if parts:
        yield "".join(parts).encode("utf-8")


class ExportUnavailable(LookupError):
    """The table cannot be exported (unknown name, or the delivery is no longer archived)."""


ERROR_COLUMNS = ["file", "line", "column", "key", "message"]
EXPORTABLE_STATES = ("accepted", "published")   # the imports whose tables were taken in
LOOK_BACK = 500


def check_table(name: str) -> None:
    """Raise ExportUnavailable unless ``name`` is a table of deliveries or ``errors``."""
    if name != "errors" and name not in TABLES:
        raise ExportUnavailable(f"no table {name!r}; the tables are {', '.join(TABLES)} and errors")


def latest_exportable(store: Any, name: str) -> Any:
    """The import whose table ``name`` is exported by default: the newest accepted one.

    A rejected (or superseded) delivery is skipped: its tables were never taken in.
    The row errors (``errors``) are those of the newest import, whatever its state.
    """
    if name == "errors":
        return store.latest_import()
    return next((imp for imp in store.imports(limit=LOOK_BACK) if imp.state in EXPORTABLE_STATES), None)


def import_table(store: Any, folder: Any, imp: Any, name: str,
                 reader_options: dict[str, Any]) -> tuple[list[str], Iterator[dict[str, Any]]]:
    """The columns and rows of table ``name`` of an import, or its row errors for ``errors``.

    Tables are read again from the archived delivery, through the same reader and
    contracts as the import: what is exported is what was accepted.
    """
    from syncbridge.dailyup.reader import open_delivery

    check_table(name)
    if name == "errors":
        return ERROR_COLUMNS, (dataclasses.asdict(e) for e in store.row_errors(imp.id))
    path = folder.archive_path(imp.sha256, imp.file_name)
    if not path.exists():
        raise ExportUnavailable(f"{imp.file_name} is not in the archive (import {imp.id} is {imp.state})")
    delivery = open_delivery(path, file_name=imp.file_name, **reader_options)
    if name not in delivery.tables:
        delivery.close()
        raise ExportUnavailable(f"{imp.file_name} has no table {name}")
    missing = set(delivery.missing_columns.get(name, ()))
    columns = [c for c in COLUMNS[name] if c not in missing] + list(delivery.extra_columns.get(name, ()))

    def rows() -> Iterator[dict[str, Any]]:
        with delivery:
            for item in delivery.rows(name):
                if isinstance(item, ParsedRow):
                    yield {**item.extra, **item.data}

    return columns, rows()


# ---------------------------------------------------------------- XLSX
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
GERMAN_DATE = "DD.MM.YYYY"


def xlsx_value(column: str, value: object) -> str | float | datetime | None:
    """One normalized value as an XLSX cell takes it: dates and decimals typed, everything else text.

    Text is always stored as text (never as a formula, whatever it starts with), and
    characters a worksheet cannot hold (control characters) are left out.
    """
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if value is None:
        return None
    text = str(value)
    if column in DECIMAL_COLUMNS and NUMBER.match(text):
        return float(text)             # as exact as a spreadsheet's own numbers
    match = ISO_DATE.match(text)
    if match:
        try:
            return datetime(int(match[1]), int(match[2]), int(match[3]))   # shown as a date (GERMAN_DATE)
        except ValueError:
            return text
    return ILLEGAL_CHARACTERS_RE.sub("", text)


def xlsx_chunks(columns: list[str], rows: Iterable[dict[str, Any]], *, sheet: str = "Tabelle",
                size: int = 65536) -> Iterator[bytes]:
    """The table as an XLSX workbook in byte chunks.

    openpyxl's write-only workbook streams the rows to a temporary file (memory stays
    flat for a million rows); the finished file is then read out in chunks and removed.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    worksheet = workbook.create_sheet(sheet[:31])
    worksheet.append(columns)

    def cell(column: str, raw: object) -> object:
        value = xlsx_value(column, raw)
        written = WriteOnlyCell(worksheet, value=value)
        if isinstance(value, str):
            written.data_type = "s"        # "=1+1" stays the text it was: no formula
        elif isinstance(value, datetime):
            written.number_format = GERMAN_DATE
        return written

    with tempfile.TemporaryFile() as out:
        for row in rows:
            worksheet.append([cell(c, row.get(c)) for c in columns])
        workbook.save(out)
        out.seek(0)
        while chunk := out.read(size):
            yield chunk
