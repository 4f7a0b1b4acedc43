"""Publisher against a real RabbitMQ: topology, confirms, persistence, reconnects, timeouts."""
from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime

import pytest
from amqp.exceptions import PreconditionFailed
from kombu import Connection, Queue

from producers.crm_events import publish_crm_record_changed, publish_crm_records_changed
from producers.publisher import BrokerUnavailable, Publisher
from producers.topology import Topology, build_topology
from syncbridge.messages import CHANGES, ENTITIES, CrmRecordChanged, ameise_record_changed_key
from tests.support.net import TcpProxy, close_connections_named, consume_all

pytestmark = pytest.mark.rabbitmq

UNREACHABLE = "amqp://guest:guest@127.0.0.1:1//"




@pytest.fixture
def topology(namespace) -> Topology:
    return build_topology(namespace, delivery_limit=7)


@pytest.fixture
def publisher(rabbitmq_url, topology):
    publisher = Publisher(rabbitmq_url, topology, confirm_timeout=2, connect_timeout=2)
    yield publisher
    publisher.close()


def test_connect_declares_quorum_queues_with_dead_lettering(rabbitmq_url, publisher, topology):
    publisher.ping()  # connects and declares

    with Connection(rabbitmq_url) as conn:
        channel = conn.channel()
        for exchange in topology.exchanges:
            channel.exchange_declare(exchange.name, "topic", passive=True)
        for queue in topology.queues:
            channel.queue_declare(queue.name, passive=True)
        # Declaring with the same arguments is accepted: the queue has exactly these.
        topology.crm_to_ameise(channel).declare()

    # Any other argument is refused by RabbitMQ (406 PRECONDITION_FAILED), which proves
    # the queue type, dead-letter exchange and delivery limit the publisher declared.
    for different in ({"x-queue-type": "classic"}, {"x-dead-letter-exchange": "elsewhere"}, {"x-delivery-limit": 8}):
        arguments = {**topology.crm_to_ameise.queue_arguments, **different}
        with Connection(rabbitmq_url) as conn:
            with pytest.raises(PreconditionFailed):
                conn.channel().queue_declare(topology.crm_to_ameise.name, durable=True, arguments=arguments)


def test_every_delta_the_contract_allows_reaches_the_return_queue_through_the_deltas_exchange(rabbitmq_url, publisher,
                                                                                           topology):
    keys = [ameise_record_changed_key(entity, change) for entity in ENTITIES for change in CHANGES]
    assert topology.deltas.type == "direct" and len(keys) == 6

    sent = publisher.publish_many(topology.deltas, [(key, {"n": n}, f"delta-{n}") for n, key in enumerate(keys)])

    assert sent == len(keys)
    messages = consume_all(rabbitmq_url, topology.ameise_to_crm, expect=len(keys))
    assert sorted(m.payload["n"] for m in messages) == list(range(len(keys)))
    assert {m.delivery_info["routing_key"] for m in messages} == set(keys)   # retries route by it through events
    # Any other key is not bound there: unroutable, so not confirmed as sent.
    with pytest.raises(BrokerUnavailable):
        publisher.publish(topology.deltas, "crm.contacts.changed", {"n": 0}, message_id="not-a-delta")


def _changed(module: str, n: int) -> CrmRecordChanged:
    return CrmRecordChanged(event_id=f"evt-{module}-{n}", source="zoho-workflow", module=module,
                            record_id=f"41508680000003760{n:02d}", received_at=datetime.now(UTC))


def test_events_of_synced_modules_go_through_the_direct_exchange_and_others_through_events(rabbitmq_url, publisher,
                                                                                           topology):
    assert topology.crm_changes.type == "direct"
    assert topology.crm_change_keys == {"crm.contacts.changed", "crm.accounts.changed", "crm.deals.changed"}

    publish_crm_record_changed(publisher, topology, _changed("Contacts", 1))      # a synced module
    publish_crm_record_changed(publisher, topology, _changed("Leads", 2))         # not synced: the worker says so
    publish_crm_records_changed(publisher, topology, [_changed("Deals", 3), _changed("Accounts", 4)])
    publish_crm_records_changed(publisher, topology, [_changed("Deals", 5), _changed("Leads", 6)])   # mixed

    messages = consume_all(rabbitmq_url, topology.crm_to_ameise, expect=6)
    routes = {m.payload["event_id"]: (m.delivery_info["exchange"], m.delivery_info["routing_key"]) for m in messages}
    direct, events = topology.crm_changes.name, topology.events.name
    assert routes == {
        "evt-Contacts-1": (direct, "crm.contacts.changed"),
        "evt-Leads-2": (events, "crm.leads.changed"),
        "evt-Deals-3": (direct, "crm.deals.changed"),
        "evt-Accounts-4": (direct, "crm.accounts.changed"),
        "evt-Deals-5": (events, "crm.deals.changed"),
        "evt-Leads-6": (events, "crm.leads.changed"),
    }
    # The direct exchange routes only the synced modules' keys: any other is unroutable there, never lost silently.
    with pytest.raises(BrokerUnavailable):
        publisher.publish(topology.crm_changes, "crm.leads.changed", {"n": 0}, message_id="not-bound")


