"""The dashboard in a real browser: sign-in, limits, roles, CSRF, languages, a 375 px screen, the keyboard."""
from __future__ import annotations

from playwright.sync_api import expect

from syncbridge.ports import DirectionPause
from tests.support.dashboard import PASSWORDS


def sign_in(page, base: str, username: str, password: str | None = None) -> None:
    """Fill in the sign-in form (opened first unless the browser is on it) and send it."""
    if "/login" not in page.url:
        page.goto(f"{base}/")
    page.get_by_label("Username" if page.locator("html").get_attribute("lang") == "en" else "Benutzername") \
        .fill(username)
    page.locator("#password").fill(password if password is not None else PASSWORDS[username])
    page.locator("form button[type=submit].primary").click()


def test_an_admin_signs_in_and_sees_every_page_in_english_and_german(live, open_page, screenshot):
    board, base = live
    page = open_page()
    page.goto(f"{base}/users")
    assert page.url.startswith(f"{base}/login")
    screenshot(page, "login-en")
    sign_in(page, base, "admin")
    page.wait_for_url(f"{base}/users")
    page.get_by_role("link", name="Overview").click()
    expect(page.get_by_role("heading", name="Directions")).to_be_visible()
    expect(page.get_by_role("heading", name="Last DailyUp import")).to_be_visible()
    screenshot(page, "overview-en")

    page.get_by_role("link", name="Users").click()
    page.get_by_label("Username").fill("sachbearbeiterin")
    page.locator("#new-password").fill("ein-gutes-passwort")
    page.get_by_label("Role", exact=True).select_option("operator")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_text("User sachbearbeiterin created.")).to_be_visible()
    screenshot(page, "users-en")
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("cell", name="sachbearbeiterin")).to_be_visible()
    screenshot(page, "audit-en")

    # The switch overrides the browser's English.
    page.get_by_label("Language").select_option("de")
    page.get_by_role("button", name="Switch").click()
    expect(page.get_by_role("heading", name="Protokoll")).to_be_visible()
    screenshot(page, "audit-de")
    page.get_by_role("link", name="Übersicht").click()
    expect(page.get_by_role("heading", name="Richtungen")).to_be_visible()
    screenshot(page, "overview-de")
    page.get_by_role("link", name="Benutzer").click()
    screenshot(page, "users-de")
    page.get_by_role("button", name="Abmelden").click()
    expect(page.get_by_text("Sie sind abgemeldet.")).to_be_visible()
    screenshot(page, "login-de")
    assert page.console_errors == []          # htmx loaded, nothing blocked by the CSP


def test_a_wrong_password_is_refused_and_repeated_failures_lock_the_account(live, open_page, screenshot):
    board, base = live
    page = open_page()
    for _ in range(3):
        sign_in(page, base, "operator", "falsches-passwort")
        expect(page.get_by_text("Wrong username or password.")).to_be_visible()
    screenshot(page, "login-wrong-password-en")
    sign_in(page, base, "operator")               # the right one, too late
    expect(page.get_by_text("Too many failed sign-ins")).to_be_visible()
    assert page.url.startswith(f"{base}/login")
    screenshot(page, "login-locked-en")


def test_a_viewer_cannot_reach_an_admin_page_or_act(live, open_page, screenshot):
    board, base = live
    page = open_page()
    sign_in(page, base, "viewer")
    page.wait_for_url(f"{base}/")
    assert page.get_by_role("link", name="Users").count() == 0
    assert page.get_by_role("button", name="Pause").count() == 0
    answer = page.goto(f"{base}/users")
    assert answer.status == 403
    expect(page.get_by_text("You do not have permission")).to_be_visible()
    screenshot(page, "forbidden-en")
    # Posting the pause form anyway (with the page's own CSRF token) is refused as well.
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    refused = page.request.post(f"{base}/directions/crm_to_ameise/pause", form={"csrf_token": token})
    assert refused.status == 403
    assert board.parts.operators.store.paused_directions() == {}


def test_a_post_without_the_csrf_token_is_refused(live, open_page):
    board, base = live
    page = open_page()
    sign_in(page, base, "admin")
    page.wait_for_url(f"{base}/")
    # The browser's session cookie goes along; only the token is missing.
    refused = page.request.post(f"{base}/users", form={"username": "eindringling", "password": "long-enough-1",
                                                       "role": "admin"})
    assert refused.status == 400 and "did not come from this site" in refused.text()
    assert board.parts.operators.find("eindringling") is None


def test_an_operator_pauses_a_direction_on_a_375_px_screen(live, open_page, screenshot):
    board, base = live
    page = open_page(width=375, height=812, language="de-DE")
    sign_in(page, base, "operator")
    page.wait_for_url(f"{base}/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375      # nothing wider than the screen
    screenshot(page, "overview-375-de")
    page.locator("#reason-crm_to_ameise").fill("Wartung")
    page.locator("form[action='/directions/crm_to_ameise/pause'] button").click()
    expect(page.get_by_text("Pausiert von operator")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "overview-375-paused-de")
    assert "crm_to_ameise" in board.parts.operators.store.paused_directions()


def test_the_keyboard_reaches_the_content_first_and_focus_is_visible(live, open_page):
    board, base = live
    page = open_page()
    sign_in(page, base, "admin")
    page.wait_for_url(f"{base}/")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent.trim()")
    assert focused == "Skip to content"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # Every form field has a label.
    unlabelled = page.evaluate("""[...document.querySelectorAll('input:not([type=hidden]), select')]
        .filter(e => !e.labels || e.labels.length === 0).map(e => e.name)""")
    assert unlabelled == []


def test_the_overview_refreshes_itself_through_htmx_with_its_headers(live, open_page):
    board, base = live
    page = open_page()
    sign_in(page, base, "viewer")
    page.wait_for_url(f"{base}/")
    board.parts.operators.store.pause_direction(
        DirectionPause("ameise_to_crm", "operator", "Umstellung", board.parts.overview_sources.now()))
    with page.expect_request(lambda r: r.url == f"{base}/" and r.headers.get("hx-request") == "true") as caught:
        # What the 30 s poll does, started now (htmx is loaded from our own static files despite the CSP).
        page.evaluate("htmx.ajax('GET', '/', {source: '#overview', target: '#overview', swap: 'innerHTML'})")
    headers = caught.value.headers
    assert headers["x-dashboard-background"] == "1"
    assert headers["x-csrftoken"] == page.locator("input[name=csrf_token]").first.get_attribute("value")
    page.get_by_text("Umstellung").wait_for()
    assert page.locator("#overview h1").count() == 0          # a fragment was swapped in, not a whole page
