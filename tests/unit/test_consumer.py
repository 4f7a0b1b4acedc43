"""The CRM -> Ameise consumer on kombu's in-process broker (memory://), driven without threads.

Each test gets its own namespace (exchanges and queues), a real Publisher on
memory://, a MemoryStore and a handler that is a plain function.  The consumer
runs inside ConsumerMixin's own ``Consumer()`` context and takes exactly the
deliveries a test expects; afterwards every unacknowledged message is given
back, as RabbitMQ does when a consumer's connection closes, so the work queue
shows exactly what the consumer did not acknowledge.
"""
from __future__ import annotations

import pickle
import time
from datetime import datetime

import pytest
from sqlalchemy.exc import OperationalError

from producers.memory import MemoryPublisher
from producers.publisher import BrokerUnavailable
from producers.topology import build_topology
from simulators.fakes.store import MemoryStore
from syncbridge.adapters.ameise import AmeiseReconnectNeeded, AmeiseRejected, AmeiseUnavailable
from syncbridge.adapters.zoho import ZohoRejected, ZohoUnavailable
from syncbridge.errors import RecordRejected
from syncbridge.messages import SyncCrmRecordToAmeise
from tests.support.queues import (
    MEMORY,
    RECORD_ID,
    ROUTING_KEY,
    FailingPublisher,
    command_of,
    deliver,
    event_body,
    handler,
    make_consumer,
    send,
    take_all,
    waiting,
)


# ---------------------------------------------------------------- fixtures and helpers
@pytest.fixture
def store():
    return MemoryStore()




















# ---------------------------------------------------------------- the consumer's set-up
def test_consumer_accepts_only_json_with_the_configured_prefetch(topology, publisher, store):
    consumer = make_consumer(topology, handler(), publisher, store, prefetch_count=3)
    with consumer.Consumer() as (_connection, _channel, consumers):
        [kombu_consumer] = consumers
        assert kombu_consumer.accept == {"application/json"}
        assert kombu_consumer.prefetch_count == 3
        assert [q.name for q in kombu_consumer.queues] == [topology.crm_to_ameise.name]


# ---------------------------------------------------------------- a valid message
def test_a_valid_message_is_handled_and_acked(topology, publisher, store):
    handle = handler()
    body = event_body()
    send(publisher, topology, body)

    deliver(make_consumer(topology, handle, publisher, store), 1)

    assert handle.calls == [SyncCrmRecordToAmeise("Contacts", RECORD_ID, body["event_id"],
                                                  datetime.fromisoformat(body["received_at"]), "update")]
    assert waiting(topology.crm_to_ameise) == 0  # acked: nothing came back on recovery
    assert take_all(topology.dead_letters) == []
    # The consumer logs the attempt (the handler its steps): where it came from, when, which try, how long.
    [attempt] = store.activities()
    assert (attempt.action, attempt.result, attempt.event_id, attempt.zoho_id) == \
        ("updated", "ok", body["event_id"], RECORD_ID)
    assert attempt.source == body["source"] and attempt.attempt == 1 and attempt.duration_ms >= 0
    assert attempt.received_at == datetime.fromisoformat(body["received_at"])
    assert attempt.details["message"]["record_id"] == RECORD_ID and attempt.error_kind is None


def test_additive_fields_of_a_newer_producer_are_tolerated(topology, publisher, store):
    handle = handler()
    body = event_body(new_field_of_v1_1="ignored")
    send(publisher, topology, body)

    deliver(make_consumer(topology, handle, publisher, store), 1)

    assert handle.calls == [command_of(body)]
    assert waiting(topology.crm_to_ameise) == 0


