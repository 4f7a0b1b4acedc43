"""The DailyUp reader and the row contracts, on real ZIP files written to tmp_path."""
from __future__ import annotations

import hashlib
import struct
import threading
import time
import tracemalloc
import zipfile
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

import pytest

from syncbridge.dailyup.generate import csv_bytes, write_zip
from syncbridge.dailyup.reader import DeliveryRejected, ReadingStopped, open_delivery
from syncbridge.deliveries import (
    CONTRACT_COLUMNS,
    CUSTOMER_COLUMNS,
    DeliveryName,
    ParsedRow,
    RowError,
)

NAME = "DailyUp_100200_20261123.zip"


def customer(**values: str) -> dict[str, str]:
    row = {
        "Kundennummer": "5001234567", "Vermittlernummer": "100200", "Personentyp": "natuerlich", "Anrede": "1",
        "Titel": "Dr.", "Vorname": "Jürgen", "Nachname": "Müller", "Geburtsdatum": "01.02.1970",
        "Strasse": "Schloßallee 3", "PLZ": "01067", "Ort": "Dresden", "Land": "DE", "Email": "j.mueller@web.de",
        "Telefon": "0351 1234567", "LetzterLogin": "20.11.2026", "GeaendertAm": "21.11.2026",
    }
    return {**row, **values}


def contract(**values: str) -> dict[str, str]:
    row = {
        "Vertragsnummer": "VN-1", "Kundennummer": "5001234567", "Versicherungsscheinnummer": "KH 4711/0815",
        "Gesellschaft": "1001", "Sparte": "010", "Status": "1", "BeitragBrutto": "1.234,56",
        "BeitragNetto": "1.037,44", "Zahlweise": "12", "Beginn": "01.01.2020", "Ablauf": "", "Risiko": "DD-AB 12",
        "Vermittlernummer": "100200", "GeaendertAm": "21.11.2026",
    }
    return {**row, **values}


def kunden(*rows: dict, encoding: str = "utf-8", bom: bool = False) -> bytes:
    return csv_bytes(CUSTOMER_COLUMNS, rows or [customer()], encoding=encoding, bom=bom)


def vertraege(*rows: dict) -> bytes:
    return csv_bytes(CONTRACT_COLUMNS, rows or [contract()])


def delivery(tmp_path: Path, name: str = NAME, **members: bytes | None) -> Path:
    """Write a delivery: ``table=bytes`` sets ``table.csv`` (None leaves it out), ``a__txt=`` adds ``a.txt``."""
    files = {"kunden.csv": kunden(), "vertraege.csv": vertraege()}
    files.update({m.replace("__", ".") if "__" in m else f"{m}.csv": data for m, data in members.items()})
    return write_zip(tmp_path / name, {member: data for member, data in files.items() if data is not None})


def read(path: Path, table: str = "kunden", **options) -> list[ParsedRow | RowError]:
    with open_delivery(path, **options) as opened:
        return list(opened.rows(table))


def read_everything(path: Path, **options) -> None:
    with open_delivery(path, **options) as opened:
        for table in opened.tables:
            for _ in opened.rows(table):
                pass


def errors(items) -> list[RowError]:
    return [i for i in items if isinstance(i, RowError)]


def parsed(items) -> list[ParsedRow]:
    return [i for i in items if isinstance(i, ParsedRow)]


# ---------------------------------------------------------------------- the delivery
def test_delivery_tells_name_checksum_size_and_tables(tmp_path):
    path = delivery(tmp_path, sparten=csv_bytes(["ID", "Text"], [["010", "Kfz-Haftpflicht"]]),
                    liesmich__txt=b"hello")
    data = path.read_bytes()
    with open_delivery(path) as opened:
        assert opened.name == DeliveryName("100200", date(2026, 11, 23))
        assert opened.sha256 == hashlib.sha256(data).hexdigest()
        assert opened.size == len(data)
        assert opened.file_name == NAME
        assert opened.tables == ("kunden", "vertraege", "sparten")
        assert opened.unknown_files == ["liesmich.txt"]
        assert [r.data for r in opened.rows("sparten")] == [{"ID": "010", "Text": "Kfz-Haftpflicht"}]


def test_file_name_given_wins_over_the_path(tmp_path):
    path = delivery(tmp_path, name="3f2a9c-archived.zip")
    with open_delivery(path, file_name="DailyUp_A7_20261201.zip") as opened:
        assert opened.name == DeliveryName("A7", date(2026, 12, 1))
        assert opened.file_name == "DailyUp_A7_20261201.zip"


@pytest.mark.parametrize("name", ["Daily_100200_20261123.zip", "DailyUp_100200_20261131.zip", "DailyUp_100200.zip"])
def test_misnamed_delivery_is_rejected(tmp_path, name):
    path = delivery(tmp_path, name=name)
    with pytest.raises(DeliveryRejected, match="DailyUp_"):
        open_delivery(path)


