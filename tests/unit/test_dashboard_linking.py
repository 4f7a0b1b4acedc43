"""The Linking page: proposals by status, viewer looks, operator accepts and rejects, audit, German."""
from __future__ import annotations

import pytest

from simulators.fakes.zoho import InMemoryZoho
from tests.support.dashboard import Dashboard, post_form
from tests.support.linking import propose_twins


@pytest.fixture
def board(database_url, store) -> Dashboard:
    board = Dashboard.build(database_url, store=store)
    board.parts.linking.crm = InMemoryZoho()
    return board


@pytest.fixture
def proposed(board, store) -> dict[str, str]:
    return propose_twins(board, store)


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


def test_the_reasons_are_shown_in_german(board, proposed):
    page = text(board.signed_in("viewer", language="de").get("/linking"))
    assert "E-Mail gleich; Name gleich; Geburtsdatum gleich" in page
    assert "Name gleich; Geburtsdatum gleich; 2 CRM-Kandidaten" in page
    assert "e-mail equal" not in page


@pytest.mark.parametrize(("reason", "german"), [
    ("last name equal, first name differs (80%)", "Nachname gleich, Vorname abweichend (80 %)"),
    ("company name similar (88%)", "Firmenname ähnlich (88 %)"),
    ("e-mail equal, shared by 3 customers", "E-Mail gleich, von 3 Kunden genutzt"),
    ("policy number equal", "Versicherungsscheinnummer gleich"),
    ("insurer unknown on one side", "Versicherer auf einer Seite unbekannt"),
    ("Kundennummer equal", "Kundennummer gleich"),
    ("the CRM record also fits 2 other customer(s)", "der CRM-Datensatz passt auch zu 2 weiteren Kunden"),
    ("a reason of a newer version", "a reason of a newer version"),        # shown as it is
])
def test_each_kind_of_reason_has_its_german_words(board, reason, german):
    from dashboard.pages.linking import reason_label

    with board.app.test_request_context("/linking", headers={"Accept-Language": "de"}):
        assert reason_label(reason) == german


def test_ids_that_no_proposal_can_have_are_refused_not_looked_up(board, proposed):
    client = board.signed_in("operator")
    assert client.get("/linking?after=" + "9" * 30).status_code == 404
    assert post_form(client, "/linking", "/linking/accept", {"id": "9" * 30}).status_code == 400
    assert post_form(client, "/linking", "/linking/accept", {"id": "abc"}).status_code == 400
