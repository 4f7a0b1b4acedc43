"""Connections, pause and resume in a real browser against the running service with both simulators on RabbitMQ."""
from __future__ import annotations

import pytest
import requests
from kombu import Connection
from playwright.sync_api import expect

from simulators.stack import DEMO_LOGIN, start_stack
from syncbridge.config import Settings
from syncbridge.ports import DeadLetterFilter
from tests.support.ameise import contact
from tests.support.waiting import wait_for

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def stack(rabbitmq_url, namespace, tmp_path):
    """The whole service as `syncbridge run` starts it (receiver, workers, simulators, dashboard); retries after 1 s."""
    settings = Settings.from_env({}, broker_url=rabbitmq_url, namespace=namespace,
                                 database_url=f"sqlite:///{tmp_path}/syncbridge.db", retry_delays="1,2",
                                 dailyup_dir=str(tmp_path / "dailyup"))
    stack = start_stack(settings, dashboard_port=0)
    yield stack
    stack.stop()


def sign_in(page, stack, language: str = "en") -> str:
    base = stack.dashboard.url
    page.goto(f"{base}/")
    page.locator("#username").fill(DEMO_LOGIN[0])
    page.locator("#password").fill(DEMO_LOGIN[1])
    page.locator("form button[type=submit].primary").click()
    page.wait_for_url(f"{base}/")
    return base


def waiting(rabbitmq_url: str, stack) -> tuple[int, int]:
    """(messages ready, consumers) of the crm-to-ameise queue."""
    with Connection(rabbitmq_url) as connection:
        declared = connection.default_channel.queue_declare(stack.services.topology.crm_to_ameise.name, passive=True)
        return declared.message_count, declared.consumer_count


def change_erika(stack, phone: str) -> None:
    erika = stack.demo_ids["zoho"]["Erika Mustermann"]
    answer = requests.patch(f"{stack.zoho.url}/_sim/records/Contacts/{erika}", json={"Phone": phone}, timeout=5)
    assert answer.status_code == 200


def erika_in_ameise(stack) -> str | None:
    return contact(stack.ameise_state.customers["5001234567"], "telefon", "privat")


def test_ameise_is_reconnected_through_its_consent_page_after_its_token_was_revoked(stack, open_page, screenshot):
    page = open_page()
    base = sign_in(page, stack)
    page.get_by_role("link", name="Connections").click()
    card = page.locator("section[aria-labelledby=connection-ameise]")
    expect(card.get_by_text("connected", exact=True)).to_be_visible()
    screenshot(page, "connections-en")

    # Ameise revokes the grant; the next change meets it, and the connection needs a person.
    assert requests.post(f"{stack.ameise.url}/_sim/revoke", json={}, timeout=5).status_code == 200
    change_erika(stack, "+49 221 5550100")
    wait_for(lambda: stack.services.store.tokens.status("ameise")[0] == "reconnect_needed", what="reconnect needed")
    page.reload()
    expect(card.get_by_text("reconnect needed")).to_be_visible()
    screenshot(page, "connections-reconnect-needed-en")

    stack.ameise_state.consent_page = True
    card.get_by_role("button", name="Reconnect Ameise").click()
    page.wait_for_url(f"{stack.ameise.url}/oauth2/auth?*")
    assert "code_challenge_method=S256" in page.url
    screenshot(page, "ameise-consent-page")
    page.get_by_role("button", name="Erlauben").click()
    page.wait_for_url(f"{base}/connections")
    expect(page.get_by_text("Ameise is connected.")).to_be_visible()
    expect(card.get_by_text("connected", exact=True)).to_be_visible()
    screenshot(page, "connections-reconnected-en")
    # The change that waited for the reconnect reaches Ameise.
    wait_for(lambda: erika_in_ameise(stack) == "+49 221 5550100", what="the waiting change synced")

    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("cell", name="Connected", exact=True)).to_be_visible()
    screenshot(page, "audit-connected-en")
    # Nothing blocked by the CSP on the way (the simulator's consent page has no favicon: a 404 there is fine).
    assert [e for e in page.console_errors if "Content Security Policy" in e or "Refused" in e] == []


