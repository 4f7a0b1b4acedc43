"""The simulated Zoho CRM's limit of concurrent API calls: 429 beyond it, and the counts a test reads."""
from __future__ import annotations

import threading

import pytest
import requests

from simulators.server import ServerThread
from simulators.zoho import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN, ZohoState, create_zoho_app
from tests.support.waiting import wait_for

REFRESH = {"grant_type": "refresh_token", "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET,
           "refresh_token": DEFAULT_REFRESH_TOKEN}
MISSING_ID = "5725767000099999999"


@pytest.fixture
def server():
    state = ZohoState()
    with ServerThread(create_zoho_app(state)) as running:
        yield running, state


def _token(url: str) -> dict[str, str]:
    token = requests.post(f"{url}/oauth/v2/token", data=REFRESH, timeout=5).json()["access_token"]
    return {"Authorization": f"Zoho-oauthtoken {token}"}


def _slow_calls(url: str, headers: dict[str, str], count: int) -> tuple[list[threading.Thread], list[int]]:
    statuses: list[int] = []

    def call() -> None:
        statuses.append(requests.get(f"{url}/crm/v7/Contacts/{MISSING_ID}", headers=headers, timeout=10).status_code)

    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, statuses


def test_no_limit_by_default_and_the_peak_is_recorded(server):
    running, state = server
    headers = _token(running.url)
    state.add_fault(None, count=3, delay=1.0)
    threads, statuses = _slow_calls(running.url, headers, 3)
    wait_for(lambda: state.in_flight == 3, timeout=5, what="three calls in flight")
    for thread in threads:
        thread.join()
    snapshot = requests.get(f"{running.url}/_sim/state", timeout=5).json()
    assert statuses == [204, 204, 204]
    assert (snapshot["peak_in_flight"], snapshot["refused_calls"], snapshot["in_flight"]) == (3, 0, 0)
    assert snapshot["settings"]["max_concurrent"] is None


def test_a_call_beyond_the_limit_answers_429_and_is_counted_until_a_reset(server):
    running, state = server
    assert requests.patch(f"{running.url}/_sim/settings", json={"max_concurrent": 2}, timeout=5).json()[
        "max_concurrent"] == 2
    headers = _token(running.url)
    state.add_fault(None, count=2, delay=2.0)
    threads, statuses = _slow_calls(running.url, headers, 2)
    wait_for(lambda: state.in_flight == 2, timeout=5, what="two calls in flight")

    refused = requests.get(f"{running.url}/crm/v7/Contacts/{MISSING_ID}", headers=headers, timeout=5)
    # the accounts server is no API call: it answers while the API is at its limit
    minted = requests.post(f"{running.url}/oauth/v2/token", data=REFRESH, timeout=5)

    assert refused.status_code == 429
    assert refused.json() == {"code": "TOO_MANY_REQUESTS", "details": {}, "message": "The rate limit has exceeded",
                              "status": "error"}
    assert minted.status_code == 200 and "access_token" in minted.json()
    for thread in threads:
        thread.join()
    assert statuses == [204, 204]
    assert requests.get(f"{running.url}/crm/v7/Contacts/{MISSING_ID}", headers=headers, timeout=5).status_code == 204
    snapshot = requests.get(f"{running.url}/_sim/state", timeout=5).json()
    assert (snapshot["peak_in_flight"], snapshot["refused_calls"], snapshot["in_flight"]) == (2, 1, 0)

    assert requests.post(f"{running.url}/_sim/reset", json={}, timeout=5).status_code == 200
    snapshot = requests.get(f"{running.url}/_sim/state", timeout=5).json()
    assert (snapshot["peak_in_flight"], snapshot["refused_calls"]) == (0, 0)
    assert snapshot["settings"]["max_concurrent"] == 2   # a setting, not a count: the reset keeps it


def test_the_limit_can_be_given_on_the_command_line(monkeypatch):
    served: list[ZohoState] = []

    def run(app, **_options) -> None:
        served.append(app.config["ZOHO_STATE"])

    monkeypatch.setattr("flask.Flask.run", run)
    from simulators.zoho.app import main

    main(["--max-concurrent", "4"])
    main([])
    assert [s.max_concurrent for s in served] == [4, None]
