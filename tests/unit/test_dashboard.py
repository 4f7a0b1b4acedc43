"""The dashboard's views and permission rules, through Flask's test client on a migrated SQLite database."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from dashboard.auth import _local
from dashboard.security import CSP
from syncbridge.ports import OAuthToken
from tests.support.dashboard import PASSWORDS, Dashboard, csrf_token, post_form, sign_in


@pytest.fixture
def board(database_url, store) -> Dashboard:
    return Dashboard.build(database_url, store=store, dashboard_login_attempts="3",
                           dashboard_login_attempts_per_address="6")


def text_of(answer) -> str:
    return answer.get_data(as_text=True)


# ---------------------------------------------------------------- sign-in
@pytest.mark.parametrize("path", ["/", "/users", "/audit", "/nowhere"])
def test_every_page_needs_a_sign_in(board, path):
    answer = board.client().get(path)
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login?next=")


def test_an_htmx_request_without_a_sign_in_is_sent_to_the_sign_in_page(board):
    answer = board.client().get("/", headers={"HX-Request": "true"})
    assert answer.status_code == 401 and answer.headers["HX-Redirect"] == "/login"


def test_signing_in_leads_back_to_the_page_asked_for_but_never_off_site(board):
    client = board.client()
    token = csrf_token(text_of(client.get("/login")))
    data = {"csrf_token": token, "username": "admin", "password": PASSWORDS["admin"]}
    assert client.post("/login?next=/audit", data=data).headers["Location"] == "/audit"
    client = board.client()
    data["csrf_token"] = csrf_token(text_of(client.get("/login")))
    assert client.post("/login?next=//evil.example/x", data=data).headers["Location"] == "/"


@pytest.mark.parametrize(("target", "expected"), [
    ("/audit?before=3", "/audit?before=3"), ("/?", "/"), ("https://evil.example/", None), ("//evil.example", None),
    ("/\\evil.example", None), ("audit", None), ("", None),
])
def test_only_local_paths_are_followed(target, expected):
    assert _local(target) == expected


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(board):
    client = board.client()
    for username in ("admin", "nobody"):
        answer = sign_in(client, username, "wrong-password")
        assert answer.status_code == 401 and "Wrong username or password." in text_of(answer)
    assert client.get("/").status_code == 302


def test_too_many_failures_lock_the_account_and_say_so(board):
    client = board.client()
    for _ in range(3):
        assert sign_in(client, "operator", "wrong-password").status_code == 401
    answer = sign_in(client, "operator", PASSWORDS["operator"])
    assert answer.status_code == 429 and "Too many failed sign-ins" in text_of(answer)
    board.clock.advance(board.settings.dashboard_login_window + 1)
    assert sign_in(client, "operator", PASSWORDS["operator"]).status_code == 302


def test_signing_out_ends_the_session(board):
    client = board.signed_in("viewer")
    assert post_form(client, "/", "/logout").status_code == 302
    assert client.get("/").status_code == 302


def test_a_new_password_ends_the_other_sessions_of_that_user(board):
    client = board.signed_in("viewer")
    board.parts.operators.set_password("viewer", "brand-new-password", by="admin")
    assert client.get("/").status_code == 302


def test_the_session_cookie_is_httponly_samesite_and_expires_with_the_idle_timeout(board):
    client = board.client()
    answer = sign_in(client, "viewer", PASSWORDS["viewer"])
    cookie = next(v for k, v in answer.headers.items() if k == "Set-Cookie" and v.startswith("syncbridge_dashboard="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie   # development: plain http
    assert board.app.permanent_session_lifetime == timedelta(minutes=30)
    assert "Expires=" in cookie


def test_in_production_the_session_cookie_is_secure(database_url, store):
    from tests.support.dashboard import Dashboard as Board

    board = Board.build(database_url, store=store)
    board.app.config["SESSION_COOKIE_SECURE"] = True
    answer = sign_in(board.client(), "viewer", PASSWORDS["viewer"])
    assert "Secure" in answer.headers["Set-Cookie"]


# ---------------------------------------------------------------- CSRF and headers
def test_a_form_without_its_csrf_token_is_refused(board):
    client = board.signed_in("admin")
    answer = client.post("/users", data={"username": "eve", "password": "long-enough-1", "role": "admin"})
    assert answer.status_code == 400 and "did not come from this site" in text_of(answer)
    assert board.parts.operators.find("eve") is None


def test_the_sign_in_form_needs_its_csrf_token_too(board):
    answer = board.client().post("/login", data={"username": "admin", "password": PASSWORDS["admin"]})
    assert answer.status_code == 400


def test_an_htmx_request_carries_the_token_in_its_header(board):
    client = board.signed_in("operator")
    page = text_of(client.get("/"))
    header_token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page).group(1)
    answer = client.post("/directions/crm_to_ameise/pause", data={"reason": "Wartung"},
                         headers={"X-CSRFToken": header_token, "HX-Request": "true"})
    assert answer.status_code == 303
    assert "crm_to_ameise" in board.parts.operators.store.paused_directions()


def test_every_answer_carries_the_security_headers(board):
    for answer in (board.client().get("/login"), board.signed_in("viewer").get("/")):
        headers = answer.headers
        assert headers["Content-Security-Policy"] == CSP
        assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP and "unsafe-inline" not in CSP
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Cache-Control"] == "no-store"


def test_no_page_has_an_inline_script_or_style(board):
    client = board.signed_in("admin")
    for path in ("/", "/users", "/audit", "/login"):
        page = text_of(client.get(path))
        assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
        assert "<style" not in page and " style=" not in page and " on" + "click=" not in page


# ---------------------------------------------------------------- permissions
@pytest.mark.parametrize(("role", "expected"), [("viewer", 403), ("operator", 403), ("admin", 200)])
@pytest.mark.parametrize("path", ["/users", "/audit"])
def test_admin_pages_are_for_admins(board, role, path, expected):
    assert board.signed_in(role).get(path).status_code == expected


def test_the_navigation_shows_only_what_the_role_may_open(board):
    viewer, admin = text_of(board.signed_in("viewer").get("/")), text_of(board.signed_in("admin").get("/"))
    assert 'href="/users"' not in viewer and 'href="/audit"' not in viewer
    assert 'href="/users"' in admin and 'href="/audit"' in admin


def test_a_viewer_can_neither_pause_nor_change_users(board):
    client = board.signed_in("viewer")
    assert 'action="/directions/crm_to_ameise/pause"' not in text_of(client.get("/"))
    assert post_form(client, "/", "/directions/crm_to_ameise/pause").status_code == 403
    assert post_form(client, "/", "/users", {"username": "eve", "password": "long-enough-1",
                                             "role": "admin"}).status_code == 403
    assert board.parts.operators.store.paused_directions() == {} and board.parts.operators.find("eve") is None


def test_an_operator_pauses_and_resumes_a_direction_and_both_are_audited(board):
    client = board.signed_in("operator")
    post_form(client, "/", "/directions/ameise_to_crm/pause", {"reason": "Wartung bei blau direkt"})
    page = text_of(client.get("/"))
    assert "Paused by operator" in page and "Wartung bei blau direkt" in page
    post_form(client, "/", "/directions/ameise_to_crm/resume")
    assert "Paused by" not in text_of(client.get("/"))
    actions = [(e.actor, e.action, e.target) for e in board.parts.operators.audit_entries()][:2]
    assert actions == [("operator", "direction.resumed", "ameise_to_crm"), ("operator", "direction.paused",
                                                                            "ameise_to_crm")]
    assert post_form(client, "/", "/directions/sideways/pause").status_code == 404


# ---------------------------------------------------------------- users and audit pages
def test_an_admin_manages_users_on_the_page_and_each_change_is_audited(board):
    client = board.signed_in("admin")
    answer = post_form(client, "/users", "/users", {"username": "Neu", "password": "neues-passwort", "role": "viewer"})
    assert answer.status_code == 303
    new = board.parts.operators.find("neu")
    post_form(client, "/users", f"/users/{new.id}/role", {"role": "operator"})
    post_form(client, "/users", f"/users/{new.id}/password", {"password": "noch-ein-passwort"})
    post_form(client, "/users", f"/users/{new.id}/delete")

    assert board.parts.operators.find("neu") is None
    audit = text_of(client.get("/audit"))
    for label in ("User created", "Role changed", "Password set", "User deleted"):
        assert label in audit
    assert "noch-ein-passwort" not in audit and "neues-passwort" not in audit


def test_a_refused_user_change_says_why_on_the_page(board):
    client = board.signed_in("admin")
    answer = post_form(client, "/users", "/users", {"username": "kurz", "password": "kurz", "role": "viewer"})
    assert answer.status_code == 400 and "at least 10 characters" in text_of(answer)
    admin = board.parts.operators.find("admin")
    post_form(client, "/users", f"/users/{admin.id}/role", {"role": "viewer"})
    assert "is the last admin" in text_of(client.get("/users"))


def test_the_audit_log_pages_with_an_older_link(board):
    for n in range(60):
        board.parts.operators.record("operator", "direction.paused", f"t{n}")
    client = board.signed_in("admin")
    first = text_of(client.get("/audit"))
    older = re.search(r'href="/audit\?before=(\d+)"', first).group(1)
    second = text_of(client.get(f"/audit?before={older}"))
    assert "<td>t59</td>" in first and "<td>t10</td>" in first and "<td>t9</td>" not in first
    assert "<td>t9</td>" in second and 'href="/audit?before=' not in second


# ---------------------------------------------------------------- overview
def test_the_overview_shows_directions_connections_queues_dead_letters_and_the_last_import(database_url, store,
                                                                                          namespace):
    from kombu import Connection

    from producers.topology import build_topology, declare

    board = Dashboard.build(database_url, store=store, namespace=namespace)
    with Connection("memory://localhost/") as connection:      # the in-process broker of this process
        topology = build_topology(namespace)
        declare(connection, topology)
        producer = connection.Producer()
        for n in range(2):
            producer.publish({"n": n}, exchange=topology.events, routing_key="crm.Contacts.changed")
    store.tokens.save("ameise", OAuthToken("a", "r", board.clock().timestamp() + 3600, {}))
    store.tokens.set_status("zoho", "reconnect_needed", "invalid_grant: the refresh token was revoked")
    page = text_of(board.signed_in("viewer").get("/"))

    assert "Zoho CRM needs to be reconnected" in page and "invalid_grant" in page
    assert page.count(">paused<") == 2            # both directions need Zoho
    assert "Token stored" in page and "Access token expires" in page
    assert re.search(r'<td data-label="Queue">crm-to-ameise</td><td data-label="Waiting" class="num">2</td>', page)
    assert re.search(r'<td data-label="Queue">ameise-to-crm</td><td data-label="Waiting" class="num">0</td>', page)
    assert 'id="dead-letters"' in page and "No delivery has been imported yet." in page


def test_the_overview_bounds_the_oldest_waiting_message_and_counts_open_issues(database_url, store, namespace):
    from kombu import Connection

    from producers.topology import build_topology, declare
    from syncbridge.ports import ACKNOWLEDGED, CRM_TO_AMEISE, ActivityEntry
    from tests.support.issues import BROKEN_CAUSE, seed

    board = Dashboard.build(database_url, store=store, namespace=namespace)
    now = board.clock()
    topology = build_topology(namespace)
    with Connection("memory://localhost/") as connection:
        declare(connection, topology)
        connection.Producer().publish({"n": 1}, exchange=topology.events, routing_key="crm.Contacts.changed")
    # A worker took a message 5 minutes ago that the receiver had taken in 12 minutes ago.
    store.log(ActivityEntry(CRM_TO_AMEISE, "updated", "ok", entity="customer", attempt=1,
                            at=now - timedelta(minutes=5), received_at=now - timedelta(minutes=12)))
    seed(board.parts, topology, now)                    # two causes: invalid e-mail, broken contract
    board.parts.issues.store.set_issue_state(BROKEN_CAUSE, ACKNOWLEDGED, "operator", now)

    page = text_of(board.signed_in("viewer").get("/"))

    row = re.search(r'<tr><td data-label="Queue">crm-to-ameise</td>(.*?)</tr>', page, re.S).group(1)
    assert 'class="num">1</td>' in row and "12 minutes" in row
    assert "12 minutes" not in re.search(r'<tr><td data-label="Queue">ameise-to-crm</td>(.*?)</tr>', page, re.S).group(1)
    assert re.search(r"Open issues</dt><dd><a href=\"/issues\">1</a>", page)
    assert re.search(r"Acknowledged issues</dt><dd>1<", page)


def test_the_overview_refreshes_as_a_fragment_for_htmx(board):
    client = board.signed_in("viewer")
    fragment = text_of(client.get("/", headers={"HX-Request": "true"}))
    assert 'id="directions"' in fragment and "<html" not in fragment


def test_the_page_refreshing_itself_does_not_keep_the_session_alive(board):
    client = board.signed_in("viewer")
    assert "X-Dashboard-Background" in text_of(client.get("/"))          # the Overview's polling sends it
    background = client.get("/", headers={"HX-Request": "true", "X-Dashboard-Background": "1"})
    assert background.status_code == 200 and "Set-Cookie" not in background.headers
    assert "syncbridge_dashboard=" in client.get("/").headers["Set-Cookie"]   # a request of the user renews it