def test_closes_the_zip(tmp_path):
    with open_delivery(delivery(tmp_path)) as opened:
        pass
    with pytest.raises(ValueError):
        list(opened.rows("kunden"))


# ---------------------------------------------------------------------- encodings
ROW_WITH_UMLAUTS = customer(Vorname="Jörg", Nachname="Weiß-Übel", Ort="Düsseldorf", Strasse="Kö 5 (Büro 2 €)")


@pytest.mark.parametrize(
    ("encoding", "bom", "option", "used"),
    [
        ("utf-8", False, "auto", "utf-8"),
        ("utf-8", True, "auto", "utf-8-sig"),
        ("cp1252", False, "auto", "cp1252"),
        ("utf-8", False, "utf-8", "utf-8"),
        ("utf-8", True, "utf-8", "utf-8-sig"),
        ("cp1252", False, "cp1252", "cp1252"),
    ],
)
def test_reads_each_encoding_detected_or_given(tmp_path, encoding, bom, option, used):
    path = delivery(tmp_path, kunden=kunden(ROW_WITH_UMLAUTS, encoding=encoding, bom=bom))
    with open_delivery(path, encoding=option) as opened:
        assert opened.encodings["kunden"] == used
        (row,) = list(opened.rows("kunden"))
    assert (row.data["Vorname"], row.data["Nachname"], row.data["Ort"]) == ("Jörg", "Weiß-Übel", "Düsseldorf")
    assert row.data["Strasse"] == "Kö 5 (Büro 2 €)"
    assert row.data["Kundennummer"] == "5001234567"     # the BOM is not part of the first column's name


@pytest.mark.parametrize("option", ["auto", "iso-8859-1", "latin-1"])
def test_reads_iso_8859_1(tmp_path, option):
    path = delivery(tmp_path, kunden=kunden(customer(Nachname="Groß", Ort="Würzburg"), encoding="iso-8859-1"))
    with open_delivery(path, encoding=option) as opened:
        # Without bytes CP1252 lacks, ISO-8859-1 text reads the same as CP1252: both are right.
        assert opened.encodings["kunden"] == ("cp1252" if option == "auto" else "iso-8859-1")
        (row,) = list(opened.rows("kunden"))
    assert (row.data["Nachname"], row.data["Ort"]) == ("Groß", "Würzburg")


def test_detects_iso_8859_1_by_bytes_cp1252_does_not_define(tmp_path):
    text = "Kundennummer;Personentyp;Nachname\r\n5001234567;natuerlich;M\u00fcller\u008d\r\n"
    path = delivery(tmp_path, kunden=text.encode("iso-8859-1"))
    with open_delivery(path) as opened:
        assert opened.encodings["kunden"] == "iso-8859-1"
        (row,) = list(opened.rows("kunden"))
    assert row.data["Nachname"] == "Müller\u008d"


def test_each_table_has_its_own_encoding(tmp_path):
    path = delivery(tmp_path, kunden=kunden(ROW_WITH_UMLAUTS, encoding="cp1252"))
    with open_delivery(path) as opened:
        assert opened.encodings == {"kunden": "cp1252", "vertraege": "utf-8"}


def test_bytes_not_of_the_given_encoding_reject_the_delivery(tmp_path):
    plain = {"Vorname": "Paul", "Nachname": "Meyer", "Strasse": "Hauptstr. 3"}
    lines = [customer(Kundennummer=f"50012345{n:02d}", **plain) for n in range(3)] + [ROW_WITH_UMLAUTS]
    path = delivery(tmp_path, kunden=kunden(*lines, encoding="cp1252"))
    with pytest.raises(DeliveryRejected, match=r"kunden\.csv: line 5 is not valid utf-8 \(byte 0xF6"):
        open_delivery(path, encoding="utf-8")


def test_bytes_cp1252_does_not_define_reject_a_cp1252_delivery(tmp_path):
    path = delivery(tmp_path, kunden="Kundennummer;Personentyp\r\n5001234567;natuerlich\x81\r\n".encode("latin-1"))
    with pytest.raises(DeliveryRejected, match=r"kunden\.csv: line 2 is not valid cp1252"):
        open_delivery(path, encoding="cp1252")


def test_a_utf8_file_with_bom_and_broken_bytes_is_rejected(tmp_path):
    path = delivery(tmp_path, kunden=b"\xef\xbb\xbfKundennummer;Personentyp\r\n5001234567;nat\xfcrlich\r\n")
    with pytest.raises(DeliveryRejected, match="kunden.csv.*not utf-8-sig"):
        open_delivery(path)


def test_unknown_encoding_option_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError, match="unknown delivery encoding"):
        open_delivery(delivery(tmp_path), encoding="utf-16")


