"""The OAuth clients talk plain http to the loopback simulators without touching the process environment.

oauthlib refuses http unless ``OAUTHLIB_INSECURE_TRANSPORT`` is set; a client that set it
would switch the check off for every OAuth library user of the process.  Ours decide
themselves (loopback or SYNCBRIDGE_ALLOW_HTTP_OAUTH) and leave the variable alone.
"""
from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from simulators.ameise import API_PREFIX, AmeiseState, create_ameise_app
from simulators.server import ServerThread
from simulators.zoho import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    ZohoState,
    create_zoho_app,
)
from syncbridge.adapters.ameise import AmeiseClient, AmeiseOAuth
from syncbridge.adapters.tokens import MemoryTokenStore
from syncbridge.adapters.zoho import ZohoClient

VARIABLE = "OAUTHLIB_INSECURE_TRANSPORT"
REDIRECT_URI = "http://127.0.0.1:8000/connect/ameise/callback"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)


def test_ameise_oauth_connects_and_refreshes_over_loopback_http_without_the_variable():
    with ServerThread(create_ameise_app(AmeiseState())) as server:
        oauth = AmeiseOAuth(auth_url=server.url, client_id="dev-ameise-client", client_secret="dev-ameise-secret",
                            redirect_uri=REDIRECT_URI, scope="ameise/mitarbeiterwebservice offline",
                            token_store=MemoryTokenStore(), timeout=5.0)
        client = AmeiseClient(oauth, api_url=server.url + API_PREFIX, timeout=5.0)
        assert VARIABLE not in os.environ

        answer = requests.get(oauth.authorization_url("s-1"), allow_redirects=False, timeout=5)
        assert answer.status_code == 302
        query = parse_qs(urlsplit(answer.headers["Location"]).query)
        assert query["state"] == ["s-1"]
        first = oauth.exchange_code(query["code"][0])
        assert first.refresh_token and oauth.employee_id
        refreshed = oauth.refresh_access_token(rejected=first.access_token)
        assert refreshed and refreshed != first.access_token
        assert client.get_customer("0000000000") is None

    assert VARIABLE not in os.environ


def test_zoho_client_refreshes_over_loopback_http_without_the_variable():
    with ServerThread(create_zoho_app(ZohoState())) as server:
        client = ZohoClient(accounts_url=server.url, client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET,
                            refresh_token=DEFAULT_REFRESH_TOKEN, token_store=MemoryTokenStore(), timeout=5.0)
        assert VARIABLE not in os.environ
        assert client.access_token().access_token
        assert client.get_record("Contacts", "1") is None

    assert VARIABLE not in os.environ


def test_ameise_oauth_still_refuses_plain_http_to_another_host():
    with pytest.raises(ValueError, match="needs https"):
        AmeiseOAuth(auth_url="http://auth.example.com", client_id="c", client_secret="s", redirect_uri=REDIRECT_URI,
                    scope="offline", token_store=MemoryTokenStore())
    assert VARIABLE not in os.environ