# ---------------------------------------------------------------- contract violations
@pytest.mark.parametrize(
    ("field", "changes"),
    [
        pytest.param("record_id", {"record_id": int(RECORD_ID)}, id="record_id-as-int"),
        pytest.param("record_id", {"record_id": "abc"}, id="record_id-not-digits"),
        pytest.param("schema_version", {"schema_version": 2}, id="newer-schema-version"),
        pytest.param("schema_version", {"drop": ("schema_version",)}, id="schema-version-missing"),
        pytest.param("module", {"drop": ("module",)}, id="module-missing"),
        pytest.param("event_id", {"drop": ("event_id",)}, id="event_id-missing"),
        pytest.param("module", {"module": "Contacts; DROP TABLE"}, id="module-not-an-api-name"),
        pytest.param("received_at", {"received_at": "2024-06-11T12:00:00"}, id="received_at-naive"),
    ],
)
def test_a_message_violating_its_contract_is_dead_lettered_unchanged(topology, publisher, store, field, changes):
    handle = handler()
    body = event_body(**changes)
    raw = send(publisher, topology, body, message_id="msg-contract")

    deliver(make_consumer(topology, handle, publisher, store), 1)

    assert handle.calls == []
    [dead] = take_all(topology.dead_letters)
    assert dead.headers["x-error-kind"] == "contract-violation"
    assert field in dead.headers["x-error"]
    assert dead.headers["x-original-routing-key"] == ROUTING_KEY
    assert dead.headers["x-original-exchange"] == topology.events.name
    assert dead.headers["x-attempts"] == 1
    assert dead.body == raw
    assert dead.content_type == "application/json"
    assert dead.properties["message_id"] == "msg-contract"
    assert dead.delivery_info["routing_key"] == ROUTING_KEY  # replayable under its original key
    assert waiting(topology.crm_to_ameise) == 0  # acked once dead-lettered


@pytest.mark.parametrize("raw", [b"[]", b'"Contacts"', b"null", b"42"], ids=["list", "string", "null", "number"])
def test_json_that_is_not_an_object_violates_the_contract(topology, publisher, store, raw):
    handle = handler()
    send(publisher, topology, raw)

    deliver(make_consumer(topology, handle, publisher, store), 1)

    assert handle.calls == []
    [dead] = take_all(topology.dead_letters)
    assert dead.headers["x-error-kind"] == "contract-violation"
    assert dead.body == raw
    assert waiting(topology.crm_to_ameise) == 0


def test_a_replayed_dead_letter_that_fails_again_keeps_its_first_error(topology, publisher, store):
    first = {"x-first-error": "the first reason", "x-first-failed-at": "2024-06-11T10:00:00+00:00", "x-attempts": 1}
    send(publisher, topology, event_body(schema_version=2), headers=first)

    deliver(make_consumer(topology, handler(), publisher, store), 1)

    [dead] = take_all(topology.dead_letters)
    assert dead.headers["x-attempts"] == 2
    assert dead.headers["x-first-error"] == "the first reason"
    assert dead.headers["x-first-failed-at"] == "2024-06-11T10:00:00+00:00"
    assert "schema_version" in dead.headers["x-error"]


# ---------------------------------------------------------------- undecodable bodies
@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        pytest.param(b"Contacts 4150868000000376008 changed", "text/plain", id="text-plain"),
        pytest.param(b'{"schema_version": 1, "module": ', "application/json", id="invalid-json"),
        pytest.param(b"\xff\xfe\x00{", "application/json", id="not-utf8"),
        pytest.param(pickle.dumps({"module": "Contacts"}), "application/x-python-serialize", id="pickle-refused"),
    ],
)
def test_an_undecodable_body_is_dead_lettered_unchanged(topology, publisher, store, raw, content_type):
    handle = handler()
    send(publisher, topology, raw, message_id="msg-undecodable", content_type=content_type)

    deliver(make_consumer(topology, handle, publisher, store), 1)

    assert handle.calls == []
    [dead] = take_all(topology.dead_letters)
    assert dead.headers["x-error-kind"] == "undecodable"
    assert dead.headers["x-error"].startswith("cannot decode message")
    assert dead.headers["x-original-routing-key"] == ROUTING_KEY
    assert dead.body == raw
    assert dead.content_type == content_type
    assert dead.properties["message_id"] == "msg-undecodable"
    assert waiting(topology.crm_to_ameise) == 0


# ---------------------------------------------------------------- rejected by a system or our rules
@pytest.mark.parametrize(
    "error",
    [
        RecordRejected("Kundennummer 5001234567 belongs to another record", field="Kundennummer"),
        RecordRejected("CRM module 'Leads' is not synced"),
        AmeiseRejected("Nachname fehlt", status=422, code="VALIDATION", field="Nachname"),
        ZohoRejected("invalid record id", status=400, code="INVALID_DATA"),
    ],
    ids=["sync-rejected-field", "sync-rejected", "ameise-422", "zoho-400"],
)
def test_a_rejected_record_is_dead_lettered_and_logged_as_failed(topology, publisher, store, error):
    handle = handler(error)
    body = event_body()
    raw = send(publisher, topology, body)

    deliver(make_consumer(topology, handle, publisher, store), 1)

    assert handle.calls == [command_of(body)]  # tried once, not retried
    [dead] = take_all(topology.dead_letters)
    assert dead.headers["x-error-kind"] == "rejected"
    assert dead.headers["x-error"] == error.describe()
    assert dead.body == raw
    assert waiting(topology.crm_to_ameise) == 0
    [entry] = store.activities()
    assert (entry.direction, entry.action, entry.result) == ("crm_to_ameise", "failed", "error")
    assert (entry.zoho_module, entry.zoho_id, entry.event_id) == ("Contacts", RECORD_ID, body["event_id"])
    assert entry.error == error.describe()
    assert str(error) in entry.error
    assert {k: v for k, v in entry.details.items() if k != "message"} == ({"field": error.field} if error.field else {})
    assert entry.details["message"]["event_id"] == body["event_id"]
    assert (entry.error_kind, entry.error_code, entry.error_field) == ("rejected", error.code, error.field)
    assert entry.attempt == 1 and entry.source == body["source"]


