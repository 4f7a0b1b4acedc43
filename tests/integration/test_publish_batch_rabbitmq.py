"""publish_many's batch path on a real RabbitMQ: frames written together, confirms per batch, failures exact."""
from __future__ import annotations

import amqp.transport
import pytest
from kombu import Connection, Queue

from producers.publisher import FRAMES_PER_WRITE, BrokerUnavailable, Publisher
from producers.topology import build_topology
from tests.support.net import TcpProxy
from tests.support.published import numbered, take

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def topology(namespace):
    return build_topology(namespace)


@pytest.fixture
def writes(monkeypatch):
    """Every write to a py-amqp socket, by size; ``on_write`` (if set) is called after each."""
    sizes: list[int] = []
    original = amqp.transport._AbstractTransport.write

    def counting(transport, data):
        result = original(transport, data)
        sizes.append(len(data))
        if counting.on_write is not None:
            counting.on_write(sizes)
        return result

    counting.on_write = None
    monkeypatch.setattr(amqp.transport._AbstractTransport, "write", counting)
    return counting, sizes


def test_a_batch_goes_out_in_few_writes_and_is_confirmed_whole(rabbitmq_url, topology, writes):
    _, sizes = writes
    publisher = Publisher(rabbitmq_url, topology, confirm_timeout=10)
    try:
        publisher.ping()
        before = len(sizes)
        assert publisher.publish_many(topology.events, numbered(2000), window=1000) == 2000
        sent = len(sizes) - before
    finally:
        publisher.close()
    # Per window: channel.open, confirm.select, the messages in writes of FRAMES_PER_WRITE, channel.close.
    assert sent <= 2 * (3 + 1000 // FRAMES_PER_WRITE)
    got = take(rabbitmq_url, topology.crm_to_ameise, expect=2000)
    assert [m.payload["n"] for m in got] == list(range(2000))
    assert {m.properties["delivery_mode"] for m in got} == {2}


def test_a_nack_in_the_middle_of_a_batch_fails_that_message_and_reports_those_before(rabbitmq_url, namespace):
    # A queue that takes nothing, bound only for "crm.full.#": the broker nacks exactly those messages.
    topology = build_topology(namespace)
    refusing = Queue(f"{namespace}.refusing", exchange=topology.events, routing_key="crm.full.#", durable=True,
                     queue_arguments={"x-queue-type": "classic", "x-max-length": 0, "x-overflow": "reject-publish"})
    with Connection(rabbitmq_url) as connection:
        refusing(connection.default_channel).declare()
    key = "crm.contacts.changed"
    messages = [(key, {"n": 0}, "m-0"), (key, {"n": 1}, "m-1"), ("crm.full.changed", {"n": 2}, "m-2"),
                (key, {"n": 3}, "m-3"), (key, {"n": 4}, "m-4")]
    publisher = Publisher(rabbitmq_url, topology, confirm_timeout=5)
    try:
        with pytest.raises(BrokerUnavailable, match="nack") as caught:
            publisher.publish_many(topology.events, messages, window=5)
        # The publisher is fine afterwards: the messages after the nacked one go again (at least once).
        assert publisher.publish_many(topology.events, messages[3:]) == 2
    finally:
        publisher.close()
        with Connection(rabbitmq_url) as connection:
            refusing(connection.default_channel).delete()
    # Exactly the messages before the nacked one count as published: the outbox keeps the rest in order.
    assert caught.value.confirmed == 2


def test_a_connection_lost_mid_batch_reports_only_what_is_in_the_queue(rabbitmq_url, topology, writes):
    on_write, sizes = writes
    count = 3000
    with TcpProxy(rabbitmq_url) as proxy:
        publisher = Publisher(proxy.url, topology, confirm_timeout=5, connect_timeout=2)
        try:
            publisher.ping()
            start = len(sizes)
            big = []

            def cut_in_the_second_window(sizes_so_far):
                if sizes_so_far[-1] > 10_000:
                    big.append(len(sizes_so_far))
                    # The second write of frames of the second window (four writes per window of 1000).
                    if len(big) == 6:
                        proxy.cut()

            on_write.on_write = cut_in_the_second_window
            try:
                reported = publisher.publish_many(topology.events, numbered(count), window=1000)
            except BrokerUnavailable as exc:
                reported = exc.confirmed
            on_write.on_write = None
            assert len(big) >= 6 and len(sizes) > start, "the connection was not cut mid-batch"
        finally:
            publisher.close()
    got = [m.payload["n"] for m in take(rabbitmq_url, topology.crm_to_ameise, expect=count + 1000, timeout=5)]
    # Everything reported published is in the queue (a message sent again may be there twice, never missing).
    assert reported >= 1000
    assert set(range(reported)) <= set(got)
