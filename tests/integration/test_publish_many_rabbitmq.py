"""Publisher.publish_many: windows of confirmed publishes on a real RabbitMQ, and the loop on memory://."""
from __future__ import annotations

import dataclasses
import time

import pytest
from kombu import Connection, Queue

from producers.memory import MemoryPublisher
from producers.publisher import BrokerUnavailable, Publisher
from producers.topology import build_topology
from tests.support.net import TcpProxy, close_connections_named
from tests.support.published import KEY, numbered, take

pytestmark = pytest.mark.rabbitmq

@pytest.fixture
def topology(namespace):
    return build_topology(namespace)


@pytest.fixture
def publisher(rabbitmq_url, topology):
    publisher = Publisher(rabbitmq_url, topology, confirm_timeout=5, connect_timeout=2)
    yield publisher
    publisher.close()


def test_ten_thousand_messages_arrive_exactly_once_in_order(rabbitmq_url, publisher, topology):
    assert publisher.publish_many(topology.events, numbered(10_000)) == 10_000

    messages = take(rabbitmq_url, topology.crm_to_ameise, expect=10_000)
    assert [m.payload["n"] for m in messages] == list(range(10_000))
    first = messages[0]
    assert first.payload == {"n": 0, "name": "Müller"}
    assert first.content_type == "application/json"
    assert first.properties["delivery_mode"] == 2
    assert first.properties["message_id"] == "m-0"
    assert first.delivery_info["routing_key"] == KEY


def test_messages_look_like_those_of_publish(rabbitmq_url, publisher, topology):
    publisher.publish(topology.events, KEY, {"n": 1}, message_id="single")
    publisher.publish_many(topology.events, [(KEY, {"n": 2}, "many")])

    single, many = take(rabbitmq_url, topology.crm_to_ameise, expect=2)
    assert (single.payload, many.payload) == ({"n": 1}, {"n": 2})
    assert {k: v for k, v in many.properties.items() if k != "message_id"} == \
        {k: v for k, v in single.properties.items() if k != "message_id"}
    assert many.headers == single.headers == {}
    assert (many.content_type, many.content_encoding) == (single.content_type, single.content_encoding)


def test_a_nack_raises_and_names_how_many_were_confirmed(rabbitmq_url, namespace):
    # A classic queue that holds one message and refuses more: the broker nacks the rest.
    base = build_topology(namespace)
    full = Queue(base.crm_to_ameise.name, exchange=base.events, routing_key="crm.#", durable=True,
                 queue_arguments={"x-queue-type": "classic", "x-max-length": 1, "x-overflow": "reject-publish"})
    topology = dataclasses.replace(base, crm_to_ameise=full)
    publisher = Publisher(rabbitmq_url, topology, confirm_timeout=2)
    try:
        with pytest.raises(BrokerUnavailable, match="nack") as caught:
            publisher.publish_many(topology.events, numbered(5), window=5)
    finally:
        publisher.close()
    assert caught.value.confirmed == 1
    assert "confirmed the first 1 messages" in str(caught.value)
    assert [m.payload["n"] for m in take(rabbitmq_url, full, expect=2, timeout=1)] == [0]


def test_a_nack_in_a_later_window_counts_the_windows_before(rabbitmq_url, namespace):
    base = build_topology(namespace)
    full = Queue(base.crm_to_ameise.name, exchange=base.events, routing_key="crm.#", durable=True,
                 queue_arguments={"x-queue-type": "classic", "x-max-length": 3, "x-overflow": "reject-publish"})
    topology = dataclasses.replace(base, crm_to_ameise=full)
    publisher = Publisher(rabbitmq_url, topology, confirm_timeout=2)
    try:
        with pytest.raises(BrokerUnavailable) as caught:
            publisher.publish_many(topology.events, numbered(6), window=2)
    finally:
        publisher.close()
    assert caught.value.confirmed == 3


def test_an_unroutable_message_is_not_reported_as_published(publisher, topology):
    with pytest.raises(BrokerUnavailable, match="NO_ROUTE") as caught:
        publisher.publish_many(topology.events, [(KEY, {"n": 1}, "1"), ("nobody.listens", {"n": 2}, "2")])
    assert caught.value.confirmed in (0, 1)


def test_missing_confirms_time_out(rabbitmq_url, topology):
    with TcpProxy(rabbitmq_url) as proxy:
        publisher = Publisher(proxy.url, topology, confirm_timeout=0.5, connect_timeout=2)
        try:
            publisher.ping()
            proxy.freeze()  # the broker's answers no longer arrive
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable, match="in time") as caught:
                publisher.publish_many(topology.events, numbered(50))
            assert time.monotonic() - started < 2
            assert caught.value.confirmed == 0
            proxy.thaw()
            assert publisher.publish_many(topology.events, numbered(3, start=100)) == 3
        finally:
            publisher.close()
    payloads = [m.payload["n"] for m in take(rabbitmq_url, topology.crm_to_ameise, expect=53, timeout=2)]
    # The unconfirmed window may or may not have reached the queue (at-least-once); the next did.
    assert payloads[-3:] == [100, 101, 102]


def test_reconnects_when_the_broker_closed_the_connection(rabbitmq_url, publisher, topology):
    publisher.publish_many(topology.events, numbered(2))
    close_connections_named(topology.namespace)

    assert publisher.publish_many(topology.events, numbered(2, start=2)) == 2
    assert [m.payload["n"] for m in take(rabbitmq_url, topology.crm_to_ameise, expect=4)] == [0, 1, 2, 3]


def test_unreachable_broker_raises_with_nothing_confirmed(topology):
    publisher = Publisher("amqp://guest:guest@127.0.0.1:1//", topology, connect_timeout=1)
    with pytest.raises(BrokerUnavailable) as caught:
        publisher.publish_many(topology.events, numbered(3))
    assert caught.value.confirmed == 0


def test_on_memory_it_publishes_one_after_the_other(topology):
    publisher = MemoryPublisher(topology)
    try:
        assert publisher.publish_many(topology.events, numbered(25)) == 25
        with Connection("memory://") as conn:
            simple = conn.SimpleQueue(topology.crm_to_ameise, accept=["application/json"])
            got = []
            while True:
                try:
                    message = simple.get(block=False)
                except simple.Empty:
                    break
                message.ack()
                got.append(message)
    finally:
        publisher.close()
    assert [m.payload["n"] for m in got] == list(range(25))
    assert got[0].properties["message_id"] == "m-0" and got[0].properties["delivery_mode"] == 2


def test_window_must_be_positive(topology):
    with pytest.raises(ValueError):
        MemoryPublisher(topology).publish_many(topology.events, [], window=0)


def test_every_message_goes_through_py_amqps_public_basic_publish(rabbitmq_url, publisher, topology, monkeypatch):
    """No channel method is swapped out: publish and publish_many both send through ``Channel.basic_publish``."""
    import amqp.channel

    sent = []
    original = amqp.channel.Channel.basic_publish

    def counting(channel, *args, **kwargs):
        assert "basic_publish" not in vars(channel), "a channel's basic_publish was replaced"
        sent.append(kwargs.get("routing_key"))
        return original(channel, *args, **kwargs)

    monkeypatch.setattr(amqp.channel.Channel, "basic_publish", counting)
    publisher.publish(topology.events, KEY, {"n": -1}, message_id="single")
    assert publisher.publish_many(topology.events, numbered(1200), window=500) == 1200

    assert sent == [KEY] * 1201
    assert len(take(rabbitmq_url, topology.crm_to_ameise, expect=1201)) == 1201
