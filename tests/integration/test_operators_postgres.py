"""The dashboard's store on PostgreSQL: failed sign-ins counted across processes, pause flags, queue depths."""
from __future__ import annotations

import pytest
from kombu import Connection

from producers.depths import queue_depths
from producers.publisher import BrokerUnavailable
from producers.topology import build_topology, declare
from syncbridge.adapters.db import migrate
from syncbridge.adapters.db.sql import SqlStore
from syncbridge.bootstrap import build_operators
from syncbridge.config import Settings
from syncbridge.handlers.overview import pause_direction, resume_direction
from tests.support.clock import FakeClock
from tests.support.databases import pg_schema, schema_differences


@pytest.fixture
def schema_url(postgres_url):
    with pg_schema(postgres_url) as url:
        migrate.upgrade(url)
        yield url


def test_the_migrated_tables_are_those_of_the_models(schema_url):
    assert schema_differences(schema_url) == []


def test_two_dashboard_processes_share_the_count_of_failed_sign_ins(schema_url):
    """Each 'process' has its own engine; the lock-out counts the failures of both."""
    settings = Settings.from_env({}, database_url=schema_url, dashboard_login_attempts="4")
    clock = FakeClock()
    first = build_operators(settings, store=SqlStore.from_url(schema_url), now=clock)
    second = build_operators(settings, store=SqlStore.from_url(schema_url), now=clock)
    first.create("anna", "right-password", "viewer", by="test")

    for ops in (first, second, first, second):
        assert ops.sign_in("anna", "wrong-password", "10.1.1.1").refused == "invalid"
    assert first.sign_in("anna", "right-password", "10.1.1.1").refused == "limited"
    assert second.sign_in("anna", "right-password", "10.1.1.1").refused == "limited"
    clock.advance(settings.dashboard_login_window + 1)
    assert second.sign_in("anna", "right-password", "10.1.1.1").operator is not None


def test_a_pause_flag_is_set_replaced_and_cleared(schema_url):
    ops = build_operators(Settings.from_env({}, database_url=schema_url), store=SqlStore.from_url(schema_url))
    pause_direction(ops.store, "crm_to_ameise", by="anna", reason="Wartung")
    pause_direction(ops.store, "crm_to_ameise", by="ben", reason="Umstellung")
    [pause] = ops.store.paused_directions().values()
    assert (pause.direction, pause.by, pause.reason) == ("crm_to_ameise", "ben", "Umstellung")
    assert resume_direction(ops.store, "crm_to_ameise", by="anna") is True
    assert resume_direction(ops.store, "crm_to_ameise", by="anna") is False
    assert ops.store.paused_directions() == {}
    assert [e.action for e in ops.audit_entries()] == ["direction.resumed", "direction.paused", "direction.paused"]


def test_queue_depths_on_rabbitmq(rabbitmq_url, namespace):
    topology = build_topology(namespace)
    connect = lambda: Connection(rabbitmq_url, connect_timeout=3)   # noqa: E731
    assert queue_depths(connect, topology) == {"crm-to-ameise": None, "ameise-to-crm": None, "dead-letters": None}
    # Confirmed: each message is queued before the depths are read.
    with Connection(rabbitmq_url, connect_timeout=3, transport_options={"confirm_publish": True}) as connection:
        declare(connection, topology)
        producer = connection.Producer()
        for n in range(3):
            producer.publish({"n": n}, exchange=topology.events, routing_key="ameise.customer.changed")

    assert queue_depths(connect, topology) == {"crm-to-ameise": 0, "ameise-to-crm": 3, "dead-letters": 0}


def test_queue_depths_of_an_unreachable_broker_are_unavailable():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BrokerUnavailable):
        queue_depths(lambda: Connection(f"amqp://guest:guest@127.0.0.1:{port}//", connect_timeout=1),
                     build_topology("nowhere"))