def test_a_denied_consent_leaves_ameise_waiting_for_a_reconnect(stack, open_page, screenshot):
    page = open_page(language="de-DE")
    base = sign_in(page, stack)
    requests.post(f"{stack.ameise.url}/_sim/revoke", json={}, timeout=5)
    stack.services.store.tokens.set_status("ameise", "reconnect_needed", "refresh failed: invalid_grant")
    stack.ameise_state.consent_page = True
    page.goto(f"{base}/connections")
    page.get_by_role("button", name="Ameise neu verbinden").click()
    page.get_by_role("button", name="Ablehnen").click()
    page.wait_for_url(f"{base}/connections")
    expect(page.get_by_text("Ameise wurde nicht verbunden: access_denied")).to_be_visible()
    screenshot(page, "connections-denied-de")
    assert stack.services.store.tokens.status("ameise")[0] == "reconnect_needed"


def test_an_operator_pauses_and_resumes_a_direction_and_its_messages_wait_meanwhile(stack, rabbitmq_url, open_page,
                                                                                    screenshot):
    page = open_page(width=375, height=812, language="de-DE")
    sign_in(page, stack)
    page.locator("#reason-crm_to_ameise").fill("Wartung")
    page.locator("form[action='/directions/crm_to_ameise/pause'] button").click()
    expect(page.get_by_text("Pausiert von demo")).to_be_visible()
    screenshot(page, "overview-paused-375-de")
    wait_for(lambda: waiting(rabbitmq_url, stack)[1] == 0, what="the worker leaving the queue")

    change_erika(stack, "+49 221 5550199")
    wait_for(lambda: waiting(rabbitmq_url, stack)[0] == 1, what="the change waiting in the queue")
    assert erika_in_ameise(stack) != "+49 221 5550199"
    page.reload()
    queues = page.locator("section[aria-labelledby=queues]")
    depth = queues.locator("tr", has_text="crm-to-ameise").locator("td.num")          # messages waiting
    expect(depth).to_be_visible()
    assert depth.inner_text() == "1"
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "overview-paused-waiting-375-de")

    page.get_by_role("button", name="Fortsetzen").click()
    expect(page.get_by_text("Die Richtung läuft wieder.")).to_be_visible()
    wait_for(lambda: erika_in_ameise(stack) == "+49 221 5550199", what="the waiting change synced after the resume")
    assert waiting(rabbitmq_url, stack)[0] == 0
    assert stack.services.dead_letters.count(DeadLetterFilter()) == 0
    screenshot(page, "overview-resumed-375-de")
    page.goto(f"{stack.dashboard.url}/audit")
    rows = page.locator("tbody tr")
    assert "Richtung fortgesetzt" in rows.nth(0).inner_text() and "Richtung pausiert" in rows.nth(1).inner_text()
    screenshot(page, "audit-pause-resume-375-de")


def test_the_connections_page_shows_no_secret_on_a_375_px_screen_by_keyboard(stack, open_page, screenshot):
    page = open_page(width=375, height=812, language="de-DE")
    base = sign_in(page, stack)
    page.goto(f"{base}/connections")
    for summary in page.locator("summary").all():
        summary.click()                                  # every settings table open
    html = page.content()
    settings = stack.settings
    secrets = [settings.zoho_client_secret, settings.zoho_refresh_token, settings.ameise_client_secret,
               settings.dashboard_secret_key, settings.metrics_token, settings.token_key, settings.admin_token,
               settings.zoho_webhook_token]
    tokens = [stack.services.store.tokens.load(p) for p in ("zoho", "ameise")]
    secrets += [t.access_token for t in tokens if t] + [t.refresh_token for t in tokens if t]
    assert [s for s in secrets if s and s in html] == []
    expect(page.get_by_text("geheim, gesetzt").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "connections-375-de")
    # The connect buttons are reached by the keyboard.
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "connect-ameise":
            break
    assert page.evaluate("document.activeElement.textContent.trim()") == "Ameise neu verbinden"
