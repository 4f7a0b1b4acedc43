"""/metrics: Prometheus' text format behind a bearer token; a webhook received is counted and scraped."""
from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncbridge.bootstrap import metrics_exposition
from tests.support.dashboard import Dashboard
from tests.support.webhooks import WEBHOOK_TOKEN, make_settings
from webhooks import create_app

TOKEN = "metrics-token-for-tests"


@pytest.fixture
def board(database_url, store, monkeypatch) -> Dashboard:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    return Dashboard.build(database_url, store=store, metrics_token=TOKEN)


def scrape(board, token: str = TOKEN) -> dict[tuple[str, tuple], float]:
    answer = board.client().get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(answer.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer "])
def test_metrics_need_the_bearer_token(board, header):
    answer = board.client().get("/metrics", headers={"Authorization": header} if header else {})
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"syncbridge" not in answer.data


def test_metrics_need_no_sign_in_and_name_every_family(board):
    answer = board.client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})   # no session
    families = {f.name: f.type for f in text_string_to_metric_families(answer.get_data(as_text=True))}
    assert families == {
        "syncbridge_events_received": "counter", "syncbridge_events_published": "counter",
        "syncbridge_webhooks_failed": "counter", "syncbridge_records_synced": "counter",
        "syncbridge_syncs_failed": "counter", "syncbridge_dead_lettered": "counter",
        "syncbridge_webhook_seconds": "histogram", "syncbridge_sync_seconds": "histogram",
        "syncbridge_event_to_sync_seconds": "histogram", "syncbridge_queue_depth": "gauge",
        "syncbridge_zoho_credits": "counter",
    }


def test_a_webhook_is_counted_received_and_published_and_scraped(board, namespace, publisher):
    receiver = create_app(make_settings(namespace), publisher=publisher,
                          checks={"broker": publisher.ping, "database": lambda: None}).test_client()
    labels = (("module", "Contacts"), ("source", "zoho-workflow"))
    before = scrape(board)
    answer = receiver.post("/webhooks/zoho/Contacts", headers={"X-Webhook-Token": WEBHOOK_TOKEN},
                           data={"id": "4150868000000376008", "operation": "update"})
    assert answer.status_code == 202, answer.get_json()
    after = scrape(board)
    received = ("syncbridge_events_received_total", labels)
    published = ("syncbridge_events_published_total", (("source", "zoho-workflow"),))
    timed = ("syncbridge_webhook_seconds_count", (("source", "zoho-workflow"),))
    assert after[received] - before.get(received, 0) == 1
    assert after[published] - before.get(published, 0) == 1
    assert after[timed] - before.get(timed, 0) == 1


def test_the_queue_depths_are_read_at_each_scrape(database_url, store, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    board = Dashboard.build(database_url, store=store, metrics_token=TOKEN)
    depths = iter([{"crm-to-ameise": 3, "dead-letters": None}, {"crm-to-ameise": 5}])
    board.parts.overview_sources.queue_depths = lambda: next(depths)
    board.parts.metrics = lambda: metrics_exposition(board.parts.overview_sources.queue_depths)
    first = scrape(board)
    assert first[("syncbridge_queue_depth", (("queue", "crm-to-ameise"),))] == 3
    assert ("syncbridge_queue_depth", (("queue", "dead-letters"),)) not in first   # unknown: left out, not 0
    assert scrape(board)[("syncbridge_queue_depth", (("queue", "crm-to-ameise"),))] == 5


def test_a_broker_that_is_away_leaves_the_depths_out_not_the_scrape(database_url, store, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    board = Dashboard.build(database_url, store=store, metrics_token=TOKEN)
    def away():
        raise ConnectionRefusedError("no broker")

    board.parts.metrics = lambda: metrics_exposition(away)
    assert not [key for key in scrape(board) if key[0] == "syncbridge_queue_depth"]


def test_a_workers_counts_with_the_same_labels_add_up_in_one_series(board):
    from datetime import UTC, datetime

    from syncbridge import metrics

    synced = ("syncbridge_records_synced_total", (("action", "created"), ("direction", "crm_to_ameise")))
    took = ("syncbridge_sync_seconds_count", (("direction", "crm_to_ameise"),))
    age = ("syncbridge_event_to_sync_seconds_count", (("direction", "crm_to_ameise"),))
    credits = ("syncbridge_zoho_credits_total", (("call", "get_record"), ("purpose", "sync")))
    before = scrape(board)
    for _ in range(3):
        with metrics.timed(metrics.SYNC_SECONDS, "crm_to_ameise"):
            metrics.synced("crm_to_ameise", "created", received_at=datetime.now(UTC))
        metrics.zoho_credits("get_record", "sync", 2)
    metrics.synced("crm_to_ameise", "created")
    after = scrape(board)

    assert {series: after[series] - before.get(series, 0) for series in (synced, took, age, credits)} == {
        synced: 4, took: 3, age: 3, credits: 6}
