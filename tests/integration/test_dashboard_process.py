"""The dashboard as its Procfile line starts it: gunicorn on ``syncbridge.bootstrap:dashboard_app()``, on PostgreSQL."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest
import requests

from simulators.stack import free_port
from syncbridge.adapters.db import migrate
from syncbridge.bootstrap import build_operators
from syncbridge.config import Settings
from tests.support.databases import pg_schema
from tests.support.processes import procfile, start
from tests.support.waiting import wait_for


@pytest.fixture
def schema_url(postgres_url):
    with pg_schema(postgres_url) as url:
        yield url


def environment(database_url: str, port: int, rabbitmq_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCBRIDGE_")}
    env.update(PATH=f"{os.path.dirname(sys.executable)}:{env.get('PATH', '')}", DASHBOARD_PORT=str(port),
               SYNCBRIDGE_DATABASE_URL=database_url, SYNCBRIDGE_BROKER_URL=rabbitmq_url)
    return env


def test_the_procfile_dashboard_serves_sign_in_and_the_overview(schema_url, rabbitmq_url, tmp_path):
    migrate.upgrade(schema_url)
    build_operators(Settings.from_env({}, database_url=schema_url)).create("chefin", "sicheres-passwort", "admin",
                                                                            by="test")
    port = free_port()
    command = procfile()["dashboard"].replace("0.0.0.0", "127.0.0.1")
    process = start(f"{command} --workers 1", environment(schema_url, port, rabbitmq_url), tmp_path / "dashboard.log")
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            try:
                return requests.get(f"{base}/login", timeout=5)
            except (requests.ConnectionError, requests.Timeout):
                assert process.poll() is None, (tmp_path / "dashboard.log").read_text()
                return None

        login = wait_for(up, timeout=30, what="the dashboard under gunicorn")
        assert login.status_code == 200 and "frame-ancestors 'none'" in login.headers["Content-Security-Policy"]
        with requests.Session() as browser:
            token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(f"{base}/login").text).group(1)
            answer = browser.post(f"{base}/login", data={"csrf_token": token, "username": "chefin",
                                                         "password": "sicheres-passwort"}, timeout=10)
            assert answer.status_code == 200 and 'id="connections"' in answer.text
            # The queues of a broker nobody declared yet are unknown ("—"), not an error.
            assert 'id="queues"' in answer.text
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert "Traceback" not in (tmp_path / "dashboard.log").read_text()


def test_the_dashboard_refuses_an_outdated_database_in_one_line(schema_url):
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "syncbridge"), "dashboard", "--bind",
                             f"127.0.0.1:{free_port()}"], env={**os.environ, "SYNCBRIDGE_DATABASE_URL": schema_url},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: the database schema is not up to date: run `syncbridge db upgrade`"
