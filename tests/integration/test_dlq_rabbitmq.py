"""Dead letters on the real RabbitMQ and PostgreSQL: dead-lettered, archived, listed, shown, replayed, discarded.

The real CrmToAmeiseConsumer dead-letters a rejected and a contract-violating
event; RabbitMQ itself dead-letters one that exceeds its queue's delivery limit.
The archiver runs in a thread; the operator's side is the ``syncbridge dlq``
command, as it is used in production.
"""
from __future__ import annotations

import json
import random
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from alembic import command
from click.testing import CliRunner
from kombu import Connection
from sqlalchemy import inspect

from consumers.crm_to_ameise import CrmToAmeiseConsumer
from consumers.dead_letter_archive import DeadLetterArchiver
from contracts.events import CrmRecordChangedSchema
from producers.publisher import Publisher
from producers.topology import build_topology, topology_for
from producers.transport import rabbitmq_connection
from syncbridge.adapters.db.migrate import alembic_config, current, upgrade
from syncbridge.adapters.db.sql import make_engine
from syncbridge.adapters.zoho import ZohoUnavailable
from syncbridge.cli import main
from syncbridge.config import Settings
from syncbridge.errors import RecordRejected
from syncbridge.handlers import SyncResult
from syncbridge.handlers.dead_letters import DeadLetterOps, Selection, archive_dead_letter
from syncbridge.messages import CrmRecordChanged
from syncbridge.ports import DeadLetterFilter
from tests.support.databases import pg_schema
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

ROUTING_KEY = "crm.contacts.changed"


def record_id() -> str:
    return str(random.randrange(10**18, 10**19))


def event(record: str) -> dict:
    return CrmRecordChangedSchema().dump(CrmRecordChanged(
        event_id=f"evt-{record}", source="zoho-workflow", module="Contacts", record_id=record,
        received_at=datetime.now(UTC), operation="update"))


@pytest.fixture
def database_url(postgres_url):
    with pg_schema(postgres_url) as url:
        upgrade(url)
        yield url



@contextmanager
def running(consumer):
    """Run a consumer in a thread; stop it gracefully afterwards."""
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        yield consumer
    finally:
        consumer.should_stop = True
        thread.join(timeout=20)
    assert not thread.is_alive(), "the consumer did not stop"


def archiver(url: str, topology, letters) -> DeadLetterArchiver:
    return DeadLetterArchiver(rabbitmq_connection(url, heartbeat=30), topology, partial(archive_dead_letter, letters, topology))


def take(url: str, queue, timeout: float = 5.0) -> list:
    """Take (and ack) what arrives in ``queue`` within ``timeout``, raw bodies."""
    messages = []
    with Connection(url) as conn:
        bound = queue(conn.channel())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = bound.get(no_ack=True)
            if message is None:
                if messages:
                    break
                time.sleep(0.05)
                continue
            messages.append(message)
    return messages


def waiting(url: str, queue) -> int:
    with Connection(url) as conn:
        return conn.default_channel.queue_declare(queue=queue.name, passive=True).message_count


def dlq(env: dict, *args: str):
    return CliRunner().invoke(main, ["dlq", *args], env=env, prog_name="syncbridge")


