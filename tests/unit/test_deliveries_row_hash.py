"""row_hash stays the digest stored snapshots were compared with: SHA-256 of the sorted JSON, volatile columns out."""
from __future__ import annotations

import hashlib
import json

from syncbridge.deliveries import CONTRACTS, CUSTOMERS, LOOKUP_TABLES, row_hash


def test_row_hash_is_the_sha256_of_the_sorted_json_of_the_stable_values():
    rows = [
        (CUSTOMERS, {"Kundennummer": "5000733103", "Nachname": "Schäfer", "Ort": "Köln \"Süd\"", "Email": None,
                     "LetzterLogin": "2026-08-28", "GeaendertAm": "2026-03-15", "Titel": "\u00a0\\\n"}),
        (CONTRACTS, {"Vertragsnummer": "VN-1", "BeitragBrutto": "1504.84", "GeaendertAm": "2026-05-31"}),
        (LOOKUP_TABLES[0], {"ID": "1013", "Text": "Allianz ✓"}),
        (CUSTOMERS, {}),
    ]
    volatile = {"LetzterLogin", "GeaendertAm"}
    for table, data in rows:
        stable = {k: v for k, v in data.items() if not (table in (CUSTOMERS, CONTRACTS) and k in volatile)}
        text = json.dumps(stable, sort_keys=True, ensure_ascii=False)
        assert row_hash(table, data) == hashlib.sha256(text.encode()).hexdigest()
    assert row_hash(CUSTOMERS, {"Kundennummer": "1", "GeaendertAm": "x"}) == row_hash(CUSTOMERS, {"Kundennummer": "1"})
    # A fixed value: the digest of stored snapshots must not move.
    assert row_hash(LOOKUP_TABLES[0], {"ID": "1", "Text": "Ä"}) == hashlib.sha256(
        '{"ID": "1", "Text": "Ä"}'.encode()).hexdigest()
