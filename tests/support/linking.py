"""Proposals of first-time linking on a dashboard's database, for the Linking page's tests."""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert

from syncbridge.adapters.db.linking import SNAPSHOT
from tests.support.returns import person


def propose_twins(board, store) -> dict[str, str]:
    """Erika (a certain pair) and two CRM Pauls for one Ameise Paul (ambiguous); returns the CRM ids."""
    zoho = board.parts.linking.crm
    ids = {"erika": zoho.seed("Contacts", {"First_Name": "Erika", "Last_Name": "Mustermann",
                                           "Email": "kunde5001@example.de", "Date_of_Birth": "1964-08-12"}),
           "paul_a": zoho.seed("Contacts", {"First_Name": "Paul", "Last_Name": "Schäfer",
                                            "Date_of_Birth": "1964-08-12"}),
           "paul_b": zoho.seed("Contacts", {"First_Name": "Paul", "Last_Name": "Schaefer",
                                            "Date_of_Birth": "1964-08-12"})}
    rows = {"5001": person("5001", Nachname="Mustermann"), "5002": person("5002", Vorname="Paul", Nachname="Schäfer")}
    with store.engine.begin() as conn:
        conn.execute(insert(SNAPSHOT), [{"table": "kunden", "key": key, "hash": "h", "data": data, "deleted": False,
                                         "import_id": None, "updated_at": datetime.now(UTC)}
                                        for key, data in rows.items()])
    board.parts.linking.propose("anna")
    return ids