# ---------------------------------------------------------------------- CSV details
def test_embedded_delimiters_quotes_and_line_breaks_round_trip_and_lines_stay_physical(tmp_path):
    firma = 'Weiß & Söhne "Holzbau"; Niederlassung Süd\r\nHinterhaus'
    rows = [customer(Personentyp="juristisch", Firma=firma, Nachname=""),
            customer(Kundennummer="5001234568", Strasse="Am Bach 1;\nc/o \"Meier\"")]
    with open_delivery(delivery(tmp_path, kunden=kunden(*rows))) as opened:
        first, second = opened.rows("kunden")
    assert first.data["Firma"] == firma
    assert second.data["Strasse"] == 'Am Bach 1;\nc/o "Meier"'
    assert (first.line, second.line) == (2, 4)


def test_dates_and_decimal_comma_are_normalized(tmp_path):
    row = contract(BeitragBrutto="1.234,50", BeitragNetto="1037,00", Beginn="1.2.2020", Ablauf="31.12.2045")
    (item,) = read(delivery(tmp_path, vertraege=vertraege(row)), "vertraege")
    assert (item.data["BeitragBrutto"], item.data["BeitragNetto"]) == ("1234.5", "1037")
    assert (item.data["Beginn"], item.data["Ablauf"]) == ("2020-02-01", "2045-12-31")
    assert item.data["GeaendertAm"] == "2026-11-21"


def test_other_date_and_number_formats_are_options(tmp_path):
    row = contract(BeitragBrutto="1,234.50", BeitragNetto="1037.4", Beginn="2020-02-01", Ablauf="", GeaendertAm="")
    path = delivery(tmp_path, vertraege=vertraege(row))
    (item,) = read(path, "vertraege", date_format="%Y-%m-%d", decimal_comma=False)
    assert [item.data[c] for c in ("BeitragBrutto", "BeitragNetto", "Beginn")] == ["1234.5", "1037.4", "2020-02-01"]
    wrong = read(path, "vertraege")      # the same file read as a German one: refused, never guessed
    assert {(e.column, e.message) for e in errors(wrong)} == {("BeitragBrutto", "Not a valid number."),
                                                                ("BeitragNetto", "Not a valid number."),
                                                                ("Beginn", "Not a valid date.")}


def test_strings_are_stripped_and_empty_is_none(tmp_path):
    (row,) = read(delivery(tmp_path, kunden=kunden(customer(Vorname="  Jürgen ", Titel="  ", PLZ=" 01067"))))
    assert (row.data["Vorname"], row.data["Titel"], row.data["PLZ"]) == ("Jürgen", None, "01067")


def test_header_names_are_matched_after_stripping(tmp_path):
    # A byte order mark written twice leaves one in the text after decoding.
    text = "\ufeff\ufeff Kundennummer ;Personentyp\t;Nachname\r\n5001234567;natuerlich;Müller\r\n"
    (row,) = read(delivery(tmp_path, kunden=text.encode("utf-8")))
    assert row.data == {"Kundennummer": "5001234567", "Personentyp": "natuerlich", "Nachname": "Müller"}


def test_extra_columns_are_kept_aside(tmp_path):
    text = "Kundennummer;Bonitaet;Personentyp;Nachname;Hobby\r\n5001234567; A ;natuerlich;Müller;Segeln\r\n"
    with open_delivery(delivery(tmp_path, kunden=text.encode())) as opened:
        assert opened.extra_columns["kunden"] == ["Bonitaet", "Hobby"]
        assert opened.extra_columns["vertraege"] == []
        (row,) = list(opened.rows("kunden"))
    assert row.extra == {"Bonitaet": " A ", "Hobby": "Segeln"}
    assert "Bonitaet" not in row.data


def test_missing_optional_columns_are_absent_not_empty(tmp_path):
    text = "Kundennummer;Personentyp;Nachname;Email\r\n5001234567;natuerlich;Müller;\r\n"
    with open_delivery(delivery(tmp_path, kunden=text.encode())) as opened:
        assert "Telefon" in opened.missing_columns["kunden"]
        assert "Email" not in opened.missing_columns["kunden"]
        assert opened.missing_columns["vertraege"] == []
        (row,) = list(opened.rows("kunden"))
    assert row.data == {"Kundennummer": "5001234567", "Personentyp": "natuerlich", "Nachname": "Müller", "Email": None}


def test_the_name_rule_asks_only_for_columns_delivered(tmp_path):
    text = "Kundennummer;Personentyp\r\n5001234567;natuerlich\r\n5001234568;juristisch\r\n"
    assert [r.key for r in parsed(read(delivery(tmp_path, kunden=text.encode())))] == ["5001234567", "5001234568"]


