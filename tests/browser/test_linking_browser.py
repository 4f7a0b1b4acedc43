"""The Linking page in a real browser: an operator accepts a certain pair; German at 375 px; a viewer only looks."""
from __future__ import annotations

from playwright.sync_api import expect

from simulators.fakes.zoho import InMemoryZoho
from tests.support.browser import sign_in
from tests.support.linking import propose_twins


def test_an_operator_accepts_a_certain_pair_and_its_number_goes_to_the_crm(live, store, open_page, screenshot):
    board, base = live
    board.parts.linking.crm = InMemoryZoho()
    ids = propose_twins(board, store)
    page = open_page()
    sign_in(page, base, "operator")
    page.get_by_role("link", name="Linking").click()
    row = page.locator("tr", has_text="Erika Mustermann")
    expect(row).to_contain_text("e-mail equal; name equal; birth date equal")
    expect(page.locator("tr", has_text="Schaefer")).to_contain_text("ambiguous")
    screenshot(page, "linking-en")

    row.get_by_role("button", name="Accept").click()

    expect(page.get_by_text("Linked; the number was written to the CRM record.")).to_be_visible()
    assert board.parts.linking.crm.state.get("Contacts", ids["erika"])["Kundennummer"] == "5001"
    assert store.find_link("customer", zoho_id=ids["erika"]).ameise_id == "5001"
    screenshot(page, "linking-accepted-en")

    german = open_page(width=375, height=812, language="de-DE")
    sign_in(german, base, "viewer")
    german.goto(f"{base}/linking")
    expect(german.get_by_role("heading", name="Verknüpfung", exact=True)).to_be_visible()
    assert german.evaluate("document.documentElement.scrollWidth") <= 375
    assert german.get_by_role("button", name="Übernehmen").count() == 0       # a viewer only looks
    screenshot(german, "linking-375-de")
    assert page.console_errors == [] and german.console_errors == []