def test_publish_is_confirmed_persistent_and_consumable(rabbitmq_url, publisher, topology):
    publisher.publish(topology.events, "crm.contacts.changed", {"record_id": "4150868000000376008"},
                      message_id="evt-1", headers={"x-origin": "test"})

    [message] = consume_all(rabbitmq_url, topology.crm_to_ameise, expect=1)
    assert message.payload == {"record_id": "4150868000000376008"}
    assert message.content_type == "application/json"
    assert message.properties["delivery_mode"] == 2
    assert message.properties["message_id"] == "evt-1"
    assert message.headers["x-origin"] == "test"
    assert message.delivery_info["routing_key"] == "crm.contacts.changed"


def test_nacked_publish_raises(rabbitmq_url, namespace):
    # A full queue that rejects new messages makes RabbitMQ answer basic.nack: without
    # publisher confirms this publish would "succeed" and the message would be lost.
    # (A classic queue: a quorum queue enforces its length limit asynchronously.)
    base = build_topology(namespace)
    full = Queue(
        base.crm_to_ameise.name,
        exchange=base.events,
        routing_key="crm.#",
        durable=True,
        queue_arguments={"x-queue-type": "classic", "x-max-length": 1, "x-overflow": "reject-publish"},
    )
    topology = dataclasses.replace(base, crm_to_ameise=full)
    publisher = Publisher(rabbitmq_url, topology, confirm_timeout=2)
    try:
        publisher.publish(topology.events, "crm.contacts.changed", {"n": 1}, message_id="1")
        with pytest.raises(BrokerUnavailable, match="nack"):
            publisher.publish(topology.events, "crm.contacts.changed", {"n": 2}, message_id="2")
    finally:
        publisher.close()
    assert [m.payload for m in consume_all(rabbitmq_url, full, expect=2, timeout=1)] == [{"n": 1}]


def test_reconnects_after_the_broker_closed_the_connection(rabbitmq_url, publisher, topology):
    publisher.publish(topology.events, "crm.contacts.changed", {"n": 1}, message_id="1")
    close_connections_named(topology.namespace)

    publisher.publish(topology.events, "crm.contacts.changed", {"n": 2}, message_id="2")
    publisher.ping()
    assert [m.payload["n"] for m in consume_all(rabbitmq_url, topology.crm_to_ameise, expect=2)] == [1, 2]


def test_redeclares_a_queue_deleted_since_connecting(rabbitmq_url, publisher, topology):
    publisher.publish(topology.events, "crm.contacts.changed", {"n": 1}, message_id="1")
    with Connection(rabbitmq_url) as conn:
        conn.channel().queue_delete(topology.crm_to_ameise.name)

    # Unroutable now: the broker returns the message, the publisher reconnects, declares, retries.
    publisher.publish(topology.events, "crm.contacts.changed", {"n": 2}, message_id="2")
    assert [m.payload["n"] for m in consume_all(rabbitmq_url, topology.crm_to_ameise, expect=2, timeout=1)] == [2]


def test_unroutable_key_is_not_reported_as_published(publisher, topology):
    with pytest.raises(BrokerUnavailable, match="NO_ROUTE"):
        publisher.publish(topology.events, "nobody.listens", {"n": 1}, message_id="1")


def test_reconnects_after_the_connection_died(rabbitmq_url, topology):
    with TcpProxy(rabbitmq_url) as proxy:
        publisher = Publisher(proxy.url, topology, confirm_timeout=2, connect_timeout=2)
        try:
            publisher.publish(topology.events, "crm.contacts.changed", {"n": 1}, message_id="1")
            proxy.cut()
            publisher.publish(topology.events, "crm.contacts.changed", {"n": 2}, message_id="2")
        finally:
            publisher.close()
    assert [m.payload["n"] for m in consume_all(rabbitmq_url, topology.crm_to_ameise, expect=2)] == [1, 2]


@pytest.mark.parametrize("confirm_mode_selected", [True, False], ids=["awaiting-ack", "awaiting-select-ok"])
def test_missing_confirm_times_out_then_recovers(rabbitmq_url, topology, confirm_mode_selected):
    with TcpProxy(rabbitmq_url) as proxy:
        publisher = Publisher(proxy.url, topology, confirm_timeout=0.5, connect_timeout=2)
        try:
            publisher.ping()
            if confirm_mode_selected:
                publisher.publish(topology.events, "crm.contacts.changed", {"n": 0}, message_id="0")
            proxy.freeze()  # the broker's answers no longer arrive
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable, match="in time"):
                publisher.publish(topology.events, "crm.contacts.changed", {"n": 1}, message_id="1")
            assert time.monotonic() - started < 1.5
            proxy.thaw()
            publisher.publish(topology.events, "crm.contacts.changed", {"n": 2}, message_id="2")
        finally:
            publisher.close()
    # The timed-out message may or may not have reached the queue (at-least-once); the next did.
    payloads = [m.payload["n"] for m in consume_all(rabbitmq_url, topology.crm_to_ameise, expect=3, timeout=1)]
    assert payloads[-1] == 2


def test_unreachable_broker_raises_quickly(topology):
    publisher = Publisher(UNREACHABLE, topology, connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        publisher.publish(topology.events, "crm.contacts.changed", {"n": 1}, message_id="1")
    with pytest.raises(BrokerUnavailable):
        publisher.ping()
    assert time.monotonic() - started < 2


# ---------------------------------------------------------------------------- helpers