def test_empty_lines_are_skipped_and_do_not_shift_line_numbers(tmp_path):
    text = ("Kundennummer;Personentyp;Nachname\r\n\r\n5001234567;natuerlich;A\r\n;;\r\n"
            "5001234568;natuerlich;B\r\n\r\n\r\n   \r\n")
    items = read(delivery(tmp_path, kunden=text.encode()))
    assert [(i.line, i.key) for i in items] == [(3, "5001234567"), (5, "5001234568")]


def test_trailing_empty_fields_hold_no_data_and_are_accepted(tmp_path):
    text = "Kundennummer;Personentyp;Nachname\r\n5001234567;natuerlich;A;;\r\n"
    (row,) = read(delivery(tmp_path, kunden=text.encode()))
    assert isinstance(row, ParsedRow) and row.data["Nachname"] == "A"


def test_unnamed_header_columns_are_kept_as_extra(tmp_path):
    text = "Kundennummer;Personentyp;;Nachname\r\n5001234567;natuerlich;x;A\r\n"
    with open_delivery(delivery(tmp_path, kunden=text.encode())) as opened:
        assert opened.extra_columns["kunden"] == ["(column 3)"]
        (row,) = list(opened.rows("kunden"))
    assert row.extra == {"(column 3)": "x"}


# ---------------------------------------------------------------------- row errors: the import goes on
def test_duplicate_keys_first_row_wins(tmp_path):
    rows = [customer(Nachname="Erster"), customer(Kundennummer="5001234568"), customer(Nachname="Zweiter")]
    items = read(delivery(tmp_path, kunden=kunden(*rows)))
    assert [(i.key, i.data["Nachname"]) for i in parsed(items)] == [("5001234567", "Erster"), ("5001234568", "Müller")]
    assert errors(items) == [RowError("kunden.csv", 4, "Kundennummer",
                                      "duplicate Kundennummer 5001234567 (first at line 2)", "5001234567")]


def test_rows_as_known_are_counted_not_yielded_and_their_keys_still_count_for_duplicates(tmp_path):
    rows = [customer(), customer(Kundennummer="5001234568"), customer(Nachname="Zweiter"), customer(),
            customer(Kundennummer="5001234569")]
    path = delivery(tmp_path, kunden=kunden(*rows))
    with open_delivery(path) as opened:
        digests = {row.key: row.raw_hash for row in parsed(opened.rows("kunden"))}
        known: dict[str, bytes | int | None] = {**digests, "5001234569": b"other", "5009999999": b"gone"}
        items = []
        for item in opened.rows("kunden", known):
            items.append(item)
            if isinstance(item, (ParsedRow, RowError)):
                known.pop(item.key or "", None)     # as the importer does
    first_seen = "duplicate Kundennummer 5001234567 (first at line 2)"
    assert items[:3] == [RowError("kunden.csv", 4, "Kundennummer", first_seen, "5001234567"),
                         RowError("kunden.csv", 5, "Kundennummer", first_seen, "5001234567"),
                         parsed(items)[0]]
    assert parsed(items)[0].key == "5001234569" and items[3:] == [2]
    assert known == {"5001234568": 3, "5009999999": b"gone"}


def test_duplicate_contract_numbers_too(tmp_path):
    items = read(delivery(tmp_path, vertraege=vertraege(contract(), contract(Status="3"))), "vertraege")
    assert [e.message for e in errors(items)] == ["duplicate Vertragsnummer VN-1 (first at line 2)"]
    assert parsed(items)[0].data["Status"] == "1"


def test_invalid_values_give_one_error_per_column_with_file_line_and_key(tmp_path):
    rows = [customer(Kundennummer="5001234560"),
            customer(Kundennummer="5001234561", Geburtsdatum="31.02.1970", Email="kein-at.de"),
            customer(Kundennummer="50012345", Nachname="Kurz"),
            customer(Kundennummer="5001234562", Personentyp="juristisch", Firma=""),
            customer(Kundennummer="5001234563", Personentyp="natuerlich", Nachname=" "),
            customer(Kundennummer="5001234564", Personentyp="person"),
            customer(Kundennummer="5001234565")]
    items = read(delivery(tmp_path, kunden=kunden(*rows)))
    assert [r.key for r in parsed(items)] == ["5001234560", "5001234565"]
    assert [(e.file, e.line, e.column, e.key, e.message) for e in errors(items)] == [
        ("kunden.csv", 3, "Geburtsdatum", "5001234561", "Not a valid date."),
        ("kunden.csv", 3, "Email", "5001234561", "Not a valid email address."),
        ("kunden.csv", 4, "Kundennummer", "50012345", "Must be exactly 10 digits."),
        ("kunden.csv", 5, "Firma", "5001234562", "Required for a legal person (Personentyp juristisch)."),
        ("kunden.csv", 6, "Nachname", "5001234563", "Required for a natural person (Personentyp natuerlich)."),
        ("kunden.csv", 7, "Personentyp", "5001234564", "Must be one of: natuerlich, juristisch."),
    ]


