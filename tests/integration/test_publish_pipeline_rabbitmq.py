"""Concurrent publishes on one confirm-mode channel: many in flight, each caller answered by its own confirm."""
from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from kombu import Connection, Queue

from producers.publisher import BrokerUnavailable, Publisher
from producers.topology import build_topology
from simulators.server import ServerThread
from syncbridge.config import Settings
from tests.support.net import TcpProxy, consume_all
from tests.support.waiting import wait_for
from webhooks import create_app

pytestmark = pytest.mark.rabbitmq

KEY = "crm.contacts.changed"
TOKEN = "pipeline-webhook-token"
RECORD_ID = "4150868000000376008"


def queued(url: str, queue: Queue) -> int:
    """Messages the broker holds in ``queue`` (read on a connection of its own, not through any proxy)."""
    with Connection(url) as conn:
        return conn.channel().queue_declare(queue.name, passive=True).message_count


class Calls:
    """Run ``call(n)`` for n in range(count) at once, each in a thread; record who returned and who raised."""

    def __init__(self, call, count: int) -> None:
        self.ok: list[int] = []
        self.failed: dict[int, BaseException] = {}
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(call, n), daemon=True) for n in range(count)]
        for thread in self._threads:
            thread.start()

    def _run(self, call, n: int) -> None:
        try:
            call(n)
        except BaseException as exc:  # noqa: BLE001 - recorded for the test to look at
            with self._lock:
                self.failed[n] = exc
        else:
            with self._lock:
                self.ok.append(n)

    @property
    def answered(self) -> int:
        with self._lock:
            return len(self.ok) + len(self.failed)

    def join(self, timeout: float = 20) -> None:
        for thread in self._threads:
            thread.join(timeout)
        assert not any(thread.is_alive() for thread in self._threads)


def test_concurrent_webhooks_are_in_flight_together_and_each_202_waits_for_its_confirm(rabbitmq_url, namespace):
    settings = Settings.from_env({}, namespace=namespace, broker_url=rabbitmq_url, zoho_webhook_token=TOKEN)
    topology = build_topology(namespace, settings.delivery_limit)
    with TcpProxy(rabbitmq_url) as proxy:
        publisher = Publisher(proxy.url, topology, confirm_timeout=15, connect_timeout=5)
        app = create_app(settings, publisher=publisher, checks={})
        statuses: dict[int, int] = {}
        try:
            with ServerThread(app) as server:
                publisher.ping()     # connected, topology declared
                proxy.freeze()       # the broker still gets every message; its confirms are held back

                def post(n: int) -> None:
                    response = requests.post(f"{server.url}/webhooks/zoho/Contacts", json={"id": str(1000 + n)},
                                              headers={"X-Webhook-Token": TOKEN}, timeout=30)
                    statuses[n] = response.status_code

                calls = Calls(post, 24)
                # All 24 messages reach the queue while no confirm has come back: they are in flight together ...
                wait_for(lambda: queued(rabbitmq_url, topology.crm_to_ameise) == 24, timeout=10,
                         what="24 messages queued while their confirms are held back")
                # ... and not one request was answered before its confirm.
                assert calls.answered == 0 and statuses == {}
                proxy.thaw()
                calls.join()
        finally:
            publisher.close()
    assert statuses == {n: 202 for n in range(24)}
    assert sorted(m.payload["record_id"] for m in consume_all(rabbitmq_url, topology.crm_to_ameise, expect=24)) == \
        sorted(str(1000 + n) for n in range(24))


def test_a_nack_fails_exactly_the_refused_publishes(rabbitmq_url, namespace):
    # A classic queue of at most 5 messages that rejects more: RabbitMQ nacks every publish beyond the fifth.
    base = build_topology(namespace)
    full = Queue(base.crm_to_ameise.name, exchange=base.events, routing_key="crm.#", durable=True,
                 queue_arguments={"x-queue-type": "classic", "x-max-length": 5, "x-overflow": "reject-publish"})
    topology = dataclasses.replace(base, crm_to_ameise=full)
    publisher = Publisher(rabbitmq_url, topology, confirm_timeout=5)
    try:
        publisher.ping()
        calls = Calls(lambda n: publisher.publish(topology.events, KEY, {"n": n}, message_id=f"m-{n}"), 20)
        calls.join()
    finally:
        publisher.close()
    assert len(calls.ok) == 5 and len(calls.failed) == 15
    assert all(isinstance(exc, BrokerUnavailable) and "nack" in str(exc) for exc in calls.failed.values())
    # Every publish that returned is in the queue, and nothing else.
    kept = consume_all(rabbitmq_url, full, expect=6, timeout=1)
    assert sorted(m.payload["n"] for m in kept) == sorted(calls.ok)


