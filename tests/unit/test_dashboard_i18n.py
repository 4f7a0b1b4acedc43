"""German and English: every visible text has its German translation, the browser picks, the switch overrides."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from dashboard.i18n import COOKIE, TRANSLATIONS, compile_catalogs
from tests.support.dashboard import Dashboard, post_form

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def board(database_url, store) -> Dashboard:
    return Dashboard.build(database_url, store=store)


def test_every_text_of_the_dashboard_has_a_german_translation(tmp_path):
    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "dashboard/babel.cfg",
                    "-k", "lazy_gettext", "-o", str(pot), "dashboard"], cwd=ROOT, check=True, capture_output=True)
    wanted = {m.id for m in read_po(io.BytesIO(pot.read_bytes())) if m.id}
    with (TRANSLATIONS / "de" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        german = {m.id: m.string for m in read_po(handle) if m.id}

    assert len(wanted) > 50
    assert sorted(wanted - {k for k, v in german.items() if v}) == []
    assert sorted(set(german) - wanted) == []          # no leftovers of texts that are gone


def test_the_catalogs_are_compiled_from_the_po_files_in_memory():
    catalogs = compile_catalogs()
    assert set(catalogs) == {"de"}
    assert catalogs["de"].gettext("Sign in") == "Anmelden"
    assert not list(TRANSLATIONS.rglob("*.mo"))


@pytest.mark.parametrize(("accept", "title"), [
    ("de-DE,de;q=0.9,en;q=0.8", "Bei syncbridge anmelden"),
    ("en-GB,en;q=0.9", "Sign in to syncbridge"),
    ("fr-FR", "Bei syncbridge anmelden"),            # neither: German, the brokers' language
    (None, "Bei syncbridge anmelden"),
])
def test_the_browser_language_picks(board, accept, title):
    page = board.client(language=accept).get("/login").get_data(as_text=True)
    assert title in page
    assert f'<html lang="{"en" if "Sign" in title else "de"}">' in page


def test_the_switch_overrides_the_browser_and_goes_back(board):
    client = board.signed_in("admin", language="en-US")
    assert ">Overview<" in client.get("/").get_data(as_text=True)
    answer = post_form(client, "/users", "/language", {"language": "de", "next": "/users"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/users"
    assert f"{COOKIE}=de" in answer.headers["Set-Cookie"] and "HttpOnly" in answer.headers["Set-Cookie"]
    page = client.get("/users").get_data(as_text=True)
    assert ">Übersicht<" in page and "Neuer Benutzer" in page


def test_the_switch_ignores_an_unknown_language_and_a_foreign_target(board):
    client = board.client()
    answer = post_form(client, "/login", "/language", {"language": "xx", "next": "https://evil.example/"})
    assert answer.headers["Location"] == "/"
    assert COOKIE not in answer.headers.get("Set-Cookie", "")