def test_contract_rules(tmp_path):
    rows = [contract(Vertragsnummer="VN 2"), contract(Vertragsnummer="V" * 41), contract(Vertragsnummer=""),
            contract(Vertragsnummer="VN-3", Kundennummer="500123456X"), contract(Vertragsnummer="VN-4", Sparte="10"),
            contract(Vertragsnummer="VN-5", BeitragBrutto="12.5"),
            contract(Vertragsnummer="VN-6", BeitragNetto="zwölf"),
            contract(Vertragsnummer="VN-7", Sparte="", Beginn="")]
    items = read(delivery(tmp_path, vertraege=vertraege(*rows)), "vertraege")
    assert [(e.line, e.column, e.key) for e in errors(items)] == [
        (2, "Vertragsnummer", "VN 2"), (3, "Vertragsnummer", "V" * 41), (4, "Vertragsnummer", None),
        (5, "Kundennummer", "VN-3"), (6, "Sparte", "VN-4"), (7, "BeitragBrutto", "VN-5"), (8, "BeitragNetto", "VN-6"),
    ]
    assert errors(items)[2].message == "Must not be empty."
    assert [r.data for r in parsed(items)] == [{**parsed(items)[0].data, "Vertragsnummer": "VN-7"}]
    assert parsed(items)[0].data["Sparte"] is None


def test_lookup_rows_need_id_and_text(tmp_path):
    path = delivery(tmp_path, zahlweisen=csv_bytes(["ID", "Text"], [["12", "monatlich"], ["1", ""], ["", "x"]]))
    items = read(path, "zahlweisen")
    assert [r.data for r in parsed(items)] == [{"ID": "12", "Text": "monatlich"}]
    assert [(e.line, e.column, e.key) for e in errors(items)] == [(3, "Text", "1"), (4, "ID", None)]


def test_short_and_long_rows_inside_the_file_are_row_errors(tmp_path):
    text = ("Kundennummer;Personentyp;Nachname\r\n5001234567;natuerlich\r\n5001234568;natuerlich;B;x\r\n"
            "5001234569;natuerlich;C\r\n5001234570\r\n")
    items = read(delivery(tmp_path, kunden=text.encode()))
    assert [(e.line, e.key, e.message) for e in errors(items)] == [
        (2, "5001234567", "expected 3 fields, found 2"), (3, "5001234568", "expected 3 fields, found 4"),
        (5, "5001234570", "expected 3 fields, found 1")]
    assert [r.key for r in parsed(items)] == ["5001234569"]


# ---------------------------------------------------------------------- the delivery is rejected
def test_not_a_zip_is_rejected(tmp_path):
    path = tmp_path / NAME
    path.write_bytes(b"Kundennummer;Personentyp\r\n")
    with pytest.raises(DeliveryRejected, match="not a readable ZIP"):
        open_delivery(path)


def test_truncated_zip_is_rejected(tmp_path):
    path = delivery(tmp_path, kunden=kunden(*[customer(Kundennummer=f"50012{n:05d}") for n in range(200)]))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DeliveryRejected, match="not a readable ZIP"):
        open_delivery(path)


@pytest.mark.parametrize("encoding", ["auto", "utf-8", "cp1252"])
def test_member_with_a_crc_error_is_rejected(tmp_path, encoding):
    path = tmp_path / NAME
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("kunden.csv", kunden(customer(Nachname="Mustermann")))
        archive.writestr("vertraege.csv", vertraege())
    data = path.read_bytes()
    assert data.count(b"Mustermann") == 1
    path.write_bytes(data.replace(b"Mustermann", b"Musterfrau"))
    with pytest.raises(DeliveryRejected, match="kunden.csv.*(CRC|damaged)"):
        read_everything(path, encoding=encoding)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                                         zipfile.ZIP_LZMA])
def test_damaged_packed_bytes_of_every_compression_reject(tmp_path, compression):
    # bz2 and lzma fail with errors of their own (OSError, LZMAError), not zipfile's.
    path = tmp_path / NAME
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        archive.writestr("kunden.csv", kunden(*[customer(Kundennummer=f"50012{n:05d}") for n in range(200)]))
        archive.writestr("vertraege.csv", vertraege())
        start = archive.getinfo("kunden.csv").header_offset + 30 + len("kunden.csv")
    data = bytearray(path.read_bytes())
    for at in range(start + 40, start + 400, 7):
        data[at] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(DeliveryRejected, match="kunden.csv"):
        read_everything(path)


@pytest.mark.parametrize("missing", ["kunden", "vertraege"])
def test_a_missing_required_table_rejects(tmp_path, missing):
    with pytest.raises(DeliveryRejected, match=f"{NAME} has no {missing}.csv"):
        open_delivery(delivery(tmp_path, **{missing: None}))


