"""Zoho's concurrent-call limit kept by two crm-to-ameise worker processes together (the Procfile's command).

On PostgreSQL the processes share SYNCBRIDGE_ZOHO_SYNC_CONCURRENCY through advisory locks: the
simulated Zoho, limited to as many calls, never refuses one.  On SQLite each process keeps
its own limit, so two of them exceed Zoho's: the same load then meets 429s, which shows the
test can tell the two apart.
"""
from __future__ import annotations

import signal
import subprocess
from datetime import UTC, datetime

import pytest

from simulators.ameise import AmeiseState, create_ameise_app
from simulators.ameise import seed_demo as seed_ameise
from simulators.server import ServerThread
from simulators.zoho import ZohoState, create_zoho_app
from tests.support.databases import empty_database
from tests.support.processes import ROOT, procfile, service_env, start
from tests.support.waiting import wait_for

LIMIT = 4
RECORDS = 24


@pytest.fixture
def simulators():
    zoho_state, ameise_state = ZohoState(), AmeiseState()
    seed_ameise(ameise_state)
    with ServerThread(create_zoho_app(zoho_state)) as zoho, ServerThread(create_ameise_app(ameise_state)) as ameise:
        yield zoho, zoho_state, ameise, ameise_state


def publish_changes(rabbitmq_url: str, namespace: str, record_ids: list[str]) -> None:
    from contracts.events import CrmRecordChangedSchema
    from producers.publisher import Publisher
    from producers.topology import build_topology
    from syncbridge.messages import CrmRecordChanged, crm_record_changed_key

    publisher = Publisher(rabbitmq_url, build_topology(namespace))
    try:
        for record_id in record_ids:
            body = CrmRecordChangedSchema().dump(CrmRecordChanged(
                event_id=f"limit-{record_id}", source="zoho-workflow", module="Contacts", record_id=record_id,
                received_at=datetime.now(UTC)))
            publisher.publish(publisher.topology.events, crm_record_changed_key("Contacts"), body,
                              message_id=f"limit-{record_id}")
    finally:
        publisher.close()


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres", "sqlite"])
def test_two_worker_processes_keep_zohos_concurrency_limit_together(database, simulators, rabbitmq_url, namespace,
                                                                     request, tmp_path):
    zoho, zoho_state, ameise, ameise_state = simulators
    if database == "postgres":
        database_url = request.getfixturevalue("postgres_url")
        empty_database(database_url)
    else:
        database_url = f"sqlite:///{tmp_path / 'sync.db'}"
    env = service_env(database_url=database_url, broker_url=rabbitmq_url, namespace=namespace, zoho_url=zoho.url,
                      ameise_url=ameise.url, SYNCBRIDGE_ZOHO_SYNC_CONCURRENCY=str(LIMIT),
                      SYNCBRIDGE_SYNC_CONCURRENCY="8", SYNCBRIDGE_PREFETCH_COUNT="8")
    lines = procfile()
    for command in (lines["release"], "syncbridge connect ameise --auto-consent"):
        done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    record_ids = [zoho_state.seed("Contacts", {"First_Name": "Limit", "Last_Name": f"Grenze{i:02d}",
                                               "Email": f"grenze{i}@example.de"}) for i in range(RECORDS)]
    # Zoho allows LIMIT calls at once; each takes long enough that a worker's calls overlap.
    zoho_state.max_concurrent = LIMIT
    zoho_state.add_fault(None, count=10**9, path_prefix="/crm/", delay=0.25)

    logs = [tmp_path / f"worker-{n}.log" for n in (1, 2)]
    workers = [start(lines["worker-crm-to-ameise"], env, log) for log in logs]
    try:
        for log in logs:
            wait_for(lambda log=log: "worker crm-to-ameise consuming from" in log.read_text(), timeout=60,
                     what=f"{log.name} consuming")
        publish_changes(rabbitmq_url, namespace, record_ids)
        if database == "postgres":
            wait_for(lambda: all(zoho_state.get("Contacts", r).get("Kundennummer") for r in record_ids),
                     timeout=120, interval=0.2, what="every record synced and its number written back")
        else:
            wait_for(lambda: zoho_state.snapshot()["refused_calls"] > 0, timeout=120, interval=0.1,
                     what="Zoho refusing a call over its limit")
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        exits = [worker.wait(timeout=60) for worker in workers]
    texts = [log.read_text() for log in logs]
    snapshot = zoho_state.snapshot()
    print(f"\n{database}: Zoho calls {snapshot['api_calls']}, at most {snapshot['peak_in_flight']} in flight, "
          f"{snapshot['refused_calls']} refused (429); Ameise creates {ameise_state.creates['customers']}")
    assert exits == [0, 0], texts
    if database == "postgres":
        assert snapshot["peak_in_flight"] <= LIMIT and snapshot["refused_calls"] == 0, snapshot
        assert ameise_state.creates["customers"] == RECORDS
        assert all("created customer" in text for text in texts), texts   # both processes took a part
    else:
        assert snapshot["refused_calls"] > 0
