"""The dashboard on a migrated database, for view tests (Flask's test client) and browser tests (a real port)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from syncbridge.bootstrap import dashboard_app, dashboard_parts
from syncbridge.config import Settings
from tests.support.clock import FakeClock

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORDS = {"viewer": "viewer-passwort", "operator": "operator-passwort", "admin": "admin-passwort"}


def csrf_token(html: str) -> str:
    """The CSRF token of the first form of a page."""
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


@dataclass
class Dashboard:
    """A dashboard app with one user per role (named after it, passwords in :data:`PASSWORDS`)."""

    settings: Settings
    parts: object
    app: object
    clock: FakeClock

    @classmethod
    def build(cls, database_url: str, store=None, *, real_time: bool = False, publisher=None,
              **overrides: str) -> Dashboard:
        """The app on ``database_url``; its clock is a FakeClock unless ``real_time``; replays go to ``publisher``."""
        settings = Settings.from_env({}, database_url=database_url, **overrides)
        clock = FakeClock()
        parts = dashboard_parts(settings, store=store, migrate=True, now=None if real_time else clock,
                                publisher=publisher)
        for role, password in PASSWORDS.items():
            parts.operators.create(role, password, role, by="test")
        return cls(settings, parts, dashboard_app(settings, parts=parts), clock)

    def client(self, language: str | None = "en"):
        client = self.app.test_client()
        if language:
            client.environ_base["HTTP_ACCEPT_LANGUAGE"] = language
        return client

    def signed_in(self, role: str, language: str | None = "en"):
        """A test client signed in as the user of ``role``."""
        client = self.client(language)
        answer = sign_in(client, role, PASSWORDS[role])
        assert answer.status_code == 302, answer.get_data(as_text=True)
        return client


def sign_in(client, username: str, password: str, *, address: str = "127.0.0.1"):
    """Post the sign-in form as a browser does (its CSRF token first)."""
    token = csrf_token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"csrf_token": token, "username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def post_form(client, page: str, action: str, data: dict | None = None, **kwargs):
    """Post to ``action`` with the CSRF token of ``page``, as its form would."""
    token = csrf_token(client.get(page).get_data(as_text=True))
    return client.post(action, data={"csrf_token": token, **(data or {})}, **kwargs)
