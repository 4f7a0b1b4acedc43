"""Delayed retries on the real RabbitMQ: retry queues with a TTL that dead-letter back to the work queue."""
from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from kombu import Connection

from consumers.crm_to_ameise import CrmToAmeiseConsumer
from contracts.events import CrmRecordChangedSchema
from producers.topology import build_topology
from producers.transport import rabbitmq_connection
from simulators.fakes.store import MemoryStore
from syncbridge.adapters.zoho import ZohoUnavailable
from syncbridge.handlers import SyncResult
from syncbridge.messages import CrmRecordChanged, crm_record_changed_key
from tests.support.net import consume_all
from tests.support.waiting import wait_for

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def topology(namespace):
    return build_topology(namespace, retry_delays=(1, 2))


def event() -> dict:
    return CrmRecordChangedSchema().dump(CrmRecordChanged(
        event_id=str(uuid.uuid4()), source="zoho-workflow", module="Contacts", record_id="4150868000000376008",
        received_at=datetime.now(UTC)))


def run(consumer):
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    return thread


def test_retry_queues_are_quorum_queues_that_lead_back_to_the_events_exchange(rabbitmq_url, publisher, topology):
    publisher.ping()   # connects and declares
    with Connection(rabbitmq_url) as connection:
        channel = connection.channel()
        for delay, exchange, queue in topology.retries:
            declared = queue(channel).queue_declare(passive=True)
            assert declared.queue == f"{topology.namespace}.retry.{delay:g}s"
    args = dict(topology.retries[0][2].queue_arguments)
    assert args["x-queue-type"] == "quorum" and args["x-message-ttl"] == 1000
    assert args["x-dead-letter-exchange"] == topology.events.name
    assert args["x-dead-letter-strategy"] == "at-least-once"


def test_a_message_that_met_an_outage_comes_back_after_its_delay(rabbitmq_url, publisher, topology):
    calls: list[float] = []

    def handle(command):
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ZohoUnavailable("Service Unavailable", status=503)
        return SyncResult("updated", "customer", command.module, command.record_id, "5001234567")

    store = MemoryStore()
    body = event()
    publisher.publish(topology.events, crm_record_changed_key("Contacts"), body, message_id=body["event_id"])
    consumer = CrmToAmeiseConsumer(rabbitmq_connection(rabbitmq_url, heartbeat=30), topology, handle, publisher, store)
    thread = run(consumer)
    try:
        wait_for(lambda: len(calls) >= 3, timeout=20, what="two retries")
    finally:
        consumer.should_stop = True
        thread.join(timeout=10)

    assert 1.0 <= calls[1] - calls[0] < 3.0      # the first delay
    assert 2.0 <= calls[2] - calls[1] < 4.0      # the second
    # Each delivery is an attempt of its own, numbered by the retries the message has had.
    assert [(e.action, e.attempt) for e in reversed(store.activities())] == [("retry", 1), ("retry", 2), ("updated", 3)]
    assert consume_all(rabbitmq_url, topology.dead_letters, expect=1, timeout=0.5) == []
    for _, _, queue in topology.retries:
        assert consume_all(rabbitmq_url, queue, expect=1, timeout=0.2) == []


def test_after_the_last_delay_the_message_is_dead_lettered_with_its_history(rabbitmq_url, publisher, topology):
    store = MemoryStore()
    outage = ZohoUnavailable("Too Many Requests", status=429)

    def handle(command):
        raise outage

    body = event()
    publisher.publish(topology.events, crm_record_changed_key("Contacts"), body, message_id=body["event_id"])
    consumer = CrmToAmeiseConsumer(rabbitmq_connection(rabbitmq_url, heartbeat=30), topology, handle, publisher, store)
    thread = run(consumer)
    try:
        wait_for(lambda: store.activities(action="dead_lettered"), timeout=20, what="the dead letter")
    finally:
        consumer.should_stop = True
        thread.join(timeout=10)

    [dead] = consume_all(rabbitmq_url, topology.dead_letters, expect=1)
    assert dead.payload == body and dead.properties["message_id"] == body["event_id"]
    assert dead.headers["x-error-kind"] == "unavailable" and dead.headers["x-retries"] == 2
    assert dead.headers["x-original-routing-key"] == "crm.contacts.changed"
    assert dead.headers["x-last-error"] == outage.describe()
