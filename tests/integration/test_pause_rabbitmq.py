"""A direction paused on the dashboard holds its worker on the real RabbitMQ: messages wait, none is dead-lettered."""
from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from consumers.crm_to_ameise import CrmToAmeiseConsumer
from contracts.events import CrmRecordChangedSchema
from producers.depths import queue_depths
from producers.transport import rabbitmq_connection
from simulators.fakes.store import MemoryStore
from syncbridge.adapters.db.operators import SqlOperatorStore
from syncbridge.bootstrap import direction_paused, run_unless_paused
from syncbridge.handlers import SyncResult
from syncbridge.handlers.overview import pause_direction, resume_direction
from syncbridge.messages import CrmRecordChanged, crm_record_changed_key
from tests.support.waiting import wait_for

pytestmark = pytest.mark.rabbitmq


def publish(publisher, topology, count: int) -> None:
    for _ in range(count):
        body = CrmRecordChangedSchema().dump(CrmRecordChanged(
            event_id=str(uuid.uuid4()), source="zoho-workflow", module="Contacts",
            record_id=str(uuid.uuid4().int)[:19], received_at=datetime.now(UTC)))
        publisher.publish(topology.events, crm_record_changed_key("Contacts"), body, message_id=body["event_id"])


def test_a_paused_direction_leaves_its_messages_in_the_queue_until_it_is_resumed(rabbitmq_url, publisher, topology,
                                                                                 store):
    handled: list[str] = []

    def handle(command):
        handled.append(command.record_id)
        return SyncResult("updated", "customer", command.module, command.record_id, "5001234567")

    operators = SqlOperatorStore(store.engine)
    consumer = CrmToAmeiseConsumer(rabbitmq_connection(rabbitmq_url, heartbeat=30), topology, handle, publisher,
                                   MemoryStore(), prefetch_count=10)
    running = threading.Event()
    consume = consumer.run

    def run():
        running.set()
        try:
            consume()
        finally:
            running.clear()

    consumer.run = run
    depths = lambda: queue_depths(lambda: rabbitmq_connection(rabbitmq_url), topology)  # noqa: E731
    paused = direction_paused(SimpleNamespace(store=store), "crm_to_ameise")
    stop = threading.Event()

    pause_direction(operators, "crm_to_ameise", by="operator", reason="Wartung")
    publisher.ping()
    publish(publisher, topology, 3)
    worker = threading.Thread(target=run_unless_paused, args=(consumer, "crm-to-ameise", paused, stop, 0.1),
                              daemon=True)
    worker.start()
    try:
        wait_for(lambda: depths()["crm-to-ameise"] == 3, what="three messages waiting")
        assert not running.is_set() and handled == []

        resume_direction(operators, "crm_to_ameise", by="operator")
        wait_for(lambda: len(handled) == 3, what="the three messages synced after the resume")

        pause_direction(operators, "crm_to_ameise", by="operator", reason="")
        wait_for(lambda: not running.is_set(), what="the worker leaving the broker")
        publish(publisher, topology, 2)
        wait_for(lambda: depths()["crm-to-ameise"] == 2, what="two messages waiting")
        assert len(handled) == 3 and depths()["dead-letters"] == 0

        resume_direction(operators, "crm_to_ameise", by="operator")
        wait_for(lambda: len(handled) == 5 and depths()["crm-to-ameise"] == 0, what="the two synced")
        assert depths()["dead-letters"] == 0
    finally:
        stop.set()
        worker.join(timeout=15)
    assert not worker.is_alive()