# ---------------------------------------------------------------- dead-lettered by our consumer
def test_dead_letters_of_the_consumer_are_archived_listed_shown_replayed_and_discarded(
        rabbitmq_url, namespace, database_url, store, letters):
    settings = Settings.from_env({}, database_url=database_url, broker_url=rabbitmq_url, namespace=namespace)
    topology = topology_for(settings)
    publisher = Publisher(rabbitmq_url, topology)
    rejected_record, invalid_record = record_id(), record_id()
    invalid = {**event(invalid_record), "record_id": int(invalid_record)}      # an int: the contract refuses it

    def handle(command):
        if command.record_id == rejected_record:
            raise RecordRejected("Kundennummer 5001234567 belongs to another record", field="Kundennummer")
        return SyncResult("updated", "customer", command.module, command.record_id, "5001234567")

    consumer = CrmToAmeiseConsumer(rabbitmq_connection(rabbitmq_url, heartbeat=30), topology, handle, publisher, store)
    try:
        with running(consumer), running(archiver(rabbitmq_url, topology, letters)):
            publisher.publish(topology.events, ROUTING_KEY, event(rejected_record), message_id=f"evt-{rejected_record}")
            publisher.publish(topology.events, ROUTING_KEY, json.dumps(invalid).encode(), message_id=invalid["event_id"])
            wait_for(lambda: letters.count() == 2, what="two archived dead letters")
        assert waiting(rabbitmq_url, topology.dead_letters) == 0
        assert waiting(rabbitmq_url, topology.crm_to_ameise) == 0

        [rejected] = letters.find(DeadLetterFilter(kind="rejected", record=rejected_record))
        [contract] = letters.find(DeadLetterFilter(kind="contract-violation", queue="crm-to-ameise"))
        assert (rejected.exchange, rejected.routing_key, rejected.attempts) == (topology.events.name, ROUTING_KEY, 1)
        assert rejected.reason == "syncbridge field=Kundennummer: Kundennummer 5001234567 belongs to another record"
        assert contract.record == invalid_record and "record_id" in contract.reason
        assert contract.body == json.dumps(invalid).encode()                    # byte for byte
        env = {"SYNCBRIDGE_DATABASE_URL": database_url, "SYNCBRIDGE_BROKER_URL": rabbitmq_url,
               "SYNCBRIDGE_NAMESPACE": namespace, "USER": "ops-anna"}
        listed = dlq(env, "list", "--kind", "rejected", "--since", (datetime.now(UTC) - timedelta(minutes=5)).isoformat())
        assert listed.exit_code == 0, listed.output
        assert [line.split()[0] for line in listed.output.splitlines()] == [f"#{rejected.id}"]
        shown = dlq(env, "show", str(contract.id))
        assert shown.exit_code == 0, shown.output
        assert f'"record_id": {invalid_record}' in shown.output and "contract CrmRecordChanged v1 violated" in shown.output

        replayed = dlq(env, "replay", str(rejected.id))
        assert replayed.exit_code == 0, replayed.output
        [message] = take(rabbitmq_url, topology.crm_to_ameise)
        assert message.delivery_info["routing_key"] == ROUTING_KEY and message.body.encode() == rejected.body
        assert message.headers["x-replayed-from"] == rejected.id and "x-error" not in message.headers

        refused = dlq(env, "replay", str(contract.id))
        assert refused.exit_code == 1 and "refused" in refused.output and "record_id" in refused.output
        assert waiting(rabbitmq_url, topology.crm_to_ameise) == 0
        discarded = dlq(env, "discard", str(contract.id), "--note", "sent by a broken form")
        assert discarded.exit_code == 0, discarded.output

        assert letters.get(rejected.id).state == "replayed" and letters.get(rejected.id).replayed_by == "ops-anna"
        assert (letters.get(contract.id).state, letters.get(contract.id).note) == ("discarded", "sent by a broken form")
        log = {(e.action, e.result, e.details["dead_letter_id"], e.details["by"])
               for e in store.activities(direction="system")}
        assert log == {("dead_letter_replayed", "ok", rejected.id, "ops-anna"),
                       ("dead_letter_replayed", "error", contract.id, "ops-anna"),
                       ("dead_letter_discarded", "ok", contract.id, "ops-anna")}
    finally:
        publisher.close()


# ---------------------------------------------------------------- dead-lettered by RabbitMQ
def test_a_message_over_the_delivery_limit_is_archived_with_rabbitmqs_reason_and_replayed(
        rabbitmq_url, namespace, store, letters):
    topology = build_topology(namespace, delivery_limit=1)
    publisher = Publisher(rabbitmq_url, topology)
    record = record_id()
    try:
        publisher.publish(topology.events, ROUTING_KEY, event(record), message_id=f"evt-{record}",
                          headers={"x-tenant": "broker-1"})
        # A consumer that never gets through (it dies each time): RabbitMQ gives up after the limit.
        with Connection(rabbitmq_url) as conn:
            work = topology.crm_to_ameise(conn.channel())

            def given_up() -> bool:
                if (message := work.get(no_ack=False)) is not None:
                    message.requeue()
                return waiting(rabbitmq_url, topology.dead_letters) == 1
            wait_for(given_up, what="RabbitMQ dead-lettering the message")
        with running(archiver(rabbitmq_url, topology, letters)):
            [letter] = wait_for(lambda: letters.find(), what="the archived dead letter")

        assert (letter.kind, letter.reason, letter.queue, letter.record) == (
            "delivery_limit", "delivery limit exceeded", "crm-to-ameise", record)
        assert (letter.exchange, letter.routing_key, letter.message_id) == (topology.events.name, ROUTING_KEY,
                                                                            f"evt-{record}")
        assert abs(letter.dead_lettered_at - datetime.now(UTC)) < timedelta(minutes=1)
        assert letter.headers["x-death"][0]["reason"] == "delivery_limit" and letter.headers["x-tenant"] == "broker-1"
        assert json.loads(letter.body)["record_id"] == record

        [outcome] = DeadLetterOps(letters, store, publisher=publisher, topology=topology).replay(
            Selection((letter.id,)), by="ops-anna")
        assert outcome.status == "replayed"
        [message] = take(rabbitmq_url, topology.crm_to_ameise)
        assert message.headers["x-tenant"] == "broker-1" and message.headers["x-replays"] == 1
        assert not [name for name in message.headers if "death" in name]     # a fresh start for the consumer
    finally:
        publisher.close()


# ---------------------------------------------------------------- migration 0003
def test_migration_0003_adds_the_dead_letters_table_and_takes_it_away(postgres_url):
    with pg_schema(postgres_url) as url:
        upgrade(url, "0003")
        engine = make_engine(url)
        indexes = {ix["name"] for ix in inspect(engine).get_indexes("dead_letters")}
        assert {"ix_dead_letters_record", "ix_dead_letters_state_dead_lettered_at"} <= indexes
        assert [c["column_names"] for c in inspect(engine).get_unique_constraints("dead_letters")] == [["fingerprint"]]

        command.downgrade(alembic_config(url), "0002")

        assert current(url) == "0002" and "dead_letters" not in inspect(engine).get_table_names()
        assert "dailyup_imports" in inspect(engine).get_table_names()
        engine.dispose()


