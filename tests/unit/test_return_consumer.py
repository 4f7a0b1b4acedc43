"""The Ameise -> CRM consumer on kombu's in-process broker (memory://) with the real handler and fakes.

Each test gets its own namespace, a real Publisher on memory://, the in-memory
Zoho, a MemoryStore and a DailyUp snapshot in dicts.  The consumer runs its own
loop (``run()``) in a thread until the test has seen what it waits for, then
stops gracefully; every message it took is settled by then.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import replace

import pytest
from kombu import Connection
from sqlalchemy.exc import OperationalError

from consumers.ameise_to_crm import AmeiseToCrmConsumer, DeltaOfMessage, Settling
from contracts.events import AmeiseRecordChangedSchema, ameise_deltas_body
from producers.topology import build_topology
from syncbridge.adapters.zoho import ZohoUnavailable
from syncbridge.handlers import sync_ameise_records_to_crm
from syncbridge.messages import AmeiseRecordChanged, ameise_record_changed_key
from tests.support.queues import take_all, waiting
from tests.support.returns import World, contract, delta, person
from tests.support.waiting import wait_for

MEMORY = "memory://localhost/"


# ---------------------------------------------------------------- fixtures and helpers
@pytest.fixture
def topology(namespace):
    """Retry delays short enough for unit tests (the in-process broker waits with timers)."""
    return build_topology(namespace, retry_delays=(0.05, 0.1, 0.2))


@pytest.fixture
def world() -> World:
    return World()


def handler(world: World, *errors: BaseException):
    """The real handler over ``world``, recording each batch's size; the first calls raise ``errors``."""
    sizes: list[int] = []
    pending = list(errors)

    def handle(command):
        sizes.append(len(command.records))
        if pending:
            raise pending.pop(0)
        return sync_ameise_records_to_crm(command, world.deps)

    handle.sizes = sizes
    return handle


def make_consumer(topology, handle, publisher, world: World, **options) -> AmeiseToCrmConsumer:
    options.setdefault("batch_wait", 0.05)
    connection = Connection(MEMORY, transport_options={"polling_interval": 0.01})
    return AmeiseToCrmConsumer(connection, topology, handle, publisher, world.store, **options)


def send(publisher, topology, record: AmeiseRecordChanged | dict | bytes, *, routing_key: str | None = None,
         content_type: str = "application/json") -> bytes:
    """Publish a delta (or a raw body) as the importer does; return the bytes sent."""
    if isinstance(record, AmeiseRecordChanged):
        routing_key = ameise_record_changed_key(record.entity, record.change)
        record = AmeiseRecordChangedSchema().dump(record)
    raw = record if isinstance(record, bytes) else json.dumps(record).encode("utf-8")
    publisher.publish(topology.events, routing_key or "ameise.customer.created", raw,
                      message_id=str(uuid.uuid4()), content_type=content_type)
    return raw


def send_together(publisher, topology, *deltas: AmeiseRecordChanged | dict, message_id: str = "m-1") -> list[bytes]:
    """Publish deltas in one ``ameise.deltas`` message, as the DailyUp outbox does; return each delta's bytes."""
    bodies = [AmeiseRecordChangedSchema().dump(d) if isinstance(d, AmeiseRecordChanged) else d for d in deltas]
    publisher.publish(topology.deltas, "ameise.deltas", ameise_deltas_body(bodies), message_id=message_id)
    return [json.dumps(b, ensure_ascii=False, separators=(",", ":")).encode() for b in bodies]


