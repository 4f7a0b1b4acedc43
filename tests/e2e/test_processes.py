"""The production shape: the Procfile's processes as subprocesses, on RabbitMQ and PostgreSQL.

The simulators run in the test process so their state can be inspected; release,
web and worker run exactly as the Procfile says, and `syncbridge connect ameise`
connects the employee account as an operator would.
"""
from __future__ import annotations

import signal
import subprocess
from datetime import UTC

import pytest
import requests

from simulators.ameise import AmeiseState, create_ameise_app
from simulators.ameise import seed_demo as seed_ameise
from simulators.server import ServerThread
from simulators.stack import free_port
from simulators.zoho import ZohoState, create_zoho_app
from simulators.zoho import seed_demo as seed_zoho
from tests.support.ameise import contact, person
from tests.support.databases import empty_database
from tests.support.processes import ROOT, procfile, service_env, start
from tests.support.waiting import wait_for


@pytest.fixture
def simulators():
    zoho_state, ameise_state = ZohoState(), AmeiseState()
    ids = seed_zoho(zoho_state)
    seed_ameise(ameise_state)
    with ServerThread(create_zoho_app(zoho_state)) as zoho, ServerThread(create_ameise_app(ameise_state)) as ameise:
        yield zoho, zoho_state, ameise, ameise_state, ids


@pytest.fixture
def environment(rabbitmq_url, namespace, postgres_url, simulators):
    zoho, _, ameise, _, _ = simulators
    port = free_port()
    env = service_env(database_url=postgres_url, broker_url=rabbitmq_url, namespace=namespace, zoho_url=zoho.url,
                      ameise_url=ameise.url, PORT=str(port), WEB_CONCURRENCY="2",
                      SYNCBRIDGE_PUBLIC_URL=f"http://127.0.0.1:{port}")
    empty_database(postgres_url)
    return env, port


def wait_until_answers(url: str) -> None:
    """Wait until ``url`` answers 200 (the process has started and is ready)."""
    def answers():
        try:
            return requests.get(url, timeout=2).status_code == 200
        except (requests.ConnectionError, requests.Timeout):   # not listening yet, or still starting up
            return False
    wait_for(answers, timeout=30, interval=0.2, what=url)




def stop(process: subprocess.Popen, timeout: float = 20) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(timeout=timeout)


