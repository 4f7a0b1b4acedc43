"""The receiver over real HTTP, publishing to a real RabbitMQ (in-process server and gunicorn)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from kombu import Connection

from contracts.events import CrmRecordChangedSchema
from producers.publisher import Publisher
from producers.topology import build_topology
from simulators.server import ServerThread
from syncbridge.config import Settings
from webhooks import create_app

pytestmark = pytest.mark.rabbitmq

REPO = Path(__file__).resolve().parents[2]
TOKEN = "it-webhook-token"
RECORD_ID = "4150868000000376008"


def take_events(url: str, topology, *, expect: int, timeout: float = 3.0) -> list:
    """Take ``expect`` messages from crm-to-ameise and load them with their contract."""
    schema = CrmRecordChangedSchema()
    events = []
    deadline = time.monotonic() + timeout
    with Connection(url) as conn:
        simple = conn.SimpleQueue(topology.crm_to_ameise, accept=["application/json"])
        while len(events) < expect and time.monotonic() < deadline:
            try:
                message = simple.get(block=True, timeout=0.2)
            except simple.Empty:
                continue
            message.ack()
            assert message.properties["delivery_mode"] == 2
            event = schema.load(message.payload)
            assert message.properties["message_id"] == event.event_id
            events.append(event)
        simple.close()
    return events


def test_post_is_queued_with_its_contract(rabbitmq_url, namespace):
    settings = Settings.from_env({}, namespace=namespace, broker_url=rabbitmq_url, zoho_webhook_token=TOKEN)
    topology = build_topology(namespace, settings.delivery_limit)
    publisher = Publisher(rabbitmq_url, topology, confirm_timeout=settings.publish_timeout)
    app = create_app(settings, publisher=publisher, checks={"broker": publisher.ping, "database": lambda: None})
    try:
        with ServerThread(app) as server:
            response = requests.post(f"{server.url}/webhooks/zoho/Contacts", params={"token": TOKEN},
                                     data={"id": RECORD_ID, "operation": "edit"}, timeout=10)
            assert response.status_code == 202, response.text
            event_id = response.json()["event_id"]

            response = requests.post(f"{server.url}/webhooks/zoho/Deals", json={"id": "5725767000003000064"},
                                     headers={"X-Webhook-Token": TOKEN}, timeout=10)
            assert response.status_code == 202, response.text

            ready = requests.get(f"{server.url}/readyz", timeout=10)
            assert ready.status_code == 200
            assert ready.json() == {"status": "ready", "checks": {"broker": "ok", "database": "ok"}}
    finally:
        publisher.close()

    first, second = take_events(rabbitmq_url, topology, expect=2)
    assert (first.event_id, first.source, first.module, first.record_id, first.operation) == (
        event_id, "zoho-workflow", "Contacts", RECORD_ID, "edit")
    assert (second.module, second.record_id) == ("Deals", "5725767000003000064")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gunicorn_serves_the_app_factory(rabbitmq_url, namespace):
    port = free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SYNCBRIDGE_BROKER_URL": rabbitmq_url,
        "SYNCBRIDGE_NAMESPACE": namespace,
        "SYNCBRIDGE_ZOHO_WEBHOOK_TOKEN": TOKEN,
    }
    process = subprocess.Popen(
        [str(gunicorn), "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4",
         "--graceful-timeout", "2", "syncbridge.bootstrap:web_app()"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60   # a loaded machine loads the app slowly
        while True:
            assert process.poll() is None, f"gunicorn exited: {process.stdout.read()}"
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):   # not listening yet, or still loading the app
                pass
            assert time.monotonic() < deadline, "gunicorn did not answer /healthz in time"
            time.sleep(0.1)

        response = requests.post(f"{base}/webhooks/zoho/Accounts?id={RECORD_ID}&token={TOKEN}", timeout=10)
        assert response.status_code == 202, response.text
        event_id = response.json()["event_id"]
        assert requests.post(f"{base}/webhooks/zoho/Accounts?id={RECORD_ID}&token=wrong", timeout=10).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()

    [event] = take_events(rabbitmq_url, build_topology(namespace), expect=1)
    assert (event.event_id, event.source, event.module, event.record_id) == (
        event_id, "zoho-workflow", "Accounts", RECORD_ID)
    assert event_id in output  # the accepted-event log line
    assert TOKEN not in output


class CountingPublisher(Publisher):
    """A RabbitMQ publisher counting single publishes and batches."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.single, self.batches = 0, []

    def publish(self, *args, **kwargs):
        self.single += 1
        return super().publish(*args, **kwargs)

    def publish_many(self, exchange, messages, **kwargs):
        messages = list(messages)
        self.batches.append((len(messages), kwargs.get("window")))
        return super().publish_many(exchange, messages, **kwargs)


def test_notification_with_9500_ids_is_one_confirmed_batch(rabbitmq_url, namespace):
    settings = Settings.from_env({}, namespace=namespace, broker_url=rabbitmq_url, zoho_notify_token=TOKEN,
                                 max_body_bytes="400000")
    topology = build_topology(namespace, settings.delivery_limit)
    publisher = CountingPublisher(rabbitmq_url, topology, confirm_timeout=30)
    app = create_app(settings, publisher=publisher, checks={})
    ids = [str(5_000_000_000 + n) for n in range(9_500)]
    try:
        response = app.test_client().post("/webhooks/zoho/notify", json={
            "ids": ids, "module": "Contacts", "operation": "update", "token": TOKEN, "channel_id": "7"})
        assert response.status_code == 202, response.get_json()
        # One batch in one window: the broker's acks are awaited once, not 9,500 times.
        assert publisher.batches == [(9_500, 9_500)] and publisher.single == 0
    finally:
        publisher.close()
    events = take_events(rabbitmq_url, topology, expect=9_500, timeout=60)
    assert [event.record_id for event in events] == ids
    assert [event.event_id for event in events] == response.get_json()["event_ids"]
