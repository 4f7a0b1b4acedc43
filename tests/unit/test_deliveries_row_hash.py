"""row_hash: SHA-256 of the compact JSON text (UTF-8) of the stable values in column order; row_text makes it
from the stored text."""
from __future__ import annotations

import hashlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncbridge.deliveries import COLUMNS, CONTRACTS, CUSTOMERS, LOOKUP_TABLES, compact_json, row_hash, row_text

VOLATILE = {"LetzterLogin", "GeaendertAm"}


def expected(table: str, data: dict) -> str:
    known = COLUMNS[table]
    ordered = [c for c in known if c in data] + sorted(c for c in data if c not in known)
    stable = {c: data[c] for c in ordered if not (table in (CUSTOMERS, CONTRACTS) and c in VOLATILE)}
    return hashlib.sha256(compact(stable).encode()).hexdigest()


def compact(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_row_hash_is_the_sha256_of_the_json_of_the_stable_values_in_column_order():
    rows = [
        (CUSTOMERS, {"Kundennummer": "5000733103", "Nachname": "Schäfer", "Ort": "Köln \"Süd\"", "Email": None,
                     "LetzterLogin": "2026-08-28", "GeaendertAm": "2026-03-15", "Titel": "\u00a0\\\n"}),
        (CONTRACTS, {"Vertragsnummer": "VN-1", "BeitragBrutto": "1504.84", "GeaendertAm": "2026-05-31"}),
        (LOOKUP_TABLES[0], {"ID": "1013", "Text": "Allianz ✓"}),
        (CUSTOMERS, {}),
    ]
    for table, data in rows:
        assert row_hash(table, data) == expected(table, data)
        assert row_text(table, data) == (compact(data), expected(table, data))
    assert row_hash(CUSTOMERS, {"Kundennummer": "1", "GeaendertAm": "x"}) == row_hash(CUSTOMERS, {"Kundennummer": "1"})
    # The order of the values given does not matter, nor do volatile columns.
    assert row_hash(CUSTOMERS, {"Ort": "A", "Kundennummer": "1"}) == row_hash(CUSTOMERS, {"Kundennummer": "1", "Ort": "A"})
    # A fixed value: what stored snapshots hold.
    assert row_hash(LOOKUP_TABLES[0], {"ID": "1", "Text": "Ä"}) == hashlib.sha256(
        '{"ID":"1","Text":"Ä"}'.encode()).hexdigest()


VALUES = st.one_of(st.none(), st.text(max_size=12),
                   st.sampled_from([',"LetzterLogin":', '{"GeaendertAm":', '"}', ', "LetzterLogin": ', "\\", "\u2028\x7f\x00"]))


ROWS = st.sampled_from([CUSTOMERS, CONTRACTS, LOOKUP_TABLES[0]]).flatmap(lambda table: st.tuples(
    st.just(table), st.dictionaries(st.sampled_from([*COLUMNS[table], "Zusatz", "Aaa"]), VALUES, max_size=24)))


# The first text drawn in a process builds Hypothesis's table of Unicode characters (seconds on a cold cache).
FIRST_TEXT_MAY_BE_SLOW = settings(suppress_health_check=[HealthCheck.too_slow])


@FIRST_TEXT_MAY_BE_SLOW
@given(ROWS)
def test_row_text_gives_the_stored_text_and_row_hash_of_any_row(table_and_row):
    """Whatever the columns, their order and their values (texts that look like the JSON around them too)."""
    table, row = table_and_row
    text, hashed = row_text(table, row)
    assert text == compact(row)
    assert hashed == row_hash(table, row) == expected(table, row)


@FIRST_TEXT_MAY_BE_SLOW
@given(st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.text(max_size=16), st.integers(), st.booleans()),
                       max_size=8))
def test_compact_json_is_json_dumps_compact_of_any_values(values):
    """orjson writes the text json would: control characters, quotes, non-ASCII, integers beyond 64 bits."""
    assert compact_json(values) == compact(values).encode()


def test_compact_json_writes_what_orjson_refuses_as_json_would():
    assert compact_json({"n": 2**70, "s": "Ä"}) == b'{"n":1180591620717411303424,"s":"\xc3\x84"}'