# ---------------------------------------------------------------- a bug of ours
def test_an_unexpected_error_is_dead_lettered_and_the_next_message_is_handled(topology, publisher, store):
    handle = handler(ValueError("boom"), None)
    broken, fine = event_body(), event_body()
    raw = send(publisher, topology, broken)
    send(publisher, topology, fine)

    deliver(make_consumer(topology, handle, publisher, store), 2)

    assert handle.calls == [command_of(broken), command_of(fine)]
    [dead] = take_all(topology.dead_letters)
    assert dead.headers["x-error-kind"] == "error"
    assert dead.headers["x-error"] == "ValueError: boom"
    assert dead.properties["message_id"] == broken["event_id"]
    assert dead.body == raw
    assert waiting(topology.crm_to_ameise) == 0
    # Newest first: the second message's success, then the first's failure, each an attempt.
    ok, entry = store.activities()
    assert (entry.action, entry.result, entry.event_id, entry.error) == ("failed", "error", broken["event_id"], "ValueError: boom")
    assert entry.error_kind == "error" and entry.attempt == 1
    assert (ok.result, ok.event_id) == ("ok", fine["event_id"])


def test_a_failing_activity_log_does_not_stop_the_dead_letter(topology, publisher):
    class BrokenStore(MemoryStore):
        def log(self, entry):
            raise OSError("disk full")

    handle = handler(RecordRejected("no"))
    send(publisher, topology, event_body())

    deliver(make_consumer(topology, handle, publisher, BrokenStore()), 1)

    [dead] = take_all(topology.dead_letters)
    assert dead.headers["x-error-kind"] == "rejected"
    assert waiting(topology.crm_to_ameise) == 0


# ---------------------------------------------------------------- unavailable: try again later
@pytest.fixture
def fast(namespace):
    """A topology whose retry delays are short enough for a unit test."""
    return build_topology(namespace, retry_delays=(0.05, 0.1))


@pytest.fixture
def fast_publisher(fast):
    publisher = MemoryPublisher(fast, MEMORY)
    yield publisher
    publisher.close()


@pytest.mark.parametrize(
    ("error", "delay"),
    [
        pytest.param(ZohoUnavailable("Too Many Requests", status=429), 0.05, id="first-delay"),
        pytest.param(AmeiseUnavailable("Service Unavailable", status=503, retry_after=0.08), 0.1,
                     id="retry-after-honoured"),
    ],
)
def test_an_unavailable_system_sends_the_message_to_a_delayed_retry(fast, fast_publisher, store, error, delay):
    handle = handler(error, None)
    body = event_body()
    send(fast_publisher, fast, body)
    consumer = make_consumer(fast, handle, fast_publisher, store)

    started = time.monotonic()
    deliver(consumer, 2)  # the first delivery, then the retry once its delay has passed
    elapsed = time.monotonic() - started

    assert handle.calls == [command_of(body), command_of(body)]
    assert delay <= elapsed < 1.5
    assert take_all(fast.dead_letters) == []
    assert waiting(fast.crm_to_ameise) == 0  # acked after the second, successful try
    done, entry = store.activities()        # newest first: the retry's success, then the first attempt
    assert (entry.action, entry.result, entry.zoho_id, entry.event_id) == ("retry", "error", RECORD_ID, body["event_id"])
    assert entry.error == error.describe()
    assert (entry.attempt, entry.error_kind, done.attempt, done.result) == (1, "unavailable", 2, "ok")


