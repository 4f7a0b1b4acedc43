"""Publisher and the CRM event producer on kombu's in-process broker (memory://)."""
from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from kombu import Connection

from contracts.base import ContractError
from contracts.events import CrmRecordChangedSchema
from producers.crm_events import publish_crm_record_changed
from producers.publisher import BrokerUnavailable, Publisher
from syncbridge.messages import CrmRecordChanged

UNREACHABLE = "amqp://guest:guest@127.0.0.1:1//"


def drain(queue, accept=("application/json",)) -> list:
    """Take every message waiting in ``queue`` of the in-process broker (acked)."""
    messages = []
    with Connection("memory://") as conn:
        simple = conn.SimpleQueue(queue, accept=list(accept))
        while True:
            try:
                message = simple.get(block=False)
            except simple.Empty:
                break
            message.ack()
            messages.append(message)
    return messages


def make_event(**overrides) -> CrmRecordChanged:
    values = dict(
        event_id=str(uuid.uuid4()),
        source="zoho-workflow",
        module="Contacts",
        record_id="4150868000000376008",
        received_at=datetime.now(UTC),
        operation="update",
        modified_time="2024-06-11T12:00:00+02:00",
    )
    values.update(overrides)
    return CrmRecordChanged(**values)


def test_publish_dict_as_persistent_json(publisher, topology):
    publisher.publish(topology.events, "crm.contacts.changed", {"a": 1, "name": "Müller"},
                      message_id="m-1", headers={"x-origin": "test"})

    [message] = drain(topology.crm_to_ameise)
    assert message.content_type == "application/json"
    assert message.payload == {"a": 1, "name": "Müller"}
    assert json.loads(message.body) == {"a": 1, "name": "Müller"}
    assert message.properties["delivery_mode"] == 2
    assert message.properties["message_id"] == "m-1"
    assert message.headers == {"x-origin": "test"}
    assert message.delivery_info["routing_key"] == "crm.contacts.changed"


def test_publish_bytes_as_they_are(publisher, topology):
    raw = b'{"kept":   "exactly"}'
    publisher.publish(topology.events.name, "crm.deals.changed", raw, message_id="m-2")

    [message] = drain(topology.crm_to_ameise)
    assert message.body == raw


def test_publish_refuses_other_bodies_instead_of_pickling(publisher, topology):
    with pytest.raises(TypeError):
        publisher.publish(topology.events, "crm.contacts.changed", ["a", "list"], message_id="m-3")
    assert drain(topology.crm_to_ameise) == []


def test_message_for_an_unbound_key_is_not_queued(publisher, topology):
    publisher.publish(topology.events, "crm.contacts.changed", {"n": 1}, message_id="a")
    publisher.publish(topology.events, "other.thing", {"n": 2}, message_id="b")
    assert [m.payload["n"] for m in drain(topology.crm_to_ameise)] == [1]


def test_publish_after_close_reconnects(publisher, topology):
    publisher.publish(topology.events, "crm.contacts.changed", {"n": 1}, message_id="a")
    publisher.close()
    publisher.publish(topology.events, "crm.contacts.changed", {"n": 2}, message_id="b")
    publisher.ping()
    assert [m.payload["n"] for m in drain(topology.crm_to_ameise)] == [1, 2]


def test_threads_share_one_publisher(publisher, topology):
    def work(worker: int) -> None:
        for n in range(25):
            publisher.publish(topology.events, "crm.contacts.changed", {"w": worker, "n": n},
                              message_id=f"{worker}-{n}")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    ids = sorted(m.properties["message_id"] for m in drain(topology.crm_to_ameise))
    assert ids == sorted(f"{w}-{n}" for w in range(8) for n in range(25))


def test_constructing_does_no_io(topology, monkeypatch):
    connects = []

    def connect(sock, address):
        connects.append(address)
        raise ConnectionRefusedError(f"the constructor must not connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect)
    Publisher(UNREACHABLE, topology)
    assert connects == []


def test_zero_confirm_timeout_is_refused(topology):
    # py-amqp would read a confirm timeout of 0 as "wait forever".
    with pytest.raises(ValueError):
        Publisher(UNREACHABLE, topology, confirm_timeout=0)


def test_unreachable_broker_fails_fast(topology):
    publisher = Publisher(UNREACHABLE, topology, connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as caught:
        publisher.publish(topology.events, "crm.contacts.changed", {"a": 1}, message_id="x")
    with pytest.raises(BrokerUnavailable):
        publisher.ping()
    assert time.monotonic() - started < 2
    assert caught.value.__cause__ is not None
    assert "guest" not in str(caught.value)  # no credentials in messages that reach logs


def test_publish_crm_record_changed_uses_the_contract(publisher, topology):
    event = make_event(module="Deals", record_id="5725767000003000064")
    publish_crm_record_changed(publisher, topology, event)

    [message] = drain(topology.crm_to_ameise)
    assert message.delivery_info["routing_key"] == "crm.deals.changed"
    assert message.delivery_info["exchange"] == topology.crm_changes.name   # Deals is synced: the direct exchange
    assert message.properties["message_id"] == event.event_id
    assert message.payload["schema_version"] == CrmRecordChangedSchema.SCHEMA_VERSION
    assert message.payload["record_id"] == "5725767000003000064"
    assert CrmRecordChangedSchema().load(message.payload) == event


def test_event_breaking_its_contract_is_not_published(publisher, topology):
    with pytest.raises(ContractError):
        publish_crm_record_changed(publisher, topology, make_event(record_id="12 34"))
    assert drain(topology.crm_to_ameise) == []


def test_the_rabbitmq_publisher_refuses_the_in_process_broker(topology):
    with pytest.raises(ValueError, match="memory"):
        Publisher("memory://", topology)


def test_memory_publisher_holds_a_retry_for_its_delay_then_puts_it_back_unchanged(namespace):
    from producers.memory import MemoryPublisher
    from producers.topology import build_topology

    topology = build_topology(namespace, retry_delays=(0.3,))
    publisher = MemoryPublisher(topology)
    body = b'{"name": "M\xfcller"}'
    try:
        started = time.monotonic()
        publisher.publish(topology.retry_exchange(0.3), "crm.contacts.changed", body, message_id="m-r",
                          headers={"x-retries": 1}, content_encoding="cp1252")
        assert drain(topology.crm_to_ameise) == []
        deadline = time.monotonic() + 5
        while not (back := drain(topology.crm_to_ameise)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert time.monotonic() - started >= 0.3
    finally:
        publisher.close()
    [message] = back
    assert (message.body, message.content_encoding) == (body, "cp1252")
    assert (message.headers["x-retries"], message.properties["message_id"]) == (1, "m-r")
    assert drain(topology.retries[0][2]) == []
