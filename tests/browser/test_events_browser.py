"""The Events and Record timeline pages in Debian's chromium: filter, open an event, a record's timeline and its links."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from syncbridge.ports import ActivityEntry
from tests.support.browser import sign_in

ZOHO_ID, NUMBER = "4150868000000224005", "5000000123"


@pytest.fixture
def events(live):
    """A sync that failed once and then succeeded, its steps, a return-path update, and other records' attempts."""
    board, base = live
    store = board.parts.events.store
    now = datetime.now(UTC).replace(microsecond=0)
    for minute in range(12):
        store.log(ActivityEntry(direction="crm_to_ameise", action="updated", result="ok", entity="customer",
                                zoho_module="Contacts", zoho_id=f"41508680000001{minute:05d}",
                                ameise_id=f"50000001{minute:02d}", event_id=f"other-{minute}",
                                source="zoho-workflow", attempt=1, duration_ms=40 + minute,
                                at=now - timedelta(hours=2, minutes=minute)))
    common = dict(direction="crm_to_ameise", entity="customer", zoho_module="Contacts", zoho_id=ZOHO_ID,
                  event_id="evt-mueller", source="zoho-workflow", received_at=now - timedelta(minutes=30))
    store.log(ActivityEntry(**common, action="failed", result="error", attempt=1, duration_ms=812,
                            error="zoho INVALID_DATA field=Email: invalid e-mail", error_kind="rejected",
                            error_code="INVALID_DATA", error_field="Email", at=now - timedelta(minutes=29),
                            details={"message": {"module": "Contacts", "record_id": ZOHO_ID}}))
    store.log(ActivityEntry(**common, action="created", result="ok", ameise_id=NUMBER, at=now - timedelta(minutes=10),
                            details={"read": {"Last_Name": "Müller", "Email": "anna.mueller@example.de"},
                                     "written": {"Nachname": "Müller", "Email": "anna.mueller@example.de"}}))
    store.log(ActivityEntry(**common, action="created", result="ok", ameise_id=NUMBER, attempt=2, duration_ms=95,
                            at=now - timedelta(minutes=10), details={"message": {"record_id": ZOHO_ID}}))
    store.save_link("customer", "Contacts", ZOHO_ID, NUMBER)
    store.log(ActivityEntry(direction="ameise_to_crm", action="updated", result="ok", entity="customer",
                            zoho_module="Contacts", zoho_id=ZOHO_ID, ameise_id=NUMBER, event_id=f"7:customer:{NUMBER}",
                            source="dailyup", attempt=1, duration_ms=140, at=now - timedelta(minutes=1)))
    return board, base


def test_an_operator_filters_the_events_opens_one_and_follows_its_record_to_zoho_and_ameise(events, open_page,
                                                                                            screenshot):
    board, base = events
    page = open_page()
    sign_in(page, base, "operator")
    page.wait_for_url(f"{base}/")
    page.get_by_role("link", name="Events").click()
    assert page.locator("tbody tr").count() == 15
    screenshot(page, "events-en")

    page.get_by_label("Result").select_option("error")
    page.get_by_label("Free text").fill("invalid_data")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(f"{base}/events")
    assert page.locator("tbody tr").count() == 1
    assert "invalid_data" not in page.url and "error" not in page.url      # the filter is not in the URL
    page.get_by_label("Save the current filter as").fill("Abgelehnte")
    page.get_by_role("button", name="Save view").click()
    expect(page.get_by_text("View “Abgelehnte” saved.")).to_be_visible()
    screenshot(page, "events-filtered-en")

    page.get_by_role("link", name="Open event").click()
    expect(page.get_by_role("heading", name="Attempts")).to_be_visible()
    expect(page.get_by_text("Attempt 2")).to_be_visible()
    page.get_by_text("Written to Ameise").click()
    expect(page.get_by_text('"Nachname": "Müller"')).to_be_visible()
    screenshot(page, "event-detail-en")

    page.get_by_role("link", name=ZOHO_ID).first.click()
    expect(page.get_by_role("heading", name="Record timeline")).to_be_visible()
    assert page.locator(".rows > li").count() == 4                 # both directions, attempts and the step
    expect(page.get_by_text("Ameise → CRM").first).to_be_visible()
    zoho = page.locator("#zoho-link")
    ameise = page.locator("#ameise-link")
    assert zoho.get_attribute("href") == f"https://crm.zoho.eu/crm/tab/Contacts/{ZOHO_ID}"
    assert ameise.get_attribute("href") == f"https://www.maklerinfo.biz/maklerportal/?show=kunde&kunde={NUMBER}"
    screenshot(page, "timeline-en")
    # Following the link opens a new tab at that address (the real portal is not reachable from here).
    page.context.route("https://www.maklerinfo.biz/**", lambda route: route.fulfill(status=200, body="portal"))
    with page.context.expect_page() as opened:
        ameise.click()
    assert opened.value.url == f"https://www.maklerinfo.biz/maklerportal/?show=kunde&kunde={NUMBER}"
    assert page.console_errors == []


def test_the_events_in_german_at_375_px_and_by_keyboard(events, open_page, screenshot):
    _board, base = events
    page = open_page(width=375, language="de-DE")
    sign_in(page, base, "viewer")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/events")
    expect(page.get_by_role("heading", name="Ereignisse")).to_be_visible()
    # Nothing wider than the screen but the table, which scrolls in its own box.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "events-de-375")

    page.locator("#result").focus()
    page.keyboard.press("ArrowDown")            # "Erfolgreich"
    page.keyboard.press("ArrowDown")            # "Fehlgeschlagen"
    page.locator("#q").focus()
    page.keyboard.type("INVALID_DATA")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("#result").input_value() == "error"
    assert page.locator("tbody tr").count() == 1
    page.get_by_role("link", name="Ereignis öffnen").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Versuche")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "event-detail-de-375")
    page.get_by_role("link", name=ZOHO_ID).first.click()
    expect(page.get_by_role("heading", name="Verlauf des Datensatzes: Kunde")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "timeline-de-375")
