"""Every `syncbridge worker` stops on SIGTERM and SIGINT within seconds, whatever state it is in.

Each worker runs as a subprocess, as the Procfile starts it: with a broker that
refuses connections, with one whose name does not resolve, and connected to the
real RabbitMQ while idle.  While the broker cannot be reached, each attempt is
one log line (no traceback) and the wait between attempts grows.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulators.ameise import AmeiseState, create_ameise_app
from simulators.ameise import seed_demo as seed_ameise
from simulators.server import ServerThread
from simulators.stack import AMEISE_API_PATH
from simulators.zoho import ZohoState, create_zoho_app
from syncbridge.config import WORKERS, Settings
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
STOPPED_WITHIN_S = 5.0
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
CONSUMER_RETRY = re.compile(r"cannot reach the broker .*; trying again in (\d+) s$")
DAILYUP_RETRY = re.compile(r"publishing DailyUp deltas failed, trying again in (\d+) s: ")


def refused_broker() -> str:
    """A broker URL on a local port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{port}//"


UNRESOLVABLE_BROKER = "amqp://guest:guest@rabbit.invalid:5672//"


@pytest.fixture(scope="module")
def ameise():
    state = AmeiseState()
    seed_ameise(state)
    with ServerThread(create_ameise_app(state)) as server:
        yield server


@pytest.fixture(scope="module")
def zoho():
    """The simulated CRM: a sync worker starts consuming once its preflight check of the CRM's fields passes."""
    with ServerThread(create_zoho_app(ZohoState())) as server:
        yield server


@pytest.fixture
def base_env(tmp_path, ameise, zoho, monkeypatch):
    """A migrated SQLite database with Ameise connected, and a DailyUp outbox with deltas waiting."""
    from simulators.stack import connect_ameise_by_consent
    from syncbridge.bootstrap import bootstrap, bootstrap_dailyup
    from syncbridge.dailyup.generate import write_delivery

    env = {name: value for name, value in os.environ.items() if not name.startswith("SYNCBRIDGE_")}
    env.update({
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}",
        "SYNCBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path}/syncbridge.db",
        "SYNCBRIDGE_ZOHO_ACCOUNTS_URL": zoho.url,
        "SYNCBRIDGE_AMEISE_AUTH_URL": ameise.url,
        "SYNCBRIDGE_AMEISE_API_URL": ameise.url + AMEISE_API_PATH,
        "SYNCBRIDGE_DAILYUP_DIR": str(tmp_path / "dailyup"),
        "SYNCBRIDGE_DAILYUP_POLL_SECONDS": "0.2",
        "SYNCBRIDGE_LOG_LEVEL": "INFO",
    })
    settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("SYNCBRIDGE_")})
    services = bootstrap(settings)
    try:
        connect_ameise_by_consent(services)
    finally:
        services.close()
    with bootstrap_dailyup(settings, publish=False) as (importer, _):
        assert importer.import_file(write_delivery(tmp_path, customers=3)).state == "accepted"
    return env


def start(name: str, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "syncbridge.cli", "worker", name], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def stop_and_time(process: subprocess.Popen, signum: int) -> tuple[int, float]:
    started = time.monotonic()
    process.send_signal(signum)
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"the worker did not stop on signal {signum} within 30 s")
    return code, time.monotonic() - started


def retry_waits(log: Path, name: str) -> list[int]:
    pattern = DAILYUP_RETRY if name == "dailyup" else CONSUMER_RETRY
    return [int(m.group(1)) for line in log.read_text().splitlines() if (m := pattern.search(line))]


def assert_one_line_per_record(log: Path) -> None:
    text = log.read_text()
    assert "Traceback" not in text, text
    for line in text.splitlines():
        assert LOG_LINE.match(line), f"not a log line of its own: {line!r}\n{text}"


