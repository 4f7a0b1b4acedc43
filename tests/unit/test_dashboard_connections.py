"""The Connections page: OAuth consent against the Zoho and Ameise simulators, state and PKCE, no secrets shown."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from syncbridge.adapters.ameise import AmeiseOAuth
from syncbridge.adapters.zoho import ZohoClient
from syncbridge.config import Settings
from syncbridge.errors import ReconnectNeeded
from syncbridge.handlers.connections import settings_shown
from syncbridge.ports import OAuthToken
from tests.support.connections import SECRETS, ConnectionsStack, consent
from tests.support.dashboard import post_form


@pytest.fixture
def stack(database_url, store):
    stack = ConnectionsStack.start(database_url, store)
    yield stack
    stack.stop()


def text_of(answer) -> str:
    return answer.get_data(as_text=True)


def start(client, provider: str):
    answer = post_form(client, "/connections", f"/connections/{provider}/connect")
    assert answer.status_code == 303, text_of(answer)
    return answer.headers["Location"]


def audit_actions(stack) -> list[tuple[str, str, str]]:
    return [(e.actor, e.action, e.target) for e in stack.board.parts.operators.audit_entries(limit=20)]


def test_an_operator_connects_ameise_with_state_and_pkce_s256(stack):
    client = stack.board.signed_in("operator")
    location = start(client, "ameise")
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(stack.board.settings.ameise_auth_url + "/oauth2/auth?")
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["redirect_uri"] == [stack.dashboard_url + "/connections/ameise/callback"]
    assert len(query["state"][0]) >= 32
    back = consent(location)
    answer = client.get(back)
    assert answer.status_code == 303 and answer.headers["Location"] == "/connections"
    page = text_of(client.get("/connections"))
    assert "Ameise is connected." in page
    token = stack.board.parts.connections.tokens.load("ameise")
    assert token is not None and token.extra["employee_id"]
    assert stack.board.parts.connections.tokens.status("ameise") == ("active", "")
    assert "ameise/mitarbeiterwebservice" in page and token.extra["employee_id"] in page
    assert audit_actions(stack)[:2] == [("operator", "connection.connected", "ameise"),
                                        ("operator", "connection.started", "ameise")]
    # The state is good once: the same answer again changes nothing.
    again = client.get(back)
    assert again.status_code == 303
    assert "does not belong to a connect started here" in text_of(client.get("/connections"))


def test_a_callback_with_another_state_is_refused_and_exchanges_nothing(stack):
    client = stack.board.signed_in("operator")
    location = start(client, "ameise")
    back = consent(location)
    forged = back.replace("state=", "state=x")
    answer = client.get(forged)
    assert answer.status_code == 303
    assert "does not belong to a connect started here" in text_of(client.get("/connections"))
    assert stack.board.parts.connections.tokens.load("ameise") is None
    # The code itself was not spent: the refusal happened before any exchange, but the pending connect is gone.
    assert client.get(back).status_code == 303
    assert stack.board.parts.connections.tokens.load("ameise") is None


def test_a_callback_of_another_browser_is_refused(stack):
    first = stack.board.signed_in("operator")
    back = consent(start(first, "ameise"))
    other = stack.board.signed_in("admin")
    other.get(back)
    assert stack.board.parts.connections.tokens.load("ameise") is None
    assert first.get(back).status_code == 303
    assert stack.board.parts.connections.tokens.load("ameise") is not None


def test_a_refused_consent_is_shown_and_audited(stack):
    client = stack.board.signed_in("operator")
    location = start(client, "ameise")
    state = parse_qs(urlsplit(location).query)["state"][0]
    client.get(f"/connections/ameise/callback?error=access_denied&error_description=Nein&state={state}")
    assert "Ameise was not connected: access_denied Nein" in text_of(client.get("/connections"))
    assert audit_actions(stack)[0] == ("operator", "connection.failed", "ameise")


def test_ameise_is_reconnected_after_its_token_was_revoked(stack):
    client = stack.board.signed_in("operator")
    client.get(consent(start(client, "ameise")))
    stack.ameise.revoke_all()
    tokens = stack.board.parts.connections.tokens
    oauth = AmeiseOAuth.from_settings(stack.board.settings, tokens)
    with pytest.raises(ReconnectNeeded):   # what a worker meets at the API's 401
        oauth.refresh_access_token(rejected=tokens.load("ameise").access_token)
    page = text_of(client.get("/connections"))
    assert "reconnect needed" in page and "Reconnect Ameise" in page
    client.get(consent(start(client, "ameise")))
    assert stack.board.parts.connections.tokens.status("ameise") == ("active", "")
    assert oauth.access_token()


def test_zoho_is_connected_by_consent_and_its_grant_replaces_the_configured_refresh_token(stack):
    client = stack.board.signed_in("operator")
    location = start(client, "zoho")
    query = parse_qs(urlsplit(location).query)
    assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
    assert "code_challenge" not in query  # the reference documents no PKCE for Zoho
    client.get(consent(location))
    token = stack.board.parts.connections.tokens.load("zoho")
    assert token is not None and token.refresh_token != SECRETS["zoho_refresh_token"]
    # The configured refresh token is revoked; the consented grant keeps the sync working.
    stack.zoho.revoke_refresh_token(SECRETS["zoho_refresh_token"])
    crm = ZohoClient.from_settings(stack.board.settings, stack.board.parts.connections.tokens)
    token.expires_at = 0.0
    stack.board.parts.connections.tokens.save("zoho", token)
    assert crm.access_token().refresh_token == token.refresh_token


def test_the_page_shows_status_and_settings_but_no_secret(stack):
    client = stack.board.signed_in("operator")
    client.get(consent(start(client, "ameise")))
    page = text_of(client.get("/connections"))
    assert "SYNCBRIDGE_AMEISE_CLIENT_SECRET" in page and "SYNCBRIDGE_ZOHO_REFRESH_TOKEN" in page
    assert stack.board.settings.ameise_auth_url in page
    for secret in SECRETS.values():
        assert secret not in page
    token = stack.board.parts.connections.tokens.load("ameise")
    assert token.access_token not in page and token.refresh_token not in page


def test_the_page_lets_its_connect_forms_redirect_to_the_authorization_servers(stack):
    answer = stack.board.signed_in("viewer").get("/connections")
    csp = answer.headers["Content-Security-Policy"]
    assert f"form-action 'self' {stack.board.settings.ameise_auth_url} {stack.board.settings.zoho_accounts_url}" in csp \
        or f"form-action 'self' {stack.board.settings.zoho_accounts_url} {stack.board.settings.ameise_auth_url}" in csp
    assert "frame-ancestors 'none'" in csp


def test_a_viewer_sees_the_page_but_cannot_connect(stack):
    client = stack.board.signed_in("viewer")
    page = text_of(client.get("/connections"))
    assert "Reconnect" not in page and "Connect Ameise" not in page
    assert post_form(client, "/connections", "/connections/ameise/connect").status_code == 403
    assert client.get("/connections/ameise/callback?code=x&state=y").status_code == 403


def test_an_unknown_system_is_not_found(stack):
    client = stack.board.signed_in("operator")
    assert post_form(client, "/connections", "/connections/salesforce/connect").status_code == 404


def test_the_page_speaks_german(stack):
    client = stack.board.signed_in("operator", language="de")
    page = text_of(client.get("/connections"))
    assert "Verbindungen" in page and "Ameise verbinden" in page


def test_the_simulator_refuses_the_dashboards_code_without_its_verifier(stack):
    client = stack.board.signed_in("operator")
    back = consent(start(client, "ameise"))
    code = parse_qs(urlsplit(back).query)["code"][0]
    answer = requests.post(stack.board.settings.ameise_auth_url + "/oauth2/token",
                           auth=("dash-ameise-client", SECRETS["ameise_client_secret"]),
                           data={"grant_type": "authorization_code", "code": code,
                                 "redirect_uri": stack.dashboard_url + "/connections/ameise/callback"}, timeout=10)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_a_credential_is_hidden_even_where_production_does_not_require_it():
    settings = Settings.from_env({}, ameise_refresh_token="ameise-refresh-XYZ",
                                 sentry_dsn="https://key-XYZ@sentry.example/1", ameise_scope="offline")
    shown = {s.env: s for s in settings_shown(settings, ("SYNCBRIDGE_AMEISE_", "SENTRY_"))}
    assert shown["SYNCBRIDGE_AMEISE_REFRESH_TOKEN"].secret and shown["SYNCBRIDGE_AMEISE_REFRESH_TOKEN"].value == ""
    assert shown["SYNCBRIDGE_AMEISE_REFRESH_TOKEN"].is_set
    assert shown["SENTRY_DSN"].secret and shown["SENTRY_DSN"].value == ""
    assert not shown["SYNCBRIDGE_AMEISE_SCOPE"].secret and shown["SYNCBRIDGE_AMEISE_SCOPE"].value == "offline"


def test_the_overview_links_a_connection_that_needs_a_reconnect(stack):
    stack.board.parts.connections.tokens.save("ameise", OAuthToken("a", "r", 0.0))
    stack.board.parts.connections.tokens.set_status("ameise", "reconnect_needed", "refresh failed")
    assert 'href="/connections#connection-ameise"' in text_of(stack.board.signed_in("operator").get("/"))
    assert 'href="/connections#connection-ameise"' not in text_of(stack.board.signed_in("viewer").get("/"))