def test_a_database_that_refuses_connections_sends_the_message_to_a_delayed_retry_not_the_dead_letters(
        fast, fast_publisher, store):
    # What psycopg raises through SQLAlchemy when PostgreSQL has no connection slot left.
    refused = OperationalError(None, None, Exception(
        'connection to server at "127.0.0.1", port 5432 failed: FATAL:  sorry, too many clients already\n'))
    handle = handler(refused, None)
    body = event_body()
    send(fast_publisher, fast, body)

    deliver(make_consumer(fast, handle, fast_publisher, store), 2)   # the first delivery, then its retry

    assert handle.calls == [command_of(body), command_of(body)]
    assert take_all(fast.dead_letters) == []
    assert waiting(fast.crm_to_ameise) == 0
    done, entry = store.activities()
    assert (entry.action, entry.result, entry.error_kind, done.result) == ("retry", "error", "unavailable", "ok")
    assert entry.error == "database: OperationalError: connection to server at \"127.0.0.1\", port 5432 failed: " \
                          "FATAL:  sorry, too many clients already"


def test_after_the_last_retry_the_message_goes_to_the_dead_letters(fast, fast_publisher, store):
    outage = AmeiseUnavailable("Bad Gateway", status=502)
    handle = handler(outage)
    body = event_body()
    send(fast_publisher, fast, body)

    deliver(make_consumer(fast, handle, fast_publisher, store), 3)   # the first try and two retries

    assert len(handle.calls) == 3
    [dead] = take_all(fast.dead_letters)
    assert dead.headers["x-error-kind"] == "unavailable" and dead.headers["x-retries"] == 2
    assert "still unavailable after 2 retries" in dead.headers["x-error"]
    assert dead.headers["x-first-error"] == dead.headers["x-last-error"] == outage.describe()
    assert dead.headers["x-original-routing-key"] == ROUTING_KEY and dead.payload == body
    assert waiting(fast.crm_to_ameise) == 0
    assert [(e.action, e.attempt) for e in reversed(store.activities())] == \
        [("retry", 1), ("retry", 2), ("dead_lettered", 3)]


def test_a_lost_connection_to_ameise_keeps_the_message_waiting_without_counting(fast, fast_publisher, store):
    lost = AmeiseReconnectNeeded("refresh token revoked", code="invalid_grant")
    handle = handler(lost, lost, lost, lost, None)   # more waits than there are retries
    body = event_body()
    send(fast_publisher, fast, body)

    deliver(make_consumer(fast, handle, fast_publisher, store), 5)

    assert len(handle.calls) == 5                      # handled at last, once reconnected
    assert take_all(fast.dead_letters) == []
    assert waiting(fast.crm_to_ameise) == 0
    # Waiting uses up no retry: every attempt counts as the first; the last one synced.
    assert [(e.action, e.attempt) for e in reversed(store.activities())] == [("waiting", 1)] * 4 + [("updated", 1)]
    assert {e.error_kind for e in store.activities() if e.result == "error"} == {"reconnect_needed"}


# ---------------------------------------------------------------- the dead-letter publish fails
def _contract_violation(publisher, topology):
    return handler(), send(publisher, topology, event_body(record_id=42))


def _undecodable(publisher, topology):
    return handler(), send(publisher, topology, b"not json", content_type="text/plain")


def _rejected(publisher, topology):
    return handler(AmeiseRejected("Nachname fehlt", status=422)), send(publisher, topology, event_body())


def _unexpected(publisher, topology):
    return handler(KeyError("Last_Name")), send(publisher, topology, event_body())


@pytest.mark.parametrize("case", [_contract_violation, _undecodable, _rejected, _unexpected],
                         ids=["contract", "undecodable", "rejected", "error"])
def test_a_message_is_not_acked_when_its_dead_letter_is_not_confirmed(topology, publisher, store, case):
    handle, raw = case(publisher, topology)
    failing = FailingPublisher()
    consumer = make_consumer(topology, handle, failing, store)

    with pytest.raises(BrokerUnavailable):
        deliver(consumer, 1)

    assert len(failing.attempts) == 1  # the consumer did try to dead-letter it
    assert take_all(topology.dead_letters) == []
    assert waiting(topology.crm_to_ameise) == 1  # not acked: it comes back

    # Once the broker confirms again, the redelivered message goes to the dead letters.
    consumer.publisher = publisher
    deliver(consumer, 1)

    [dead] = take_all(topology.dead_letters)
    assert dead.body == raw
    assert dead.headers["x-error-kind"] == failing.attempts[0]["headers"]["x-error-kind"]
    assert waiting(topology.crm_to_ameise) == 0
