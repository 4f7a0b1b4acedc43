"""Fuzzing the DailyUp reader: whatever the bytes, rows, row errors or DeliveryRejected — nothing else.

Every example is read whole (open, then every row of every table) under small
limits, so each one ends quickly: bounded time is part of what is checked.
"""
from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncbridge.dailyup import reader
from syncbridge.dailyup.reader import DeliveryRejected, open_delivery
from syncbridge.deliveries import CONTRACT_COLUMNS, CUSTOMER_COLUMNS, ParsedRow, RowError
from tests.support.fuzzing import examples, outcome

NAME = "DailyUp_100200_20261123.zip"
LIMITS = {"max_columns": 50, "max_fields": 60, "max_row_length": 4096, "max_unpacked_bytes": 1 << 20,
          "max_ratio": 100}
SECONDS_PER_EXAMPLE = 5
COMPRESSIONS = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
FUZZ = settings(max_examples=examples(200), deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])

VALID_KUNDEN = (";".join(CUSTOMER_COLUMNS) + "\r\n" + ";".join(
    ["5001234567", "100200", "natuerlich", "1", "", "Erika", "Muster", "", "", "12.08.1964", "Weg 1", "50667",
     "Köln", "DE", "e@example.de", "", "", "", "", ""]) + "\r\n").encode()
VALID_VERTRAEGE = (";".join(CONTRACT_COLUMNS) + "\r\n").encode()

# CSV-ish text: the characters that matter to the parser, often.
csv_text = st.text(alphabet=st.sampled_from(list(';"\r\n\t ,.0123456789abcdefKundenummrPsotyp\ufeff\x00äß€')) |
                   st.characters(), max_size=600)
csv_member = st.one_of(
    st.binary(max_size=600),
    csv_text.map(lambda text: text.encode("utf-8", "surrogatepass")),
    csv_text.map(lambda text: ("Kundennummer;Personentyp;Nachname\r\n" + text).encode("utf-8", "surrogatepass")),
    csv_text.map(lambda text: (";".join(CUSTOMER_COLUMNS) + "\r\n" + text).encode("utf-8", "surrogatepass")),
    st.builds(lambda head, tail: VALID_KUNDEN[:head] + tail, st.integers(0, len(VALID_KUNDEN)), st.binary(max_size=80)),
)


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def read_all(path: Path) -> int:
    """Open and read every row of every table; the number of rows and row errors seen."""
    seen = 0
    with open_delivery(path, **LIMITS) as delivery:
        for table in delivery.tables:
            for item in delivery.rows(table):
                assert isinstance(item, (ParsedRow, RowError))
                seen += 1
    return seen


def check(path: Path) -> None:
    started = time.monotonic()
    try:
        read_all(path)
        outcome("read")
    except DeliveryRejected as exc:
        assert str(exc) and "\n" not in str(exc) and "\r" not in str(exc), "a reason is one line"
        outcome("rejected")
    assert time.monotonic() - started < SECONDS_PER_EXAMPLE


@FUZZ
@given(kunden=csv_member, vertraege=csv_member | st.just(VALID_VERTRAEGE),
       compression=st.sampled_from(COMPRESSIONS))
def test_any_csv_member_gives_rows_row_errors_or_a_rejection(tmp_path, kunden, vertraege, compression):
    path = tmp_path / NAME
    path.write_bytes(zip_of({"kunden.csv": kunden, "vertraege.csv": vertraege}, compression))
    check(path)