def test_lookup_lists_are_optional(tmp_path):
    with open_delivery(delivery(tmp_path)) as opened:
        assert opened.tables == ("kunden", "vertraege")


@pytest.mark.parametrize(("member", "header", "column"), [
    ("kunden", "Kundennummer;Nachname", "Personentyp"),
    ("kunden", "Kunden-Nr;Personentyp", "Kundennummer"),
    ("vertraege", "Vertragsnummer;Status", "Kundennummer"),
    ("sparten", "ID;Bezeichnung", "Text"),
])
def test_a_missing_key_column_rejects(tmp_path, member, header, column):
    path = delivery(tmp_path, **{member: f"{header}\r\n".encode()})
    with pytest.raises(DeliveryRejected, match=f"the header has no column {column}"):
        open_delivery(path)


def test_a_column_named_twice_rejects(tmp_path):
    path = delivery(tmp_path, kunden=b"Kundennummer;Personentyp;Email;Email\r\n")
    with pytest.raises(DeliveryRejected, match="names column Email twice"):
        open_delivery(path)


def test_a_reason_naming_what_the_delivery_holds_is_one_line(tmp_path):
    path = delivery(tmp_path, kunden=b'Kundennummer;Personentyp;"Zeile\r\nzwei";"Zeile\r\nzwei"\r\n')
    with pytest.raises(DeliveryRejected, match=r"names column Zeile\\r\\nzwei twice$"):
        open_delivery(path)


@pytest.mark.parametrize("content", [b"", b"\r\n\r\n", b"\xef\xbb\xbf"])
def test_an_empty_file_rejects(tmp_path, content):
    path = delivery(tmp_path, sparten=content)
    with pytest.raises(DeliveryRejected, match="sparten.csv is empty: it has no header row"):
        open_delivery(path)


def test_a_header_only_file_is_an_empty_table(tmp_path):
    path = delivery(tmp_path, vertraege=b"Vertragsnummer;Kundennummer\r\n")
    assert read(path, "vertraege") == []


def test_an_unterminated_quote_at_the_end_rejects(tmp_path):
    text = 'Kundennummer;Personentyp;Nachname\r\n5001234567;natuerlich;A\r\n5001234568;natuerlich;"B\r\nund so'
    with pytest.raises(DeliveryRejected, match=r"kunden\.csv: a quoted field of the row at line 3 is not closed"):
        read(delivery(tmp_path, kunden=text.encode()))


def test_bad_quoting_inside_the_file_rejects(tmp_path):
    text = 'Kundennummer;Personentyp;Nachname\r\n5001234567;natuerlich;"A"x\r\n'
    with pytest.raises(DeliveryRejected, match=r"kunden\.csv: the row at line 2 is not valid CSV"):
        read(delivery(tmp_path, kunden=text.encode()))


def test_a_short_last_row_without_line_break_means_a_truncated_file(tmp_path):
    text = "Kundennummer;Personentyp;Nachname\r\n5001234567;natuerlich;A\r\n5001234568;natu"
    with pytest.raises(DeliveryRejected, match=r"kunden\.csv: the last row \(line 3\).*truncated"):
        read(delivery(tmp_path, kunden=text.encode()))


def test_a_short_last_row_with_line_break_is_a_row_error(tmp_path):
    text = "Kundennummer;Personentyp;Nachname\r\n5001234567;natuerlich;A\r\n5001234568;natu\r\n\r\n"
    items = read(delivery(tmp_path, kunden=text.encode()))
    assert [(e.line, e.key) for e in errors(items)] == [(3, "5001234568")]


def test_a_complete_last_row_without_line_break_is_fine(tmp_path):
    text = "Kundennummer;Personentyp;Nachname\r\n5001234567;natuerlich;A"
    assert [r.key for r in parsed(read(delivery(tmp_path, kunden=text.encode())))] == ["5001234567"]


def test_rows_of_an_unknown_table(tmp_path):
    with open_delivery(delivery(tmp_path)) as opened, pytest.raises(KeyError, match="no table sparten"):
        opened.rows("sparten")


