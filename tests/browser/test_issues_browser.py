"""Issues and Dead letters in a real browser: a bulk replay of an issue through its plan, a corrected
payload replayed, a viewer kept from replaying, German at 375 px and the keyboard."""
from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from syncbridge.ports import DEAD, REPLAYED
from tests.support.dashboard import PASSWORDS
from tests.support.issues import BROKEN_CAUSE, INVALID_EMAIL_CAUSE
from tests.support.queues import take_all


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill(PASSWORDS[username])
    page.locator("form button[type=submit].primary").click()
    page.wait_for_url(f"{base}/")


def test_an_operator_opens_an_issue_and_replays_its_dead_letters_in_bulk_after_the_plan(
        live_dead_letters, open_page, screenshot):
    board, base, topology, ids = live_dead_letters
    page = open_page()
    sign_in(page, base, "operator")
    page.get_by_role("link", name="Issues", exact=True).click()
    expect(page.get_by_role("link", name=BROKEN_CAUSE)).to_be_visible()
    screenshot(page, "issues-en")
    page.get_by_role("link", name=INVALID_EMAIL_CAUSE).click()
    expect(page.locator(".issue-dead")).to_have_text("3")
    screenshot(page, "issue-en")

    page.get_by_role("button", name="Replay its dead letters …").click()
    expect(page.locator(".plan-total")).to_have_text("3")
    expect(page.locator(".plan-refused")).to_have_text("0")
    assert all(board.parts.dead_letter_ops.get(i).state == DEAD for i in ids["invalid_email"])   # a plan only
    screenshot(page, "dead-letters-plan-en")

    page.get_by_role("button", name="Start: Replay 3 dead letters").click()
    expect(page.locator(".job-state")).to_have_text("done", timeout=20_000)      # htmx polls the progress
    expect(page.locator(".job-succeeded")).to_have_text("3")
    screenshot(page, "dead-letters-job-en")
    assert len(take_all(topology.crm_to_ameise)) == 3
    assert all(board.parts.dead_letter_ops.get(i).state == REPLAYED for i in ids["invalid_email"])

    page.reload()                                   # the job is in the database, not in the page
    expect(page.locator(".job-done")).to_have_text("3 / 3")
    page.get_by_role("link", name="Issues", exact=True).click()
    page.get_by_role("link", name=INVALID_EMAIL_CAUSE).click()
    page.get_by_role("button", name="Resolve").click()
    expect(page.get_by_text("The issue is resolved.")).to_be_visible()
    screenshot(page, "issue-resolved-en")
    assert page.console_errors == []


def test_an_operator_corrects_a_payload_and_replays_it(live_dead_letters, open_page, screenshot):
    board, base, topology, ids = live_dead_letters
    letter_id = ids["broken"][0]
    original = board.parts.dead_letter_ops.get(letter_id).body
    page = open_page()
    sign_in(page, base, "operator")
    page.get_by_role("link", name="Dead letters").click()
    screenshot(page, "dead-letters-en")
    page.get_by_role("link", name=f"#{letter_id}", exact=True).click()
    expect(page.get_by_text("contract CrmRecordChanged v1 violated").first).to_be_visible()
    screenshot(page, "dead-letter-en")

    editor = page.get_by_label("Message (JSON)")
    body = json.loads(editor.input_value())
    editor.fill(json.dumps({**body, "module": "Contacts"}, indent=2))
    page.get_by_role("button", name="Check and keep the correction").click()
    expect(page.get_by_text("The correction is kept and passes the contract.")).to_be_visible()
    screenshot(page, "dead-letter-corrected-en")

    page.get_by_role("button", name="Replay the corrected message").click()
    expect(page.get_by_text("Done: replayed.")).to_be_visible()
    screenshot(page, "dead-letter-replayed-en")
    [message] = take_all(topology.crm_to_ameise)
    assert json.loads(message.body) == {**body, "module": "Contacts"}
    stored = board.parts.dead_letter_ops.get(letter_id)
    assert stored.state == REPLAYED and stored.body == original
    actions = [e.action for e in board.parts.operators.audit_entries(limit=10)]
    assert actions[:2] == ["dead_letter.replayed", "dead_letter.corrected"]


def test_a_viewer_cannot_replay(live_dead_letters, open_page, screenshot):
    board, base, topology, ids = live_dead_letters
    letter_id = ids["invalid_email"][0]
    page = open_page()
    sign_in(page, base, "viewer")
    page.goto(f"{base}/dead-letters/{letter_id}")
    expect(page.get_by_role("heading", name="Message as it came")).to_be_visible()
    assert page.get_by_role("button", name=re.compile("Replay")).count() == 0
    assert page.get_by_label("Message (JSON)").count() == 0
    screenshot(page, "dead-letter-viewer-en")
    page.goto(f"{base}/dead-letters")
    assert page.get_by_role("button", name=re.compile("Replay all")).count() == 0
    page.goto(f"{base}/issues/issue?cause={INVALID_EMAIL_CAUSE}")
    assert page.get_by_role("button", name=re.compile("Replay")).count() == 0
    screenshot(page, "issue-viewer-en")

    token = page.locator("input[name=csrf_token]").first.get_attribute("value")    # the sign-out form's
    for action, data in [(f"/dead-letters/{letter_id}/replay", {}),
                         ("/dead-letters/jobs", {"action": "replay", "cause": INVALID_EMAIL_CAUSE})]:
        answer = page.request.post(f"{base}{action}", form={"csrf_token": token, **data}, max_redirects=0)
        assert answer.status == 403, action
    assert board.parts.dead_letter_ops.get(letter_id).state == DEAD and take_all(topology.crm_to_ameise) == []


def test_both_pages_in_german_on_a_375_px_screen_and_by_keyboard(live_dead_letters, open_page, screenshot):
    board, base, topology, ids = live_dead_letters
    page = open_page(width=375, height=812, language="de-DE")
    sign_in(page, base, "operator")
    page.goto(f"{base}/dead-letters")
    expect(page.get_by_role("heading", name="4 Treffer")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "dead-letters-375-de")

    # The filter by keyboard: the free-text field, typed into, sent with Enter.
    page.get_by_label("Text im Fehler, Datensatz oder Routing-Key").focus()
    page.keyboard.type("999000")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="1 Treffer")).to_be_visible()
    assert "999000" not in page.url                  # posted, never in the URL
    screenshot(page, "dead-letters-filtered-375-de")
    page.get_by_role("link", name=f"#{ids['broken'][0]}", exact=True).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Nachricht wie empfangen")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "dead-letter-375-de")

    page.goto(f"{base}/issues")
    expect(page.get_by_role("heading", name="Fehler nach Ursache")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "issues-375-de")
    page.goto(f"{base}/issues/issue?cause={INVALID_EMAIL_CAUSE}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "issue-375-de")
    page.get_by_role("button", name="Ihre unzustellbaren Nachrichten erneut senden …").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".plan-total")).to_have_text("3")
    screenshot(page, "dead-letters-plan-375-de")
    assert page.console_errors == []