@FUZZ
@given(data=st.data())
def test_any_zip_bytes_give_rows_row_errors_or_a_rejection(tmp_path, data):
    # Damage in the directory (names, versions, offsets) or in the packed bytes of each compression.
    valid = zip_of({"kunden.csv": VALID_KUNDEN, "vertraege.csv": VALID_VERTRAEGE},
                   data.draw(st.sampled_from(COMPRESSIONS)))
    mode = data.draw(st.sampled_from(["random", "flip", "flip-directory", "cut", "splice"]))
    if mode == "random":
        raw = data.draw(st.binary(max_size=2000))
    elif mode == "flip":
        raw = bytearray(valid)
        for at in data.draw(st.lists(st.integers(0, len(valid) - 1), min_size=1, max_size=8)):
            raw[at] = data.draw(st.integers(0, 255))
        raw = bytes(raw)
    elif mode == "flip-directory":
        raw = bytearray(valid)
        for at in data.draw(st.lists(st.integers(len(valid) - 200, len(valid) - 1), min_size=1, max_size=4)):
            raw[at] = data.draw(st.sampled_from([0, 0xFF]) | st.integers(0, 255))
        raw = bytes(raw)
    elif mode == "cut":
        raw = valid[:data.draw(st.integers(0, len(valid)))]
    else:
        at = data.draw(st.integers(0, len(valid)))
        raw = valid[:at] + data.draw(st.binary(max_size=64)) + valid[at:]
    path = tmp_path / NAME
    path.write_bytes(raw)
    check(path)


quoted_name = st.text(max_size=12).map(lambda name: '"' + name.replace('"', '""') + '"')


@FUZZ
@given(names=st.lists(quoted_name | st.sampled_from(CUSTOMER_COLUMNS), min_size=1, max_size=60),
       member_name=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20),
       rows=csv_text)
def test_any_header_and_member_names_give_rows_row_errors_or_a_one_line_rejection(tmp_path, names, member_name, rows):
    header = ";".join(["Kundennummer", "Personentyp", *names]) + "\r\n"
    members = {"kunden.csv": (header + rows).encode("utf-8", "surrogatepass"), "vertraege.csv": VALID_VERTRAEGE,
               f"{member_name}/kunden.csv": VALID_KUNDEN}
    path = tmp_path / NAME
    path.write_bytes(zip_of(members))
    check(path)


def transcript(path: Path, limits: dict[str, int]) -> list[object]:
    """Everything reading a delivery gives, in order: its rows, row errors and counts, or its rejection."""
    seen: list[object] = []
    try:
        with open_delivery(path, **limits) as delivery:
            for table in delivery.tables:
                seen.extend(delivery.rows(table))
    except DeliveryRejected as exc:
        seen.append(("rejected", str(exc)))
    return seen


# Rows of plain and quoted fields, quoted ones holding line breaks, delimiters and quotes; in some rows stray quotes.
plain_field = st.text(alphabet="ab1 .,", max_size=12)
quoted_field = st.text(alphabet='ab;"\r\n', max_size=40).map(lambda text: '"' + text.replace('"', '""') + '"')
stray_field = st.sampled_from(['"', '"a"b', 'a"b', "\x00"])
csv_row = st.lists(plain_field | quoted_field, max_size=8) | st.lists(plain_field | quoted_field | stray_field, max_size=8)
csv_rows = st.lists(st.tuples(csv_row.map(";".join), st.just("\r\n") | st.sampled_from(["\n", "\r", ""])),
                    max_size=8).map(lambda rows: "".join(row + end for row, end in rows))
quoted_member = csv_rows.map(lambda text: ("Kundennummer;Personentyp;Nachname\r\n" + text).encode())


@FUZZ
@given(kunden=csv_member | quoted_member, row_length=st.integers(36, 100), chunk=st.integers(1, 64),
       compression=st.sampled_from(COMPRESSIONS))
def test_reading_a_member_directly_gives_what_measuring_each_line_gives(tmp_path, monkeypatch, kunden, row_length,
                                                                        chunk, compression):
    # Small chunks and row lengths (a short header fits): records spanning chunks, quoted line breaks and
    # records just over the limit.
    path = tmp_path / NAME
    path.write_bytes(zip_of({"kunden.csv": kunden, "vertraege.csv": b"Vertragsnummer;Kundennummer\r\n"}, compression))
    limits = {**LIMITS, "max_row_length": row_length}
    with monkeypatch.context() as patch:
        patch.setattr(reader, "CHUNK", chunk)
        direct = transcript(path, limits)
        patch.setattr(reader, "MAX_KEPT_BYTES", 0)     # the member unpacked again for its rows
        unpacked_again = transcript(path, limits)
        patch.setattr(reader._Bounds, "finish", lambda self: False)
        measured = transcript(path, limits)
    assert direct == unpacked_again == measured
    outcome("rejected" if direct and isinstance(direct[-1], tuple) and direct[-1][0] == "rejected" else "read")