def test_a_broker_gone_mid_flight_fails_the_unanswered_and_keeps_the_confirmed(rabbitmq_url, namespace):
    topology = build_topology(namespace)
    with TcpProxy(rabbitmq_url) as proxy:
        publisher = Publisher(proxy.url, topology, confirm_timeout=15, connect_timeout=1)
        try:
            confirmed = Calls(lambda n: publisher.publish(topology.events, KEY, {"n": n}, message_id=f"a-{n}"), 10)
            confirmed.join()
            assert sorted(confirmed.ok) == list(range(10))

            proxy.freeze()
            pending = Calls(lambda n: publisher.publish(topology.events, KEY, {"n": 100 + n},
                                                        message_id=f"b-{n}"), 10)
            wait_for(lambda: queued(rabbitmq_url, topology.crm_to_ameise) == 20, timeout=10,
                     what="the unconfirmed messages at the broker")
            assert pending.answered == 0
            started = time.monotonic()
            proxy.cut()      # the connection dies with ten messages unanswered (and reconnecting hangs)
            pending.join()
            assert time.monotonic() - started < 5    # well before the confirm timeout: answered at once
            assert pending.ok == [] and len(pending.failed) == 10
            assert all(isinstance(exc, BrokerUnavailable) for exc in pending.failed.values())

            proxy.thaw()
            publisher.publish(topology.events, KEY, {"n": 999}, message_id="c")   # and back once it is
        finally:
            publisher.close()
    numbers = [m.payload["n"] for m in consume_all(rabbitmq_url, topology.crm_to_ameise, expect=21)]
    # Nothing that was confirmed is lost; the unanswered ones may be there (at least once), the sender retries them.
    assert set(range(10)) | {999} <= set(numbers)


def test_a_returned_message_is_not_a_202_while_the_others_are(rabbitmq_url, namespace):
    settings = Settings.from_env({}, namespace=namespace, broker_url=rabbitmq_url, zoho_webhook_token=TOKEN,
                                 zoho_modules="Contacts=person,Deals=contract")
    base = build_topology(namespace, settings.delivery_limit, crm_modules=("Contacts",))
    # Only Contacts events have a queue (bound on both exchanges): a Deals event, published to the
    # events exchange, is returned by the broker as unroutable.
    contacts_only = Queue(base.crm_to_ameise.name, exchange=base.events, routing_key="crm.contacts.#",
                          durable=True, queue_arguments=base.crm_to_ameise.queue_arguments)
    topology = dataclasses.replace(base, crm_to_ameise=contacts_only)
    publisher = Publisher(rabbitmq_url, topology, confirm_timeout=5)
    app = create_app(settings, publisher=publisher, checks={})

    def post(n: int) -> requests.Response:
        module = "Deals" if n % 3 == 0 else "Contacts"
        return requests.post(f"{server.url}/webhooks/zoho/{module}", json={"id": str(2000 + n)},
                             headers={"X-Webhook-Token": TOKEN}, timeout=30)

    try:
        with ServerThread(app) as server, ThreadPoolExecutor(12) as pool:
            responses = list(pool.map(post, range(24)))
    finally:
        publisher.close()
    assert {n: r.status_code for n, r in enumerate(responses)} == {
        n: 503 if n % 3 == 0 else 202 for n in range(24)}
    assert all(r.headers["Retry-After"] for r in responses if r.status_code == 503)
    queued_ids = sorted(m.payload["record_id"] for m in consume_all(rabbitmq_url, contacts_only, expect=17))
    assert queued_ids == sorted(str(2000 + n) for n in range(24) if n % 3)


def test_messages_handed_over_together_go_out_in_one_write_and_arrive_whole(rabbitmq_url, namespace):
    topology = build_topology(namespace)
    publisher = Publisher(rabbitmq_url, topology, confirm_timeout=5)
    try:
        publisher.ping()
        transport = publisher._connection.connection.transport
        writes: list[int] = []
        original = transport._write   # the socket's sendall, under every frame py-amqp writes

        def counting(data):
            writes.append(len(data))
            return original(data)

        transport._write = counting
        with publisher._lock:   # the connection is busy: the twelve messages are handed over meanwhile
            calls = Calls(lambda n: publisher.publish(topology.events, KEY, {"n": n, "name": "Müller" * n},
                                                      message_id=f"m-{n}", headers={"x-n": n}), 12)
            wait_for(lambda: len(publisher._queue) == 12, timeout=10, what="twelve messages handed over")
        calls.join()
        writes_to_publish = list(writes)
    finally:
        publisher.close()
    assert sorted(calls.ok) == list(range(12))
    assert len(writes_to_publish) == 1   # all twelve in one write (one each would be twelve)
    messages = consume_all(rabbitmq_url, topology.crm_to_ameise, expect=12)
    assert sorted((m.payload["n"], m.payload["name"], m.properties["message_id"], m.headers["x-n"],
                   m.properties["delivery_mode"], m.content_type) for m in messages) == [
        (n, "Müller" * n, f"m-{n}", n, 2, "application/json") for n in range(12)]
