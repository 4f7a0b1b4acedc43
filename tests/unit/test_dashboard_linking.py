"""The Linking page: proposals by status, viewer looks, operator accepts and rejects, audit, German."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from simulators.fakes.zoho import InMemoryZoho
from syncbridge.adapters.db.linking import SNAPSHOT
from tests.support.dashboard import Dashboard, post_form
from tests.support.returns import person


@pytest.fixture
def board(database_url, store) -> Dashboard:
    board = Dashboard.build(database_url, store=store)
    board.parts.linking.crm = InMemoryZoho()
    return board


@pytest.fixture
def proposed(board, store) -> dict[str, str]:
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


def text(answer) -> str:
    return answer.get_data(as_text=True)


def ids_of(board, status: str) -> list[int]:
    return [p.id for p in board.parts.linking.proposals.proposals(statuses=(status,))]


def test_before_linking_the_page_says_what_to_run(board):
    page = text(board.signed_in("viewer").get("/linking"))
    assert "Linking has not run yet" in page and "syncbridge link propose" in page


def test_a_viewer_sees_the_open_proposals_with_reasons_but_cannot_decide(board, proposed):
    client = board.signed_in("viewer")
    page = text(client.get("/linking"))
    assert "Erika Mustermann" in page and "e-mail equal; name equal; birth date equal" in page
    assert page.count("ambiguous</span>") == 2 and "Accept all certain pairs" not in page
    assert 'action="/linking/accept"' not in page
    [certain] = ids_of(board, "certain")
    assert post_form(client, "/linking", "/linking/accept", {"id": str(certain)}).status_code == 403
    assert board.parts.linking.links.find_link("customer", ameise_id="5001") is None
    assert client.get("/linking?status=nonsense").status_code == 404


def test_an_operator_accepts_one_pair_the_number_goes_to_the_crm_and_the_audit_log(board, proposed):
    client = board.signed_in("operator")
    first, second = ids_of(board, "ambiguous")
    answer = post_form(client, "/linking", "/linking/accept", {"id": str(second), "status": "ambiguous"})
    assert answer.status_code == 303 and answer.headers["Location"] == "/linking?status=ambiguous"
    assert "Linked; the number was written to the CRM record." in text(client.get("/linking"))
    link = board.parts.linking.links.find_link("customer", ameise_id="5002")
    assert link.zoho_id == board.parts.linking.proposals.proposal(second).zoho_id
    assert board.parts.linking.crm.state.get("Contacts", link.zoho_id)["Kundennummer"] == "5002"
    assert board.parts.linking.proposals.proposal(first).status == "superseded"
    entry = board.parts.operators.audit_entries(limit=1)[0]
    assert (entry.actor, entry.action, entry.target) == ("operator", "link.accept", str(second))

    again = post_form(client, "/linking", "/linking/accept", {"id": str(second)})
    assert again.status_code == 303
    assert "Not accepted: proposal" in text(client.get("/linking"))
    assert post_form(client, "/linking", "/linking/accept", {"id": "x"}).status_code == 400


def test_an_operator_accepts_every_certain_pair_or_rejects_one(board, proposed):
    client = board.signed_in("operator")
    first, _second = ids_of(board, "ambiguous")
    post_form(client, "/linking", "/linking/reject", {"id": str(first)})
    assert board.parts.linking.proposals.proposal(first).status == "rejected"
    assert "Rejected; nothing was written." in text(client.get("/linking"))

    post_form(client, "/linking", "/linking/accept-certain")
    assert "1 certain pairs linked." in text(client.get("/linking"))
    assert board.parts.linking.links.find_link("customer", ameise_id="5001").zoho_id == proposed["erika"]
    assert [e.action for e in board.parts.operators.audit_entries(limit=2)] == ["link.accept_certain", "link.reject"]
    assert "Erika Mustermann" in text(client.get("/linking?status=accepted"))


def test_the_page_speaks_german(board, proposed):
    page = text(board.signed_in("operator", language="de").get("/linking"))
    assert "Erstverknüpfung" in page and "Alle sicheren Paare übernehmen" in page and "mehrdeutig" in page