# ---------------------------------------------------------------- bodies kept byte for byte
def publish_raw(url: str, topology, body: bytes, *, content_encoding: str, message_id: str) -> None:
    """Publish ``body`` as another producer would: declared JSON, in the charset it names (confirmed, so that
    it is queued before the test waits for it)."""
    with Connection(url, transport_options={"confirm_publish": True}) as conn:
        conn.Producer().publish(body, exchange=topology.events, routing_key=ROUTING_KEY, declare=[],
                                content_type="application/json", content_encoding=content_encoding,
                                delivery_mode=2, message_id=message_id)


def cp1252_event(record: str, **changes) -> bytes:
    return json.dumps({**event(record), "source": "Formular Müller", **changes}, ensure_ascii=False).encode("cp1252")


@pytest.mark.parametrize("case", ["not utf-8", "cp1252 declared, contract violated"])
def test_a_cp1252_body_is_dead_lettered_and_archived_byte_for_byte_and_not_replayed_as_other_bytes(
        rabbitmq_url, namespace, store, letters, case):
    topology = build_topology(namespace)
    publisher = Publisher(rabbitmq_url, topology)
    record = record_id()
    if case == "not utf-8":      # declared UTF-8 JSON, sent in CP1252: the consumer cannot decode it
        sent, encoding, kind = b'{"name": "M\xfcller"}', "utf-8", "undecodable"
    else:                        # decodable by its charset, but the record id is a number: the contract refuses it
        sent, encoding, kind = cp1252_event(record, record_id=int(record)), "cp1252", "contract-violation"
    assert b"M\xfcller" in sent
    consumer = CrmToAmeiseConsumer(rabbitmq_connection(rabbitmq_url, heartbeat=30), topology, lambda command: None,
                                   publisher, store)
    try:
        publisher.ping()   # declares the topology
        with running(consumer), running(archiver(rabbitmq_url, topology, letters)):
            publish_raw(rabbitmq_url, topology, sent, content_encoding=encoding, message_id=f"evt-{record}")
            [letter] = wait_for(lambda: letters.find(), what="the archived dead letter")

        assert letter.kind == kind
        assert letter.body == sent
        # JSON is UTF-8 (RFC 8259): the replay refuses it rather than send anything but these bytes.
        ops = DeadLetterOps(letters, store, publisher=publisher, topology=topology)
        [outcome] = ops.replay(Selection(ids=(letter.id,)), by="ops-anna")
        assert outcome.status == "refused"
        assert letters.get(letter.id).body == sent
        assert waiting(rabbitmq_url, topology.crm_to_ameise) == 0
    finally:
        publisher.close()


# A producer's charset, how it spells the body, and whether the text encoded again gives other bytes
# (then only the bytes received can be passed on).
CHARSETS = {
    "cp1252": ("cp1252", lambda text: text.encode("cp1252"), False),
    "utf-16, big-endian with BOM": ("utf-16", lambda text: b"\xfe\xff" + text.encode("utf-16-be"), True),
    "utf-16 without BOM": ("utf-16", lambda text: text.encode("utf-16-le"), True),
    # "+APw" before a quote may end with the optional "-" or not: two spellings of "ü".
    "utf-7, a character spelled two ways": ("utf-7", lambda text: text.encode("utf-7").replace(b'+APw"', b'+APw-"'),
                                            True),
}


@pytest.mark.parametrize("case", list(CHARSETS))
def test_a_retried_then_dead_lettered_message_keeps_its_bytes_in_any_charset(
        rabbitmq_url, namespace, store, letters, case):
    topology = build_topology(namespace, retry_delays=(1,))
    publisher = Publisher(rabbitmq_url, topology)
    record = record_id()
    encoding, encode, breaks_round_trip = CHARSETS[case]
    sent = encode(json.dumps({**event(record), "source": "Formular Mü"}, ensure_ascii=False))
    assert (sent.decode(encoding).encode(encoding) != sent) is breaks_round_trip
    seen: list[str] = []

    def handle(command):
        seen.append(command.record_id)
        raise ZohoUnavailable("Service Unavailable", status=503)

    consumer = CrmToAmeiseConsumer(rabbitmq_connection(rabbitmq_url, heartbeat=30), topology, handle, publisher, store)
    try:
        publisher.ping()
        with running(consumer), running(archiver(rabbitmq_url, topology, letters)):
            publish_raw(rabbitmq_url, topology, sent, content_encoding=encoding, message_id=f"evt-{record}")
            [letter] = wait_for(lambda: letters.find(), what="the dead letter after the last retry")

        assert seen == [record, record]            # read by its charset, first and after the retry
        assert (letter.kind, letter.headers["x-retries"]) == ("unavailable", 1)
        assert letter.body == sent
    finally:
        publisher.close()