@pytest.mark.parametrize("name", WORKERS)
def test_a_worker_that_cannot_reach_the_broker_stops_on_sigterm_and_sigint(base_env, tmp_path, name):
    # Each way of not reaching the broker with one of the signals: a refused port is stopped by SIGTERM,
    # a host that does not resolve by SIGINT (both processes run at once).
    brokers = {signal.SIGTERM: ("refused", refused_broker()), signal.SIGINT: ("unresolvable", UNRESOLVABLE_BROKER)}
    logs = {signum: tmp_path / f"{name}-{broker}-{signum.name}.log" for signum, (broker, _) in brokers.items()}
    processes = {signum: start(name, {**base_env, "SYNCBRIDGE_BROKER_URL": url}, logs[signum])
                 for signum, (_, url) in brokers.items()}
    try:
        for signum, log in logs.items():
            # Two failed attempts: the worker is retrying (waiting 3 s before its third).
            wait_for(lambda log=log: len(retry_waits(log, name)) >= 2, timeout=30, interval=0.05,
                     what=f"two failed attempts of {name} in {log.name}")
        results = {signum: stop_and_time(process, signum) for signum, process in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    for signum, (code, took) in results.items():
        log = logs[signum]
        assert code == 0, log.read_text()
        assert took < STOPPED_WITHIN_S, f"{name} took {took:.1f} s to stop on {signum.name}"
        assert_one_line_per_record(log)
        waits = retry_waits(log, name)
        assert waits[:2] == [1, 3], log.read_text()        # the wait grows from one attempt to the next
        assert "received signal" in log.read_text()


def test_every_worker_connected_and_idle_stops_on_sigterm(base_env, tmp_path, rabbitmq_url, namespace):
    env = {**base_env, "SYNCBRIDGE_BROKER_URL": rabbitmq_url, "SYNCBRIDGE_NAMESPACE": namespace}
    logs = {name: tmp_path / f"{name}.log" for name in WORKERS}
    processes = {name: start(name, env, log) for name, log in logs.items()}
    ready = {name: "connected to the broker" for name in WORKERS}
    ready["dailyup"] = "DailyUp worker watching"
    try:
        for name, log in logs.items():
            wait_for(lambda log=log, name=name: ready[name] in log.read_text(), timeout=30, what=f"{name} ready")
        # The DailyUp worker has published its outbox: it idles too.
        wait_for(lambda: "DailyUp publish: " in logs["dailyup"].read_text(), timeout=30, what="the outbox published")
        results = {name: stop_and_time(process, signal.SIGTERM) for name, process in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    for name, (code, took) in results.items():
        assert code == 0, logs[name].read_text()
        assert took < STOPPED_WITHIN_S, f"{name} took {took:.1f} s to stop"
        assert_one_line_per_record(logs[name])
        assert f"worker {name} stopped" in logs[name].read_text()


@pytest.mark.parametrize("name", ["crm-to-ameise", "ameise-to-crm"])
def test_a_worker_paused_by_its_failing_preflight_says_so_and_stops_on_sigterm(base_env, tmp_path, rabbitmq_url,
                                                                               namespace, name):
    # A match field that does not exist in the CRM blocks both directions.
    env = {**base_env, "SYNCBRIDGE_BROKER_URL": rabbitmq_url, "SYNCBRIDGE_NAMESPACE": namespace,
           "SYNCBRIDGE_ZOHO_FIELD_KUNDENNUMMER": "Kunden_Nr", "SYNCBRIDGE_PREFLIGHT_INTERVAL": "0.2"}
    log = tmp_path / f"{name}.log"
    process = start(name, env, log)
    try:
        direction = name.replace("-", "_")
        wait_for(lambda: log.read_text().count(f"{direction} paused: preflight failing: ") >= 2, timeout=30,
                 what=f"{name} paused and checking again")
        code, took = stop_and_time(process, signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert code == 0, text
    assert took < STOPPED_WITHIN_S, f"{name} took {took:.1f} s to stop"
    assert "Kunden_Nr" in text and "connected to the broker" not in text    # it never began to consume
    assert_one_line_per_record(log)
