"""The demo's deep links: a record timeline of the dashboard `syncbridge run` starts opens the simulated records."""
from __future__ import annotations

import re
from html import unescape

import pytest
import requests

from simulators.stack import DEMO_LOGIN, start_stack
from syncbridge.config import Settings
from tests.support.dashboard import csrf_token
from tests.support.waiting import wait_for


@pytest.fixture
def demo(tmp_path):
    settings = Settings.from_env({}, database_url=f"sqlite:///{tmp_path}/syncbridge.db",
                                 dailyup_dir=str(tmp_path / "dailyup"))
    stack = start_stack(settings, dashboard_port=0)
    try:
        yield stack
    finally:
        stack.stop()


def test_the_timelines_links_open_erikas_record_in_the_simulated_crm_and_portal(demo):
    erika = demo.demo_ids["zoho"]["Erika Mustermann"]
    # The demo saves Erika unchanged at start: her sync leaves an attempt with both ids.
    base = demo.dashboard.url
    browser = requests.Session()
    token = csrf_token(browser.get(f"{base}/login", timeout=10).text)
    signed_in = browser.post(f"{base}/login", data={"csrf_token": token, "username": DEMO_LOGIN[0],
                                                    "password": DEMO_LOGIN[1]}, timeout=10)
    assert signed_in.ok and "/login" not in signed_in.url

    def links() -> dict[str, str]:
        page = browser.get(f"{base}/events/timeline/customer/{erika}", timeout=10).text
        return {name: unescape(url) for name, url in re.findall(r'id="(zoho|ameise)-link" href="([^"]+)"', page)}
    wait_for(lambda: len(links()) == 2, timeout=30, what="both deep links on Erika's timeline")
    found = links()

    crm = requests.get(found["zoho"], timeout=10)
    portal = requests.get(found["ameise"], timeout=10)

    assert found["zoho"].startswith(demo.zoho.url) and found["ameise"].startswith(demo.ameise.url)
    assert crm.status_code == 200 and "Mustermann" in crm.text and erika in crm.text
    assert portal.status_code == 200 and "Mustermann" in portal.text
    assert "Kunde " in portal.text


def test_a_deep_link_to_a_record_the_simulators_do_not_have_is_a_404_page(demo):
    assert requests.get(f"{demo.zoho.url}/crm/tab/Contacts/1", timeout=10).status_code == 404
    assert requests.get(f"{demo.zoho.url}/crm/tab/NoSuchModule/1", timeout=10).status_code == 404
    assert requests.get(f"{demo.ameise.url}/maklerportal/?show=kunde&kunde=9999999999", timeout=10).status_code == 404
    assert requests.get(f"{demo.ameise.url}/maklerportal/?show=etwas", timeout=10).status_code == 404