def test_procfile_processes_sync_a_new_and_an_existing_customer(environment, simulators, tmp_path):
    env, port = environment
    zoho, zoho_state, _, ameise_state, ids = simulators
    lines = procfile()
    assert set(lines) >= {"release", "web", "worker-crm-to-ameise"}

    release = subprocess.run(["bash", "-c", lines["release"]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert release.returncode == 0, release.stderr
    connect = subprocess.run(["syncbridge", "connect", "ameise", "--auto-consent"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert connect.returncode == 0 and "sync active" in connect.stdout, connect.stderr

    web = start(lines["web"], env, tmp_path / "web.log")
    worker = start(lines["worker-crm-to-ameise"], env, tmp_path / "worker.log")
    try:
        receiver = f"http://127.0.0.1:{port}"
        wait_until_answers(f"{receiver}/readyz")
        for module in ("Contacts", "Accounts", "Deals"):
            zoho_state.add_webhook(module, f"{receiver}/webhooks/zoho/{module}", style="form",
                                   token=env.get("SYNCBRIDGE_ZOHO_WEBHOOK_TOKEN", "dev-zoho-webhook-token"))

        zoho_state.user_update("Contacts", ids["Erika Mustermann"], {"Mobile": "+49 170 1111111"})
        jana = zoho_state.user_create("Contacts", {"First_Name": "Jana", "Last_Name": "Prozess"})

        wait_for(lambda: contact(ameise_state.customers["5001234567"], "mobil") == "+49 170 1111111", what="update")
        number = wait_for(lambda: zoho_state.get("Contacts", jana).get("Kundennummer"), what="write-back")
        assert person(ameise_state.customers[number])["Nachname"] == "Prozess"
        assert ameise_state.creates["customers"] == 1
    finally:
        worker_exit = stop(worker)
        web_exit = stop(web)
    web_log = (tmp_path / "web.log").read_text()
    worker_log = (tmp_path / "worker.log").read_text()
    assert worker_exit == 0, worker_log
    assert web_exit == 0, web_log
    assert "finishing in-flight work" in worker_log
    assert "POST /webhooks/zoho/Contacts" in web_log          # the access log is on ...
    assert "dev-zoho-webhook-token" not in web_log             # ... and never shows the token


def test_procfile_processes_carry_an_uploaded_delivery_into_the_crm(environment, simulators, tmp_path):
    from syncbridge.dailyup.generate import write_delivery

    env, port = environment
    env = {**env, "SYNCBRIDGE_DAILYUP_DIR": str(tmp_path / "dailyup"), "SYNCBRIDGE_DAILYUP_POLL_SECONDS": "0.5",
           "SYNCBRIDGE_DAILYUP_BATCH_WAIT": "0.3"}
    _, zoho_state, _, _, _ = simulators
    lines = procfile()
    assert set(lines) >= {"worker-dailyup", "worker-ameise-to-crm"}
    release = subprocess.run(["bash", "-c", lines["release"]], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=60)
    assert release.returncode == 0, release.stderr
    delivery = write_delivery(tmp_path, customers=60)

    processes = {name: start(lines[name], env, tmp_path / f"{name}.log")
                 for name in ("web", "worker-dailyup", "worker-ameise-to-crm")}
    try:
        receiver = f"http://127.0.0.1:{port}"
        wait_until_answers(f"{receiver}/healthz")
        answer = requests.post(f"{receiver}/dailyup/deliveries", headers={"X-Upload-Token": "dev-dailyup-upload-token"},
                               files={"file": (delivery.name, delivery.read_bytes())}, timeout=10)
        assert answer.status_code == 202, answer.text

        def customers_in_zoho():
            return sum(1 for m in ("Contacts", "Accounts") for r in zoho_state.records(m) if r.get("Kundennummer"))
        wait_for(lambda: customers_in_zoho() >= 60, timeout=60, interval=0.3, what="the delivery in Zoho")
        status = requests.get(f"{receiver}/dailyup/imports/latest", headers={"X-Admin-Token": "dev-admin-token"},
                              timeout=5).json()
        assert status["state"] == "published" and status["deltas"]["customer.created"] == 60
    finally:
        exits = {name: stop(process) for name, process in processes.items()}
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in processes}
    assert exits == dict.fromkeys(processes, 0), logs
    assert "DailyUp_100200_20261102.zip: published" in logs["worker-dailyup"]


def test_a_worker_killed_mid_create_leaves_no_duplicate(environment, simulators, tmp_path, namespace, rabbitmq_url):
    from datetime import datetime

    from contracts.events import CrmRecordChangedSchema
    from producers.publisher import Publisher
    from producers.topology import build_topology
    from syncbridge.messages import CrmRecordChanged, crm_record_changed_key

    env, _ = environment
    env = {**env, "SYNCBRIDGE_RECORD_LEASE": "2"}
    _, zoho_state, _, ameise_state, _ = simulators
    lines = procfile()
    for command in (lines["release"], "syncbridge connect ameise --auto-consent"):
        done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    record_id = zoho_state.seed("Contacts", {"First_Name": "Kill", "Last_Name": "Neun", "Email": "kill9@example.de"})
    creates_before = ameise_state.creates["customers"]
    first = start(lines["worker-crm-to-ameise"], env, tmp_path / "first.log")
    # Once its preflight check has passed (the check reads kunden/_search too), Ameise takes the
    # create but answers only after 3 s: the worker is killed while it waits.
    wait_for(lambda: "worker crm-to-ameise consuming from" in (tmp_path / "first.log").read_text(), timeout=30,
             what="the first worker consuming")
    ameise_state.add_fault(None, count=1, path_prefix="kunden", delay=3)
    publisher = Publisher(rabbitmq_url, build_topology(namespace))
    body = CrmRecordChangedSchema().dump(CrmRecordChanged(
        event_id="kill-9", source="zoho-workflow", module="Contacts", record_id=record_id,
        received_at=datetime.now(UTC)))
    publisher.publish(publisher.topology.events, crm_record_changed_key("Contacts"), body, message_id="kill-9")
    publisher.close()
    # The fault is taken when the create arrives; Ameise then waits before it creates and answers.
    wait_for(lambda: not ameise_state.faults, timeout=20, interval=0.02, what="the create sent")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    wait_for(lambda: ameise_state.creates["customers"] == creates_before + 1, timeout=10, what="Ameise took the create")

    second = start(lines["worker-crm-to-ameise"], env, tmp_path / "second.log")
    try:
        number = wait_for(lambda: zoho_state.get("Contacts", record_id).get("Kundennummer"), timeout=60,
                          what="the redelivered event linked")
    finally:
        assert stop(second) == 0
    log = (tmp_path / "second.log").read_text()
    print(f"\nSIGKILL: sent 1, Ameise creates {ameise_state.creates['customers'] - creates_before}, "
          f"linked to {number}")
    assert ameise_state.creates["customers"] == creates_before + 1, log
    assert person(ameise_state.customers[number])["Nachname"] == "Neun"
    assert "not creating again" in log
