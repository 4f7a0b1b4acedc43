"""Multiprocess metrics: the receiver's gunicorn workers count into one directory, the dashboard's /metrics adds them up."""
from __future__ import annotations

import re
import socket

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.dashboard import Dashboard
from tests.support.gunicorn import TOKEN, Web, drain

pytestmark = pytest.mark.rabbitmq
METRICS_TOKEN = "metrics-token-for-tests"


def test_webhooks_taken_by_two_gunicorn_workers_are_counted_together(rabbitmq_url, namespace, tmp_path,
                                                                      database_url, store, monkeypatch):
    shared = tmp_path / "prometheus"
    shared.mkdir()
    web = Web(rabbitmq_url, namespace, tmp_path / "web.log", WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(shared))
    try:
        web.wait_ready()
        for number in range(6):
            # A new connection each time, so both workers take some.
            answer = requests.post(f"{web.url}/webhooks/zoho/Contacts", headers={"X-Webhook-Token": TOKEN,
                                                                                  "Connection": "close"},
                                   data={"id": f"41508680000003760{number:02d}"}, timeout=10)
            assert answer.status_code == 202, answer.text
    finally:
        web.stop()
    assert len(drain(rabbitmq_url, namespace)) == 6
    # Named by host and pid: containers sharing the directory have pids of their own that may be equal.
    files = list(shared.glob("counter_*.db"))
    assert files and all(re.fullmatch(rf"counter_{re.escape(socket.gethostname())}-\d+\.db", f.name) for f in files)

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    board = Dashboard.build(database_url, store=store, metrics_token=METRICS_TOKEN, broker_url=rabbitmq_url,
                            namespace=namespace)
    answer = board.client().get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert answer.status_code == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(answer.get_data(as_text=True)) for s in family.samples}
    assert samples[("syncbridge_events_received_total", (("module", "Contacts"), ("source", "zoho-workflow")))] == 6
    assert samples[("syncbridge_events_published_total", (("source", "zoho-workflow"),))] == 6
    assert samples[("syncbridge_webhook_seconds_count", (("source", "zoho-workflow"),))] == 6
    # The queue depth comes from RabbitMQ at the scrape: drained, so nothing waits.
    assert samples[("syncbridge_queue_depth", (("queue", "crm-to-ameise"),))] == 0