# ---------------------------------------------------------------------- hostile input: bounded time and memory
def write_members(path: Path, members: dict[str, Iterable[bytes]]) -> Path:
    """A ZIP whose members are streamed in from chunks, so gigabytes never sit in memory."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, chunks in members.items():
            with archive.open(name, "w", force_zip64=True) as member:
                for chunk in chunks:
                    member.write(chunk)
    return path


def newlines(mib: int) -> Iterator[bytes]:
    block = b"\n" * (1 << 20)
    return (block for _ in range(mib))


def patch_directory(path: Path, member: str, *, file_size: int | None = None, compress_size: int | None = None) -> Path:
    """Make the ZIP's central directory lie about a (not ZIP64) member's sizes."""
    data = bytearray(path.read_bytes())
    at = 0
    while True:
        at = data.index(b"PK\x01\x02", at)
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46:at + 46 + name_length] == member.encode():
            break
        at += 4
    if compress_size is not None:
        struct.pack_into("<I", data, at + 20, compress_size)
    if file_size is not None:
        struct.pack_into("<I", data, at + 24, file_size)
    path.write_bytes(bytes(data))
    return path


def many_columns(count: int) -> bytes:
    return (";".join(["Kundennummer", "Personentyp", *(f"Spalte{i}" for i in range(count - 2))]) + "\r\n").encode()


def test_a_header_with_more_columns_than_the_limit_is_rejected_at_once(tmp_path):
    path = delivery(tmp_path, kunden=many_columns(20_000))
    with pytest.raises(DeliveryRejected, match="kunden.csv: the header has 20000 columns, more than the limit of 1000"):
        open_delivery(path, max_columns=1000)


def test_a_header_of_200k_columns_under_a_high_limit_is_checked_in_linear_time(tmp_path):
    # Checked name against list, this took minutes; against a set it takes a fraction of a second.
    options = {"max_columns": 300_000, "max_row_length": 10_000_000}
    with open_delivery(delivery(tmp_path, kunden=many_columns(200_000)), **options) as opened:
        assert len(opened.columns["kunden"]) == 200_000
        assert len(opened.extra_columns["kunden"]) == 199_998
    twice = many_columns(200_000).replace(b"\r\n", b";Spalte7\r\n")
    with pytest.raises(DeliveryRejected, match="names column Spalte7 twice"):
        open_delivery(delivery(tmp_path / "..", kunden=twice), **options)


def test_a_row_longer_than_the_limit_is_rejected_without_being_read_whole(tmp_path):
    row_mib = 16
    huge_row = [b"Kundennummer;Personentyp\r\n5009999998;", *(b"a;" * (1 << 19) for _ in range(row_mib)), b"\r\n"]
    path = write_members(tmp_path / NAME, {"kunden.csv": huge_row, "vertraege.csv": [vertraege()]})
    tracemalloc.start()
    try:
        with pytest.raises(DeliveryRejected, match="kunden.csv: the row at line 2 is longer than the limit of "
                                                   "1048576 characters"):
            read_everything(path, max_row_length=1 << 20, max_ratio=100_000)   # not the ratio: the row
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak} bytes at the peak for a row of {row_mib} MiB"


def test_a_row_of_many_quoted_lines_is_measured_as_one_row(tmp_path):
    text = b'Kundennummer;Personentyp;Nachname\r\n5001234567;natuerlich;' + b'"x\r\n";' * 50_000 + b"\r\n"
    with pytest.raises(DeliveryRejected, match="the row at line 2 is longer than the limit of 100000 characters"):
        read_everything(delivery(tmp_path, kunden=text), max_row_length=100_000)


def test_a_file_quoting_every_field_reads_as_one_that_does_not(tmp_path):
    rows = [customer(Kundennummer=f"50{n:08d}", Nachname=f"Müller;\r\n{n}" if n % 100 == 0 else f"Müller {n}")
            for n in range(3000)]
    quoted = "".join(";".join('"' + row.get(c, "").replace('"', '""') + '"' for c in CUSTOMER_COLUMNS) + "\r\n"
                     for row in rows)
    text = (";".join(CUSTOMER_COLUMNS) + "\r\n" + quoted).encode()
    assert read(delivery(tmp_path, kunden=text)) == read(delivery(tmp_path / "..", kunden=kunden(*rows)))


def test_a_row_with_more_fields_than_the_limit_is_rejected(tmp_path):
    text = b"Kundennummer;Personentyp\r\n5001234567;natuerlich\r\n5001234568" + b";a" * 4999 + b"\r\n"
    with pytest.raises(DeliveryRejected, match="kunden.csv: the row at line 3 has 5000 fields, more than the limit "
                                               "of 2000"):
        read_everything(delivery(tmp_path, kunden=text), max_fields=2000, max_columns=1000)


def test_a_zip_bomb_of_a_gibibyte_of_newlines_is_rejected_by_its_ratio_before_unpacking(tmp_path):
    path = write_members(tmp_path / NAME, {"kunden.csv": newlines(1024), "vertraege.csv": [vertraege()]})
    assert path.stat().st_size < 2 << 20
    started = time.monotonic()
    with pytest.raises(DeliveryRejected, match=r"kunden.csv declares 1073741824 bytes unpacked from \d+ packed, a "
                                               r"compression ratio above the limit of 100"):
        open_delivery(path)
    assert time.monotonic() - started < 30     # no unpacking happened (reading it took minutes)


def test_tables_unpacking_to_more_than_the_limit_are_rejected(tmp_path):
    rows = [customer(Kundennummer=f"50{n:08d}", Nachname=f"Name{n * 7919 % 100_003}") for n in range(5000)]
    path = delivery(tmp_path, kunden=kunden(*rows))
    with pytest.raises(DeliveryRejected, match=f"{NAME} declares \\d+ bytes of tables unpacked, more than the limit "
                                               f"of 500000"):
        open_delivery(path, max_unpacked_bytes=500_000)
    with open_delivery(path, max_unpacked_bytes=5_000_000) as opened:
        assert opened.unpacked > 500_000


def test_a_directory_overstating_the_packed_size_does_not_hide_a_bomb(tmp_path):
    # The ratio is taken against what the file can hold, not against the packed size the ZIP claims.
    path = write_members(tmp_path / NAME, {"vertraege.csv": [vertraege()]})
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive, \
            archive.open("kunden.csv", "w") as member:
        for chunk in newlines(64):
            member.write(chunk)
    patch_directory(path, "kunden.csv", compress_size=1 << 30)
    with pytest.raises(DeliveryRejected, match="kunden.csv declares 67108864 bytes unpacked from \\d+ packed, a "
                                               "compression ratio above the limit of 100"):
        open_delivery(path)


def test_a_directory_understating_a_size_is_caught_while_unpacking(tmp_path):
    path = write_members(tmp_path / NAME, {"vertraege.csv": [vertraege()]})
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive, \
            archive.open("kunden.csv", "w") as member:
        member.write(b"Kundennummer;Personentyp\r\n")
        for chunk in newlines(64):
            member.write(chunk)
    patch_directory(path, "kunden.csv", file_size=1000)
    tracemalloc.start()
    try:
        with pytest.raises(DeliveryRejected, match="kunden.csv is damaged"):
            open_delivery(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_a_directory_overstating_an_unpacked_size_is_caught_by_the_count(tmp_path):
    path = delivery(tmp_path)
    with zipfile.ZipFile(path) as archive:
        declared = archive.getinfo("kunden.csv").file_size
    patch_directory(path, "kunden.csv", file_size=declared + 100)
    with pytest.raises(DeliveryRejected, match=f"kunden.csv unpacks to {declared} bytes, not the {declared + 100} "
                                               f"its ZIP directory declares"):
        open_delivery(path)


def test_reading_stops_when_asked_and_says_so(tmp_path):
    rows = [customer(Kundennummer=f"50{n:08d}") for n in range(5000)]
    path = delivery(tmp_path, kunden=kunden(*rows))
    stop = threading.Event()
    with open_delivery(path, should_stop=stop.is_set) as opened:
        items = opened.rows("kunden")
        assert isinstance(next(items), ParsedRow)
        stop.set()
        with pytest.raises(ReadingStopped, match=f"reading {NAME} was stopped"):
            list(items)
    with pytest.raises(ReadingStopped):
        open_delivery(path, should_stop=stop.is_set)   # also while a member is first unpacked


def test_a_zip_of_a_great_many_files_is_rejected_before_its_directory_is_read(tmp_path):
    path = delivery(tmp_path)
    with zipfile.ZipFile(path, "a") as archive:
        for number in range(40_000):
            archive.writestr(f"x/{number}.txt", b"")
    with pytest.raises(DeliveryRejected, match=f"{NAME} has a ZIP directory of \\d+ bytes, more than the limit of "
                                               f"1048576: far too many files"):
        open_delivery(path)


def test_a_member_is_unpacked_once_and_read_again_the_same(tmp_path, monkeypatch):
    rows = [customer(Kundennummer=f"50{n:08d}", Nachname=f"Müller {n}") for n in range(500)]
    path = delivery(tmp_path, kunden=kunden(*rows, bom=True))
    opened_members: list[str] = []
    original = zipfile.ZipFile.open

    def counting_open(archive, name, *args, **kwargs):
        opened_members.append(name if isinstance(name, str) else name.filename)
        return original(archive, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", counting_open)
    with open_delivery(path) as opened:
        opened_members.clear()      # opening read each member (the check) and its header
        first = list(opened.rows("kunden"))
        assert opened_members == []     # the bytes of the check were read
        again = list(opened.rows("kunden"))     # nothing kept any more: unpacked again
        assert opened_members == ["kunden.csv"]
    assert first == again and len(parsed(first)) == 500
    monkeypatch.setattr(zipfile.ZipFile, "open", original)
    assert first == read(path)


def test_a_member_with_a_row_over_the_limit_is_not_kept(tmp_path):
    text = b"Kundennummer;Personentyp\r\n5001234567;" + b"a" * 5000 + b"\r\n"
    with open_delivery(delivery(tmp_path, kunden=text), max_row_length=4096) as opened:
        assert "kunden.csv" not in {info.filename for info in opened._kept}
        assert "vertraege.csv" in {info.filename for info in opened._kept}
        with pytest.raises(DeliveryRejected, match="the row at line 2 is longer than the limit of 4096 characters"):
            list(opened.rows("kunden"))
