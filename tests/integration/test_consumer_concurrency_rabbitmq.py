"""Many records in flight on the real RabbitMQ and PostgreSQL: a stop loses nothing, two workers share the lease.

Each consumer has its own connection to the broker and its own SQL store (its own
engine and connections), as two worker processes have.
"""
from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest

from consumers.crm_to_ameise import CrmToAmeiseConsumer
from contracts.events import CrmRecordChangedSchema
from producers.transport import rabbitmq_connection
from simulators.fakes.ameise import InMemoryAmeise
from simulators.fakes.store import MemoryStore
from simulators.fakes.zoho import InMemoryZoho
from syncbridge.adapters.db.sql import SqlStore
from syncbridge.handlers import SyncDependencies, SyncResult, sync_crm_record_to_ameise
from syncbridge.mapping import load_mapping
from syncbridge.messages import CrmRecordChanged, crm_record_changed_key
from tests.support.databases import emptied_engine
from tests.support.waiting import wait_for

pytestmark = pytest.mark.rabbitmq


def publish(publisher, topology, record_id: str) -> str:
    body = CrmRecordChangedSchema().dump(CrmRecordChanged(
        event_id=str(uuid.uuid4()), source="zoho-workflow", module="Contacts", record_id=record_id,
        received_at=datetime.now(UTC)))
    publisher.publish(topology.events, crm_record_changed_key("Contacts"), body, message_id=body["event_id"])
    return body["event_id"]


def in_queue(rabbitmq_url, topology) -> int:
    from kombu import Connection

    with Connection(rabbitmq_url) as connection:
        return topology.crm_to_ameise(connection.default_channel).queue_declare(passive=True).message_count


def test_a_stop_finishes_and_acks_what_is_in_flight_and_gives_back_what_did_not_start(rabbitmq_url, publisher,
                                                                                      topology):
    gate = threading.Event()
    started: list[str] = []

    def handle(command):
        started.append(command.record_id)
        assert gate.wait(timeout=20)
        return SyncResult("updated", "customer", command.module, command.record_id, "5001234567")

    for n in range(6):
        publish(publisher, topology, str(3001 + n))
    store = MemoryStore()
    consumer = CrmToAmeiseConsumer(rabbitmq_connection(rabbitmq_url, heartbeat=30), topology, handle, publisher,
                                   store, prefetch_count=10, concurrency=2)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    wait_for(lambda: len(started) == 2, what="two records in flight")
    consumer.should_stop = True
    gate.set()
    thread.join(timeout=30)

    assert not thread.is_alive()
    assert len(started) == 2                                         # nothing new started once stopping
    assert {entry.zoho_id for entry in store.activities()} == set(started)
    # The two finished were acknowledged before the consumer left; the four others are back in the queue.
    wait_for(lambda: in_queue(rabbitmq_url, topology) == 4, what="the four not started back in the queue")


def test_two_workers_with_many_in_flight_create_each_record_once(rabbitmq_url, publisher, topology,
                                                                               migrated_postgres_url):
    zoho, ameise = InMemoryZoho(), InMemoryAmeise()
    record_ids = [zoho.state.seed("Contacts", {"First_Name": "Lea", "Last_Name": f"Zwei{n}",
                                               "Email": f"zwei{n}@example.de"}) for n in range(12)]
    creates = ameise.create_customer

    def slow_create(data):
        # Held until both workers have records in flight, so the two deliveries of a record could meet.
        assert wait_for(lambda: len(busy) == 2, timeout=20)
        return creates(data)

    ameise.create_customer = slow_create
    busy: set[int] = set()
    emptied_engine(migrated_postgres_url).dispose()
    stores = [SqlStore.from_url(migrated_postgres_url) for _ in range(2)]
    consumers = []
    for n, store in enumerate(stores):
        deps = SyncDependencies(crm=zoho, ameise=ameise, store=store, mapping=load_mapping(),
                                module_entities={"Contacts": "person"}, default_vermittler="A1B2C3",
                                coalesce_margin=0.0)

        def handle(command, deps=deps, n=n):
            busy.add(n)
            return sync_crm_record_to_ameise(command, deps)

        consumers.append(CrmToAmeiseConsumer(rabbitmq_connection(rabbitmq_url, heartbeat=30), topology, handle,
                                             publisher, store, prefetch_count=4, concurrency=4))
    for record_id in record_ids:           # every record twice, one right behind the other
        for _ in range(2):
            publish(publisher, topology, record_id)
    threads = [threading.Thread(target=consumer.run, daemon=True) for consumer in consumers]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: all(zoho.state.get("Contacts", r).get("Kundennummer") for r in record_ids), timeout=60,
                 what="every record in Ameise")
        wait_for(lambda: in_queue(rabbitmq_url, topology) == 0 and all(c.inflight.busy == 0 for c in consumers),
                 what="every event handled")
    finally:
        for consumer in consumers:
            consumer.should_stop = True
        for thread in threads:
            thread.join(timeout=30)
        for store in stores:
            store.engine.dispose()
    assert busy == {0, 1}
    assert ameise.state.creates["customers"] == len(record_ids)          # the lease: one create per record
    numbers = {zoho.state.get("Contacts", r)["Kundennummer"] for r in record_ids}
    assert len(numbers) == len(record_ids)


def test_acks_finishing_out_of_order_leave_nothing_unacknowledged_and_none_before_its_handler(rabbitmq_url, publisher,
                                                                                             topology):
    first = threading.Event()
    handled: list[str] = []
    unsettled: list[int] = []

    def handle(command):
        if command.record_id == "4001":
            assert first.wait(timeout=20)       # the oldest delivery finishes last
        handled.append(command.record_id)
        return SyncResult("updated", "customer", command.module, command.record_id, "5001234567")

    record_ids = [str(4001 + n) for n in range(30)]
    for record_id in record_ids:
        publish(publisher, topology, record_id)
    consumer = CrmToAmeiseConsumer(rabbitmq_connection(rabbitmq_url, heartbeat=30), topology, handle, publisher,
                                   MemoryStore(), prefetch_count=10, concurrency=4)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(handled) == 29, what="every record but the oldest")
        # Acked by now: the 29 after it, and no cumulative ack took the oldest along: it alone is unsettled.
        wait_for(lambda: sum(map(len, list(consumer.inflight._unsettled.values()))) == 1, what="the others acked")
        [deliveries] = consumer.inflight._unsettled.values()
        unsettled = list(deliveries)
        first.set()
        wait_for(lambda: consumer.inflight.busy == 0, what="the oldest")
    finally:
        first.set()
        consumer.should_stop = True
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert unsettled == [1] and sorted(handled) == record_ids        # the channel's first delivery
    # The connection is closed: any delivery left unacknowledged would be back in the queue.
    wait_for(lambda: in_queue(rabbitmq_url, topology) == 0, what="an empty queue")
