"""A table as XLSX: typed dates and amounts, text never a formula, characters a worksheet cannot hold left out."""
from __future__ import annotations

import io
from datetime import datetime

from openpyxl import load_workbook

from syncbridge.dailyup.export import xlsx_chunks


def test_values_are_typed_and_formula_like_text_stays_text():
    columns = ["Vertragsnummer", "Beginn", "BeitragBrutto", "Bemerkung"]
    rows = [
        {"Vertragsnummer": "VN-1", "Beginn": "2025-01-31", "BeitragBrutto": "123.45", "Bemerkung": "=cmd|' /C calc'!A0"},
        {"Vertragsnummer": "@SUM(1)", "Beginn": "2025-02-30", "BeitragBrutto": "n/a", "Bemerkung": "Zeile\x01eins"},
        {"Vertragsnummer": "VN-3"},
    ]

    data = b"".join(xlsx_chunks(columns, iter(rows), sheet="vertraege", size=512))
    book = load_workbook(io.BytesIO(data))
    sheet = book["vertraege"]
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]

    assert values[0] == columns
    assert values[1] == ["VN-1", datetime(2025, 1, 31), 123.45, "=cmd|' /C calc'!A0"]
    assert sheet["D2"].data_type == "s" and sheet["A3"].data_type == "s"       # no formula anywhere
    assert sheet["B2"].number_format == "DD.MM.YYYY"
    assert values[2] == ["@SUM(1)", "2025-02-30", "n/a", "Zeileeins"]           # no such day: kept as text
    assert values[3] == ["VN-3", None, None, None]