@contextmanager
def running(consumer: AmeiseToCrmConsumer):
    """Run the consumer's loop in a thread; stop it gracefully on leaving."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            consumer.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        consumer.should_stop = True
        thread.join(timeout=10)
    assert not thread.is_alive(), "the consumer did not stop"
    assert not failure, failure




def processed(world: World, records) -> bool:
    return all(world.store.was_processed(r.delta_id) for r in records)


# ---------------------------------------------------------------- set-up
def test_the_consumer_takes_json_only_with_at_least_two_batches_prefetched(topology, publisher, world):
    consumer = make_consumer(topology, handler(world), publisher, world, batch_size=100, prefetch_count=10)
    with consumer.Consumer() as (_connection, _channel, consumers):
        [kombu_consumer] = consumers
        assert kombu_consumer.accept == {"application/json"}
        assert kombu_consumer.prefetch_count == 200
        assert [q.name for q in kombu_consumer.queues] == [topology.ameise_to_crm.name]


def test_a_batch_larger_than_zoho_takes_is_refused(topology, publisher, world):
    with pytest.raises(ValueError, match="between 1 and 100"):
        make_consumer(topology, handler(world), publisher, world, batch_size=101)


# ---------------------------------------------------------------- batching
def test_250_deltas_go_out_in_three_batches_of_one_upsert_each(topology, publisher, world):
    records = [world.customer(person(f"50{i:08d}")) for i in range(250)]
    for record in records:
        send(publisher, topology, record)
    handle = handler(world)

    # A full batch leaves at once; batch_wait (long here, so a busy machine cannot split a batch) ends the last.
    with running(make_consumer(topology, handle, publisher, world, batch_size=100, batch_wait=1.0)):
        wait_for(lambda: processed(world, records), what="every delta applied")

    assert handle.sizes == [100, 100, 50]
    assert [(w.operation, w.module, len(w.records)) for w in world.zoho.writes] == [
        ("upsert", "Contacts", 100), ("upsert", "Contacts", 100), ("upsert", "Contacts", 50)]
    assert world.zoho.state.credits_used == 25
    assert len(world.zoho.records("Contacts")) == 250
    assert waiting(topology.ameise_to_crm) == 0 and take_all(topology.dead_letters) == []


def test_echoed_fields_travel_in_the_message_and_a_message_without_them_is_sent_whole(topology, publisher, world):
    ours, older = "5000000001", "5000000002"
    for key in (ours, older):
        world.store.save_link("customer", "Contacts", world.zoho.seed("Contacts", {"Last_Name": "CRM", "Phone": "crm",
                                                                             "Kundennummer": key}), key)
    echoed = replace(world.customer(person(ours)), echoed_fields=("Nachname", "Telefon"))
    raw = send(publisher, topology, echoed)
    body = {k: v for k, v in AmeiseRecordChangedSchema().dump(world.customer(person(older))).items()
            if k != "echoed_fields"}                  # as a producer before the field was added sends it
    send(publisher, topology, body)
    handle = handler(world)

    with running(make_consumer(topology, handle, publisher, world)):
        wait_for(lambda: processed(world, [echoed, delta("customer", older)]), what="both deltas applied")

    assert json.loads(raw)["echoed_fields"] == ["Nachname", "Telefon"] and json.loads(raw)["schema_version"] == 1
    assert AmeiseRecordChangedSchema().load(json.loads(raw)) == echoed
    crm = {r["Kundennummer"]: r for r in world.zoho.records("Contacts")}
    assert (crm[ours]["Last_Name"], crm[ours]["Phone"]) == ("CRM", "crm")
    assert (crm[older]["Last_Name"], crm[older]["Phone"]) == (person(older)["Nachname"], person(older)["Telefon"])


def test_a_partial_batch_leaves_after_the_batch_wait(topology, publisher, world):
    records = [world.customer(person(f"50{i:08d}")) for i in range(3)]
    for record in records:
        send(publisher, topology, record)
    handle = handler(world)

    started = time.monotonic()
    with running(make_consumer(topology, handle, publisher, world, batch_size=100, batch_wait=0.3)):
        wait_for(lambda: processed(world, records), what="the partial batch")
        elapsed = time.monotonic() - started

    assert handle.sizes == [3]
    assert 0.3 <= elapsed < 2.0


def test_a_graceful_stop_sends_the_partial_batch_first(topology, publisher, world):
    records = [world.customer(person(f"50{i:08d}")) for i in range(3)]
    for record in records:
        send(publisher, topology, record)
    handle = handler(world)

    with running(make_consumer(topology, handle, publisher, world, batch_size=100, batch_wait=60)):
        wait_for(lambda: waiting(topology.ameise_to_crm) == 0, what="the consumer taking every message")
        assert handle.sizes == []  # the batch waits for more

    assert handle.sizes == [3]
    assert processed(world, records) and len(world.zoho.records("Contacts")) == 3
    assert waiting(topology.ameise_to_crm) == 0 and take_all(topology.dead_letters) == []


# ---------------------------------------------------------------- outcomes
def test_a_rejected_record_is_dead_lettered_with_code_and_field_and_the_rest_acked(topology, publisher, world):
    good = [world.customer(person("5000000001")), world.customer(person("5000000003"))]
    bad = world.customer(person("5000000002", Nachname=None))
    raw = {}
    for record in (good[0], bad, good[1]):
        raw[record.delta_id] = send(publisher, topology, record)

    with running(make_consumer(topology, handler(world), publisher, world)):
        wait_for(lambda: processed(world, good) and waiting(topology.dead_letters) == 1, what="the batch")

    [dead] = take_all(topology.dead_letters)
    assert dead.headers["x-error-kind"] == "rejected"
    assert dead.headers["x-error"] == "zoho MANDATORY_NOT_FOUND field=Last_Name: required field not found"
    assert dead.headers["x-original-routing-key"] == "ameise.customer.created"
    assert dead.body == raw[bad.delta_id]
    assert waiting(topology.ameise_to_crm) == 0
    [failed] = world.store.activities(result="error")
    assert (failed.direction, failed.action, failed.entity, failed.ameise_id, failed.event_id) == (
        "ameise_to_crm", "failed", "customer", "5000000002", bad.delta_id)
    message = failed.details.pop("message")
    assert failed.details == {"change": "created", "import_id": 1, "code": "MANDATORY_NOT_FOUND", "field": "Last_Name"}
    assert message["delta_id"] == bad.delta_id
    assert (failed.source, failed.attempt, failed.error_kind, failed.error_code, failed.error_field) == (
        "dailyup", 1, "rejected", "MANDATORY_NOT_FOUND", "Last_Name")
    # The good ones are attempts too, beside the handler's own steps (which have no attempt).
    assert {e.ameise_id for e in world.store.activities(result="ok") if e.attempt == 1} == {r.key for r in good}


def test_an_unavailable_crm_sends_the_batch_to_a_delayed_retry_and_nothing_is_lost(topology, publisher, world):
    records = [world.customer(person("5001234567")), world.contract(contract("1119876", "5001234567"))]
    for record in records:
        send(publisher, topology, record)
    world.zoho.fail_next(ZohoUnavailable("Service Unavailable", status=503, retry_after=0.01))
    handle = handler(world)

    started = time.monotonic()
    with running(make_consumer(topology, handle, publisher, world)):
        wait_for(lambda: processed(world, records), what="the second try")
        elapsed = time.monotonic() - started

    assert handle.sizes == [2, 2]
    assert 0.05 <= elapsed < 2.0, f"waited {elapsed:.1f} s"
    assert world.only("Deals")["Contact_Name"]["id"] == world.only("Contacts")["id"]
    assert take_all(topology.dead_letters) == [] and waiting(topology.ameise_to_crm) == 0
    retries = world.store.activities(action="retry")
    assert sorted(e.ameise_id for e in retries) == ["1119876", "5001234567"]
    assert {e.ameise_id: e.error for e in retries} == {
        "5001234567": "zoho 503: Service Unavailable",
        "1119876": "contract 1119876: its customer 5001234567 failed: zoho 503: Service Unavailable"}


def test_a_database_outage_sends_the_batch_to_a_delayed_retry_not_the_dead_letters(topology, publisher, world):
    records = [world.customer(person("5001234567"))]
    for record in records:
        send(publisher, topology, record)
    lost = OperationalError(None, None, Exception("server closed the connection unexpectedly"))
    handle = handler(world, lost)

    with running(make_consumer(topology, handle, publisher, world)):
        wait_for(lambda: processed(world, records), what="the second try")

    assert handle.sizes == [1, 1]
    assert take_all(topology.dead_letters) == [] and waiting(topology.ameise_to_crm) == 0
    assert world.only("Contacts")
    [retry] = world.store.activities(action="retry")
    assert retry.error == "database: OperationalError: server closed the connection unexpectedly"


def test_a_contract_waits_until_its_customer_reaches_the_crm(topology, publisher, world):
    world.snapshot.put("kunden", "5001234567", person("5001234567"))
    record = world.contract(contract("1119876", "5001234567"))
    send(publisher, topology, record)
    handle = handler(world)

    with running(make_consumer(topology, handle, publisher, world)):
        wait_for(lambda: len(handle.sizes) >= 2, what="a second try")
        world.store.save_link("customer", "Contacts", world.zoho.seed("Contacts", {"Last_Name": "Da"}), "5001234567")
        wait_for(lambda: processed(world, [record]), what="the contract")

    assert take_all(topology.dead_letters) == []
    assert world.store.activities(action="retry")[0].details["field"] == "Kundennummer"


def test_a_delta_delivered_again_does_not_reach_zoho_again(topology, publisher, world):
    record = world.customer(person("5001234567"))
    send(publisher, topology, record)
    send(publisher, topology, record)  # as after a lost acknowledgement
    handle = handler(world)

    with running(make_consumer(topology, handle, publisher, world, batch_size=1)):
        wait_for(lambda: len(handle.sizes) == 2, what="both deliveries")

    assert [len(w.records) for w in world.zoho.writes] == [1]
    assert waiting(topology.ameise_to_crm) == 0 and take_all(topology.dead_letters) == []


# ---------------------------------------------------------------- messages the handler never sees
@pytest.mark.parametrize(("raw", "content_type", "kind"), [
    pytest.param(json.dumps({"schema_version": 1, "delta_id": "x", "import_id": "1", "delivered_on": "2025-03-01",
                             "entity": "customer", "change": "created", "key": "5001234567"}).encode(),
                 "application/json", "contract-violation", id="import_id-as-string"),
    pytest.param(json.dumps({**AmeiseRecordChangedSchema().dump(delta("customer", "1")), "entity": "lead"}).encode(),
                 "application/json", "contract-violation", id="unknown-entity"),
    pytest.param(b'{"schema_version": 1, "delta_id": ', "application/json", "undecodable", id="invalid-json"),
    pytest.param(b"customer 5001234567 created", "text/plain", "undecodable", id="text-plain"),
])
def test_a_broken_message_is_dead_lettered_at_once_and_the_batch_goes_on(topology, publisher, world, raw,
                                                                         content_type, kind):
    record = world.customer(person("5001234567"))
    send(publisher, topology, raw, content_type=content_type)
    send(publisher, topology, record)
    handle = handler(world)

    with running(make_consumer(topology, handle, publisher, world)):
        wait_for(lambda: processed(world, [record]), what="the valid delta")

    assert handle.sizes == [1]
    [dead] = take_all(topology.dead_letters)
    assert dead.headers["x-error-kind"] == kind and dead.body == raw
    assert waiting(topology.ameise_to_crm) == 0


def test_an_unexpected_error_dead_letters_the_batch_and_the_next_batch_is_handled(topology, publisher, world):
    first = [world.customer(person(f"50{i:08d}")) for i in range(2)]
    later = world.customer(person("5100000000"))
    for record in first:
        send(publisher, topology, record)
    handle = handler(world, KeyError("Kundennummer"))

    with running(make_consumer(topology, handle, publisher, world, batch_size=2)):
        wait_for(lambda: waiting(topology.dead_letters) == 2, what="the dead letters")
        send(publisher, topology, later)
        wait_for(lambda: processed(world, [later]), what="the next batch")

    dead = take_all(topology.dead_letters)
    assert [d.headers["x-error-kind"] for d in dead] == ["error", "error"]
    assert dead[0].headers["x-error"] == "KeyError: 'Kundennummer'"
    assert not processed(world, first) and waiting(topology.ameise_to_crm) == 0
    assert len(world.store.activities(action="failed")) == 2


def test_a_crm_that_needs_a_reconnect_parks_the_deltas_without_using_up_retries(topology, publisher, world):
    from syncbridge.adapters.zoho import ZohoReconnectNeeded

    record = world.customer(person("5001234567"))
    send(publisher, topology, record)
    # More failures than there are retry delays (three): counted, they would end in the dead letters.
    world.zoho.fail_next(ZohoReconnectNeeded("refresh token revoked", code="invalid_grant"), count=5)
    handle = handler(world)

    with running(make_consumer(topology, handle, publisher, world)):
        wait_for(lambda: processed(world, [record]), timeout=15, what="the delta after the reconnect")

    assert take_all(topology.dead_letters) == [] and waiting(topology.ameise_to_crm) == 0
    assert len(world.store.activities(action="waiting")) == 5
    assert world.store.activities(action="retry") == []


# ---------------------------------------------------------------- several deltas in one message
def test_messages_of_several_deltas_are_batched_by_delta_and_each_acked_once_all_its_deltas_are(topology, publisher,
                                                                                                 world):
    records = [world.customer(person(f"50{i:08d}")) for i in range(250)]
    for start in range(0, 250, 100):
        send_together(publisher, topology, *records[start:start + 100], message_id=f"m-{start}")
    handle = handler(world)

    # Batches of 60 cut through the messages: a message is acked when the batch of its last delta is done.
    with running(make_consumer(topology, handle, publisher, world, batch_size=60, batch_wait=1.0)):
        wait_for(lambda: processed(world, records), what="every delta applied")

    assert handle.sizes == [60, 60, 60, 60, 10]
    assert len(world.zoho.records("Contacts")) == 250
    assert waiting(topology.ameise_to_crm) == 0 and take_all(topology.dead_letters) == []
    attempts = [e for e in world.store.activities(result="ok", limit=1000) if e.attempt == 1]
    assert sorted(e.event_id for e in attempts) == sorted(r.delta_id for r in records)


def test_a_delta_of_a_message_that_fails_goes_alone_to_its_retry_or_the_dead_letters(topology, publisher, world):
    good = world.customer(person("5000000001"))
    rejected = world.customer(person("5000000002", Nachname=None))
    broken = {**AmeiseRecordChangedSchema().dump(world.customer(person("5000000003"))), "key": "50 03"}
    later = world.contract(contract("1119876", "5000000001"))
    raw = send_together(publisher, topology, good, rejected, broken, later)
    world.zoho.fail_next(ZohoUnavailable("Service Unavailable", status=503))
    handle = handler(world)

    with running(make_consumer(topology, handle, publisher, world)):
        wait_for(lambda: processed(world, [good, later]) and waiting(topology.dead_letters) == 2,
                 what="the deltas settled")

    dead = {d.headers["x-error-kind"]: d for d in take_all(topology.dead_letters)}
    assert set(dead) == {"rejected", "contract-violation"}
    # Each dead letter is the one delta, under its own routing key, as if it had been sent alone.
    assert dead["contract-violation"].body == raw[2] and "key" in dead["contract-violation"].headers["x-error"]
    assert dead["contract-violation"].headers["x-original-routing-key"] == "ameise.customer.created"
    # The outage sent the other three to their retries one by one; the rejected one died on its second try.
    assert dead["rejected"].body == raw[1] and dead["rejected"].properties["message_id"] == rejected.delta_id
    assert dead["rejected"].headers["x-original-routing-key"] == "ameise.customer.created"
    assert dead["rejected"].headers["x-retries"] == 1
    assert handle.sizes[0] == 3 and sum(handle.sizes) == 6
    retries = world.store.activities(action="retry")
    assert sorted((e.event_id, e.attempt) for e in retries) == sorted(
        (r.delta_id, 1) for r in (good, rejected, later))
    assert sorted(e.event_id for e in world.store.activities(result="ok") if e.attempt == 2) == sorted(
        [good.delta_id, later.delta_id])
    assert world.only("Deals")["Contact_Name"]["id"] == world.only("Contacts")["id"]
    assert waiting(topology.ameise_to_crm) == 0


@pytest.mark.parametrize("body", [
    pytest.param({"schema_version": 2, "deltas": [{"delta_id": "x"}]}, id="newer-version"),
    pytest.param({"schema_version": 1, "deltas": []}, id="no-delta"),
    pytest.param({"schema_version": 1, "deltas": "5001234567"}, id="not-a-list"),
])
def test_a_message_of_deltas_whose_envelope_is_broken_is_dead_lettered_whole(topology, publisher, world, body):
    record = world.customer(person("5001234567"))
    publisher.publish(topology.deltas, "ameise.deltas", body, message_id="broken")
    send_together(publisher, topology, record)
    handle = handler(world)

    with running(make_consumer(topology, handle, publisher, world)):
        wait_for(lambda: processed(world, [record]), what="the valid delta")

    [dead] = take_all(topology.dead_letters)
    assert dead.headers["x-error-kind"] == "contract-violation" and "AmeiseDeltas v1" in dead.headers["x-error"]
    assert json.loads(dead.body) == body and dead.headers["x-original-routing-key"] == "ameise.deltas"
    assert handle.sizes == [1] and waiting(topology.ameise_to_crm) == 0


class Acks:
    """A received message that counts its acks."""

    def __init__(self) -> None:
        self.acks = 0
        self.delivery_info = {"exchange": "sb.deltas", "routing_key": "ameise.deltas"}
        self.properties = {"message_id": "m-7"}
        self.headers = {"x-retries": 2}

    def ack(self) -> None:
        self.acks += 1


def test_a_message_is_acked_once_when_its_last_delta_is_settled_and_a_delta_settles_once():
    message = Acks()
    settling = Settling(message, 3)
    parts = [DeltaOfMessage(settling, delta, i) for i, delta in enumerate([
        {"delta_id": "1:customer:1", "entity": "customer", "change": "created", "key": "1"},
        {"delta_id": "1:contract:2", "entity": "contract", "change": "deleted", "key": "2"},
        {"entity": "lead", "key": "3"}])]

    parts[0].ack()
    parts[0].ack()
    parts[2].ack()
    assert message.acks == 0
    parts[1].ack()
    assert message.acks == 1

    assert [p.delivery_info["routing_key"] for p in parts] == [
        "ameise.customer.created", "ameise.contract.deleted", "ameise.deltas"]
    assert [p.properties["message_id"] for p in parts] == ["1:customer:1", "1:contract:2", "m-7#2"]
    assert parts[1].headers == {"x-retries": 2} and parts[1].delivery_info["exchange"] == "sb.deltas"
    assert json.loads(parts[1].body) == {"delta_id": "1:contract:2", "entity": "contract", "change": "deleted",
                                         "key": "2"}
