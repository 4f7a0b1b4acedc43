"""Dead letters for ops on kombu's in-process broker (memory://) and a SQLite file.

Messages are dead-lettered by the real CrmToAmeiseConsumer (or published to
``{ns}.dead`` with the headers RabbitMQ gives), archived by the real archiver,
then listed, replayed and discarded through :class:`syncbridge.handlers.dead_letters.DeadLetterOps`
and the ``syncbridge dlq`` command.
"""
from __future__ import annotations

import json
import pickle
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from kombu import Connection

from consumers.dead_letter_archive import DeadLetterArchiver
from producers.publisher import Publisher
from syncbridge.adapters.db import migrate
from syncbridge.adapters.db.dead_letters import SqlDeadLetterStore
from syncbridge.cli import main
from syncbridge.errors import RecordRejected
from syncbridge.handlers.dead_letters import (
    ArrivedMessage,
    DeadLetterOps,
    InvalidFilter,
    Selection,
    SelectionError,
    archive_dead_letter,
    contract_problem,
    dead_letter_of,
    parse_filter,
    replay_headers,
)
from syncbridge.ports import DeadLetterFilter
from tests.support.dead_letters import KUNDENNUMMER, by_rabbitmq, delta_body, ours
from tests.support.queues import (
    MEMORY,
    RECORD_ID,
    ROUTING_KEY,
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
def ops(letters, store, publisher, topology):
    return DeadLetterOps(letters, store, publisher=publisher, topology=topology)


def archive_all(topology, letters, deliveries: int, archive=None) -> None:
    """Let the archiver take exactly ``deliveries`` messages of the dead-letter queue."""
    archiver = DeadLetterArchiver(Connection(MEMORY, transport_options={"polling_interval": 0.01}), topology,
                                  archive or (lambda message: archive_dead_letter(letters, topology, message)),
                                  retry_delay=0.01)
    deliver(archiver, deliveries)


def dead_letter_by_consumer(publisher, topology, store, body, error=None) -> None:
    """Send ``body`` to the CRM -> Ameise consumer, which dead-letters it (contract, or ``error`` from the handler)."""
    send(publisher, topology, body)
    deliver(make_consumer(topology, handler(error) if error else handler(), publisher, store), 1)


def rejected_and_invalid(publisher, topology, store, letters):
    """A rejected and a contract-violating CRM event, dead-lettered by the consumer and archived: their rows."""
    rejected, invalid = event_body(), event_body(record_id="abc")
    dead_letter_by_consumer(publisher, topology, store, rejected,
                            RecordRejected("Kundennummer 5001234567 belongs to another record", field="Kundennummer"))
    dead_letter_by_consumer(publisher, topology, store, invalid)
    archive_all(topology, letters, 2)
    by_event = {letter.message_id: letter for letter in letters.find()}
    return by_event[rejected["event_id"]], by_event[invalid["event_id"]]








def activities(store, action):
    return store.activities(direction="system", action=action)


# ---------------------------------------------------------------- archiving
def test_the_archiver_keeps_what_the_consumer_dead_lettered(publisher, topology, store, letters):
    rejected, invalid = event_body(), event_body(record_id="abc")
    error = RecordRejected("Kundennummer 5001234567 belongs to another record", field="Kundennummer")
    raw = send(publisher, topology, rejected)
    deliver(make_consumer(topology, handler(error), publisher, store), 1)
    dead_letter_by_consumer(publisher, topology, store, invalid)
    before = datetime.now(UTC)

    archive_all(topology, letters, 2)

    assert waiting(topology.dead_letters) == 0          # acked once stored
    assert letters.count() == 2
    [letter] = letters.find(DeadLetterFilter(kind="rejected"))
    assert (letter.queue, letter.kind, letter.state, letter.record) == ("crm-to-ameise", "rejected", "dead", RECORD_ID)
    assert (letter.exchange, letter.routing_key) == (topology.events.name, ROUTING_KEY)
    assert (letter.message_id, letter.content_type, letter.body) == (rejected["event_id"], "application/json", raw)
    assert letter.reason == letter.first_error == error.describe()
    assert letter.attempts == 1 and letter.replays == 0
    assert before - timedelta(seconds=5) < letter.dead_lettered_at <= letter.archived_at
    assert letter.first_failed_at == letter.dead_lettered_at
    assert letter.headers["x-error-kind"] == "rejected"
    [contract] = letters.find(DeadLetterFilter(kind="contract"))
    assert contract.reason.startswith("contract CrmRecordChanged v1 violated") and "record_id" in contract.reason
    assert contract.record == "abc"                     # the id as sent, to find it by


def test_a_redelivered_dead_letter_is_archived_once(topology, letters):
    message = ours(ROUTING_KEY, event_body(), namespace=topology.namespace)
    redelivered = replace(message, headers={**message.headers, "x-delivery-count": 1})

    first = archive_dead_letter(letters, topology, message)
    second = archive_dead_letter(letters, topology, redelivered)
    # A message that died again (another dead-lettering) is another row.
    again = archive_dead_letter(letters, topology, replace(message, headers={**message.headers, "x-attempts": 2}))

    assert first == second != again
    assert letters.count() == 2


def test_the_same_dead_letter_delivered_twice_through_the_broker_is_one_row(publisher, topology, letters):
    message = ours(ROUTING_KEY, event_body(), namespace=topology.namespace)
    for _ in range(2):
        publisher.publish(topology.dead, ROUTING_KEY, message.body, message_id=message.message_id,
                          headers=message.headers)

    archive_all(topology, letters, 2)

    assert letters.count() == 1 and waiting(topology.dead_letters) == 0


@pytest.mark.parametrize(("raw", "content_type"), [
    pytest.param(pickle.dumps({"module": "Contacts"}), "application/x-python-serialize", id="pickle"),
    pytest.param(b"\xff\xfe\x00{", "application/json", id="not-utf8"),
    pytest.param(b"Contacts changed", "text/plain", id="text"),
])
def test_an_undecodable_dead_letter_is_archived_byte_for_byte_and_never_decoded(publisher, topology, store, letters,
                                                                                 raw, content_type):
    send(publisher, topology, raw, message_id="msg-undecodable", content_type=content_type)
    deliver(make_consumer(topology, handler(), publisher, store), 1)

    archive_all(topology, letters, 1)

    [letter] = letters.find()
    assert (letter.kind, letter.body, letter.content_type) == ("undecodable", raw, content_type)
    assert letter.record is None and letter.queue == "crm-to-ameise"
    assert waiting(topology.dead_letters) == 0           # archived, not sent round again


def test_a_message_that_cannot_be_stored_stays_in_the_queue_until_it_can(publisher, topology, tmp_path):
    url = f"sqlite:///{tmp_path}/not-yet-migrated.db"
    later = SqlDeadLetterStore.from_url(url)
    publisher.publish(topology.dead, ROUTING_KEY, json.dumps(event_body()).encode(), message_id="m1")
    archiver = DeadLetterArchiver(Connection(MEMORY, transport_options={"polling_interval": 0.01}), topology,
                                  lambda message: archive_dead_letter(later, topology, message), retry_delay=0.01)

    with archiver.Consumer() as (connection, channel, _consumers):
        try:
            for _ in range(2):                               # the first try, then the message put back
                connection.drain_events(timeout=2)
        finally:
            channel.basic_recover(requeue=True)

    assert waiting(topology.dead_letters) == 1           # not acked, not lost
    migrate.upgrade(url)
    archive_all(topology, later, 1)
    assert [letter.message_id for letter in later.find()] == ["m1"]
    later.engine.dispose()


def test_a_dead_letter_of_rabbitmqs_delivery_limit(topology):
    at = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)

    letter = dead_letter_of(by_rabbitmq(topology.namespace, event_body(), at=at), topology)

    assert (letter.kind, letter.reason, letter.queue, letter.record) == (
        "delivery_limit", "delivery limit exceeded", "crm-to-ameise", RECORD_ID)
    assert (letter.exchange, letter.routing_key, letter.dead_lettered_at) == (topology.events.name, ROUTING_KEY, at)
    assert letter.headers["x-death"][0]["time"] == at.isoformat()   # kept, as JSON can hold it


def test_headers_of_retries_and_unknown_ones_are_read_and_kept(topology):
    at = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    message = by_rabbitmq(topology.namespace, event_body(), at=at, **{
        "x-retries": 4, "x-last-error": "Ameise: 503 Service Unavailable", "x-first-error": "Ameise: 502 Bad Gateway",
        "x-first-failed-at": "2026-12-01T07:00:00+00:00", "x-tenant": "broker-1"})

    letter = dead_letter_of(message, topology)

    assert letter.reason == "delivery limit exceeded; last error: Ameise: 503 Service Unavailable"
    assert letter.first_error == "Ameise: 502 Bad Gateway"
    assert letter.first_failed_at == datetime(2026, 12, 1, 7, tzinfo=UTC)
    assert letter.headers["x-tenant"] == "broker-1" and letter.headers["x-retries"] == 4


def test_the_later_of_our_and_rabbitmqs_dead_lettering_explains_it(topology):
    ours_at = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    message = ours(ROUTING_KEY, event_body(), at=ours_at, namespace=topology.namespace)
    death = {"reason": "delivery_limit", "queue": f"{topology.namespace}.crm-to-ameise", "count": 1,
             "exchange": topology.events.name, "routing-keys": [ROUTING_KEY]}

    older = dead_letter_of(replace(message, headers={**message.headers, "x-death": [
        {**death, "time": ours_at - timedelta(hours=1)}]}), topology)
    newer = dead_letter_of(replace(message, headers={**message.headers, "x-death": [
        {**death, "time": ours_at + timedelta(hours=1)}]}), topology)

    assert (older.kind, older.reason) == ("rejected", "rejected reason")
    assert newer.kind == "delivery_limit" and newer.reason.startswith("delivery limit exceeded")


def test_a_dead_letter_without_any_reason_is_kept_as_unknown(topology):
    message = ArrivedMessage("ameise.customer.changed", json.dumps(delta_body()).encode(), None, None, {})

    letter = dead_letter_of(message, topology)

    assert (letter.kind, letter.queue, letter.record) == ("unknown", "ameise-to-crm", KUNDENNUMMER)
    assert letter.reason == "dead-lettered without a reason"
    assert (letter.content_type, letter.message_id, letter.exchange) == ("application/octet-stream", None, "")


# ---------------------------------------------------------------- list and filters
def test_list_filters_by_queue_kind_record_time_and_state(topology, letters, ops):
    now = datetime.now(UTC)
    crm = archive_dead_letter(letters, topology, ours(ROUTING_KEY, event_body(), at=now - timedelta(days=2),
                                                      namespace=topology.namespace))
    delta = archive_dead_letter(letters, topology, ours("ameise.customer.changed", delta_body(),
                                                        kind="contract-violation",
                                                        at=now - timedelta(days=1), namespace=topology.namespace))
    contract = archive_dead_letter(letters, topology, ours("ameise.contract.created", delta_body("V-77", entity="contract"),
                                                           kind="error", at=now, namespace=topology.namespace))
    ops.discard(Selection((contract,)), by="anna")

    def ids(**raw) -> list[int]:
        return [letter.id for letter in ops.find(parse_filter(**raw))]

    assert ids() == [contract, delta, crm]                          # newest first
    assert ids(queue="crm-to-ameise") == [crm]
    assert ids(queue="ameise-to-crm") == [contract, delta]
    assert ids(kind="contract-violation") == [delta] and ids(kind="contract") == [delta]   # the older name too
    assert ids(record=RECORD_ID) == [crm] and ids(record=KUNDENNUMMER) == [delta] and ids(record="V-77") == [contract]
    assert ids(since=(now - timedelta(days=1)).isoformat()) == [contract, delta]     # inclusive
    assert ids(until=(now - timedelta(days=1)).isoformat()) == [crm]                 # exclusive
    assert ids(state="discarded") == [contract] and ids(state="dead") == [delta, crm]
    assert ids(queue="ameise-to-crm", state="dead") == [delta]
    assert [letter.id for letter in ops.find(limit=1)] == [contract]


def test_a_time_without_offset_is_utc():
    assert parse_filter(since="2026-12-01").since == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_filter(until="2026-12-01T10:00+02:00").until == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert parse_filter(queue="", kind=" ") == DeadLetterFilter()


@pytest.mark.parametrize(("raw", "message"), [
    ({"queue": "crm"}, "queue must be one of crm-to-ameise, ameise-to-crm, unknown"),
    ({"kind": "contracts"}, "kind must be one of contract-violation,"),
    ({"state": "gone"}, "state must be one of dead, replayed, discarded"),
    ({"since": "yesterday"}, "since must be an ISO 8601 date or time"),
    ({"since": "2026-12-02", "until": "2026-12-01"}, "since must be before until"),
    ({"record": "9" * 65}, "record must be"),
])
def test_a_bad_filter_says_what_is_wrong(raw, message):
    with pytest.raises(InvalidFilter, match=message):
        parse_filter(**raw)


# ---------------------------------------------------------------- replay
def test_replay_puts_the_message_back_on_its_work_queue_with_its_history(publisher, topology, store, letters, ops):
    rejected, _ = rejected_and_invalid(publisher, topology, store, letters)

    [outcome] = ops.replay(Selection((rejected.id,)), by="anna")

    assert (outcome.status, outcome.routing_key, outcome.reason) == ("replayed", ROUTING_KEY, None)
    [message] = take_all(topology.crm_to_ameise)
    assert message.body == rejected.body and message.delivery_info["routing_key"] == ROUTING_KEY
    assert message.properties["message_id"] == rejected.message_id
    assert message.headers["x-replayed-from"] == rejected.id and message.headers["x-replays"] == 1
    assert not [name for name in message.headers if name.startswith(("x-error", "x-first-", "x-original-"))]
    assert "x-attempts" not in message.headers and "x-dead-lettered-at" not in message.headers
    letter = letters.get(rejected.id)
    assert (letter.state, letter.replays, letter.replayed_by) == ("replayed", 1, "anna")
    assert letter.replayed_at is not None and letter.headers == rejected.headers   # the archive keeps the history
    [entry] = activities(store, "dead_letter_replayed")
    assert (entry.result, entry.zoho_id, entry.event_id) == ("ok", RECORD_ID, rejected.message_id)
    assert entry.details == {"by": "anna", "dead_letter_id": rejected.id, "routing_key": ROUTING_KEY,
                             "queue": "crm-to-ameise", "kind": "rejected", "replays": 1,
                             "exchange": topology.events.name}


def test_a_replayed_message_is_handled_by_the_consumer_like_a_new_one(publisher, topology, store, letters, ops):
    rejected, _ = rejected_and_invalid(publisher, topology, store, letters)
    ops.replay(Selection((rejected.id,)), by="anna")
    handle = handler()

    deliver(make_consumer(topology, handle, publisher, store), 1)

    assert [command.record_id for command in handle.calls] == [RECORD_ID]
    assert waiting(topology.crm_to_ameise) == 0 and waiting(topology.dead_letters) == 0


def test_replaying_a_row_again_needs_force(publisher, topology, store, letters, ops):
    rejected, _ = rejected_and_invalid(publisher, topology, store, letters)
    ops.replay(Selection((rejected.id,)), by="anna")

    [again] = ops.replay(Selection((rejected.id,)), by="ben")
    [forced] = ops.replay(Selection((rejected.id,)), by="ben", force=True)

    assert again.status == "refused" and "replayed already (1x, last by anna" in again.reason
    assert forced.status == "replayed"
    assert [m.headers["x-replays"] for m in take_all(topology.crm_to_ameise)] == [1, 2]
    letter = letters.get(rejected.id)
    assert (letter.replays, letter.replayed_by) == (2, "ben")
    assert len(activities(store, "dead_letter_replayed")) == 2


def test_a_message_failing_the_current_contract_stays_dead_with_the_reason(publisher, topology, store, letters, ops):
    _, invalid = rejected_and_invalid(publisher, topology, store, letters)

    [outcome] = ops.replay(Selection((invalid.id,)), by="anna")

    assert outcome.status == "refused"
    assert outcome.reason.startswith("contract CrmRecordChanged v1 violated") and "record_id" in outcome.reason
    assert waiting(topology.crm_to_ameise) == 0
    letter = letters.get(invalid.id)
    assert (letter.state, letter.replays, letter.replay_error) == ("dead", 0, outcome.reason)
    [entry] = activities(store, "dead_letter_replayed")
    assert (entry.result, entry.error, entry.details["dead_letter_id"]) == ("error", outcome.reason, invalid.id)


@pytest.mark.parametrize(("routing_key", "body", "content_type", "problem"), [
    (ROUTING_KEY, event_body(), "application/json", None),
    ("ameise.customer.changed", delta_body(), "application/json", None),
    ("crm.deals.changed", event_body(), "application/json", "does not match the message"),
    ("ameise.contract.changed", delta_body(), "application/json", "does not match the message"),
    ("ameise.customer.changed", delta_body(schema_version=2), "application/json", "Unsupported schema version"),
    ("ameise.deltas", {"schema_version": 1, "deltas": [delta_body(), delta_body("5001234568")]}, "application/json",
     None),
    ("ameise.deltas", {"schema_version": 1, "deltas": [delta_body(), delta_body("50 01")]}, "application/json",
     "delta 1 of AmeiseDeltas v1: contract AmeiseRecordChanged v1 violated"),
    ("ameise.deltas", {"schema_version": 1, "deltas": []}, "application/json", "contract AmeiseDeltas v1 violated"),
    ("ameise.customer.changed", {"schema_version": 1, "deltas": [delta_body()]}, "application/json",
     "contract AmeiseRecordChanged v1 violated"),
    ("billing.invoice.paid", event_body(), "application/json", "no contract for routing key"),
    (ROUTING_KEY, b"{not json", "application/json", "the body is not JSON"),
    (ROUTING_KEY, pickle.dumps({}), "application/x-python-serialize", "accept application/json only"),
])
def test_replay_checks_the_contract_of_the_routing_key(topology, routing_key, body, content_type, problem):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    letter = dead_letter_of(ArrivedMessage(routing_key, raw, content_type, "m", {}), topology)

    found = contract_problem(letter)

    assert found is None if problem is None else problem in found


def test_a_dry_run_changes_nothing(publisher, topology, store, letters, ops):
    rejected, invalid = rejected_and_invalid(publisher, topology, store, letters)

    outcomes = ops.replay(Selection(everything=True), by="anna", dry_run=True)
    discards = ops.discard(Selection((rejected.id,)), by="anna", dry_run=True)

    assert {o.id: o.status for o in outcomes} == {rejected.id: "would_replay", invalid.id: "refused"}
    assert [o.status for o in discards] == ["would_discard"]
    assert waiting(topology.crm_to_ameise) == 0
    assert letters.get(rejected.id) == rejected and letters.get(invalid.id) == invalid
    assert store.activities(direction="system") == []


def test_a_broker_that_does_not_confirm_leaves_the_dead_letters_as_they_were(publisher, topology, store, letters):
    rejected, invalid = rejected_and_invalid(publisher, topology, store, letters)
    unreachable = Publisher("amqp://guest:guest@127.0.0.1:1//", topology, confirm_timeout=0.5, connect_timeout=0.5)
    ops = DeadLetterOps(letters, store, publisher=unreachable, topology=topology)

    outcomes = ops.replay(Selection((rejected.id, invalid.id)), by="anna")

    [failed] = outcomes                                      # the rest was not tried
    assert failed.status == "failed" and "were not tried" in failed.reason
    assert letters.get(rejected.id) == rejected and letters.get(invalid.id) == invalid
    assert store.activities(direction="system") == []


def test_bulk_replay_by_filter_or_all_and_never_without_either(publisher, topology, store, letters, ops):
    rejected, invalid = rejected_and_invalid(publisher, topology, store, letters)
    other = archive_dead_letter(letters, topology, ours(ROUTING_KEY, event_body(), kind="error",
                                                        namespace=topology.namespace))

    for nothing in ({}, {"ids": (1,), "everything": True}, {"ids": (1,), "filter": DeadLetterFilter(kind="error")}):
        with pytest.raises(SelectionError):
            Selection(**nothing)
    by_kind = ops.replay(Selection(filter=DeadLetterFilter(kind="rejected")), by="anna")
    everything = ops.replay(Selection(everything=True), by="anna")   # the ones still dead

    assert [(o.id, o.status) for o in by_kind] == [(rejected.id, "replayed")]
    assert [(o.id, o.status) for o in everything] == [(invalid.id, "refused"), (other, "replayed")]
    assert len(take_all(topology.crm_to_ameise)) == 2


def test_replay_headers_count_the_replays_of_earlier_generations(topology, letters):
    message = ours(ROUTING_KEY, event_body(), namespace=topology.namespace,
                   **{"x-replays": 2, "x-replayed-from": 3, "x-retries": 4, "x-retry-delay": 60,
                      "x-last-error": "503", "x-tenant": "broker-1"})
    letter = letters.get(archive_dead_letter(letters, topology, message))

    headers = replay_headers(letter)

    assert headers == {"x-replays": 3, "x-replayed-from": letter.id, "x-tenant": "broker-1"}


# ---------------------------------------------------------------- discard
def test_discard_keeps_the_row_with_who_when_and_why(publisher, topology, store, letters, ops):
    _, invalid = rejected_and_invalid(publisher, topology, store, letters)

    [outcome] = ops.discard(Selection((invalid.id,)), by="anna", note="test data from the workshop")
    [again] = ops.discard(Selection((invalid.id,)), by="ben")
    [replay] = ops.replay(Selection((invalid.id,)), by="ben")
    [missing] = ops.discard(Selection((999,)), by="ben")

    assert outcome.status == "discarded"
    assert again.status == replay.status == "refused" and "discarded by anna" in again.reason
    assert missing.status == "not_found"
    letter = letters.get(invalid.id)
    assert (letter.state, letter.discarded_by, letter.note) == ("discarded", "anna", "test data from the workshop")
    assert letter.discarded_at is not None and letter.body == invalid.body
    [entry] = activities(store, "dead_letter_discarded")
    assert entry.details == {"by": "anna", "dead_letter_id": invalid.id, "routing_key": ROUTING_KEY,
                             "queue": "crm-to-ameise", "kind": "contract-violation", "note": "test data from the workshop"}


# ---------------------------------------------------------------- syncbridge dlq
@pytest.fixture
def cli_env(database_url, monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("SYNCBRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SYNCBRIDGE_DATABASE_URL", database_url)
    monkeypatch.setenv("USER", "carla")


def cli(*args: str):
    return CliRunner().invoke(main, list(args), prog_name="syncbridge")


def test_cli_lists_and_shows_dead_letters(cli_env, topology, letters):
    crm = archive_dead_letter(letters, topology, ours(ROUTING_KEY, event_body(), namespace=topology.namespace))
    delta = archive_dead_letter(letters, topology, ours("ameise.customer.changed", delta_body(), kind="contract",
                                                        namespace=topology.namespace))

    table = cli("dlq", "list")
    filtered = cli("dlq", "list", "--queue", "ameise-to-crm", "--json")
    shown = cli("dlq", "show", str(delta))

    assert table.exit_code == 0, table.output
    assert [line.split()[0] for line in table.output.splitlines()] == [f"#{delta}", f"#{crm}"]
    assert "ameise.customer.changed" in table.output and "contract reason" in table.output
    assert filtered.exit_code == 0, filtered.output
    [row] = [json.loads(line) for line in filtered.output.splitlines()]
    assert (row["id"], row["record"], row["kind"], row["state"]) == (delta, KUNDENNUMMER, "contract-violation", "dead")
    assert shown.exit_code == 0, shown.output
    assert "reason:           contract reason" in shown.output
    assert '"x-error-kind": "contract"' in shown.output
    assert 'body:\n{\n  "schema_version": 1,' in shown.output          # pretty-printed


def test_cli_discards_and_dry_runs_a_replay(cli_env, store, topology, letters):
    crm = archive_dead_letter(letters, topology, ours(ROUTING_KEY, event_body(), namespace=topology.namespace))

    dry = cli("dlq", "replay", str(crm), "--dry-run")
    discarded = cli("dlq", "discard", "--kind", "rejected", "--note", "duplicate")

    assert dry.exit_code == 0, dry.output
    assert f"#{crm:<5} would_replay  {ROUTING_KEY}" in dry.output and "dry run: would_replay 1" in dry.output
    assert discarded.exit_code == 0, discarded.output
    letter = letters.get(crm)
    assert (letter.state, letter.discarded_by, letter.note) == ("discarded", "carla", "duplicate")
    [entry] = activities(store, "dead_letter_discarded")
    assert entry.details["by"] == "carla"


@pytest.mark.parametrize(("args", "expected"), [
    (("dlq", "replay"), "name the dead letters"),
    (("dlq", "discard", "--dry-run"), "name the dead letters"),
    (("dlq", "discard", "1", "--all"), "not both"),
    (("dlq", "list", "--kind", "nope"), "kind must be one of"),
    (("dlq", "list", "--since", "last week"), "since must be an ISO 8601"),
    (("dlq", "show", "42"), "no dead letter 42"),
    (("dlq", "replay", "1"), "replaying needs the service's broker"),
])
def test_cli_refuses_clearly(cli_env, args, expected):
    result = cli(*args)

    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert expected in result.output and "Traceback" not in result.output


def test_cli_exits_1_when_something_was_refused(cli_env, topology, letters):
    crm = archive_dead_letter(letters, topology, ours(ROUTING_KEY, event_body(), namespace=topology.namespace))
    cli("dlq", "discard", str(crm))

    result = cli("dlq", "discard", str(crm), "999")

    assert result.exit_code == 1
    assert "refused" in result.output and "not_found" in result.output


# ---------------------------------------------------------------- the contract-violation kind's older name
def test_a_dead_letter_archived_as_contract_is_listed_and_replayed_as_a_contract_violation(
        cli_env, publisher, topology, store, letters, ops):
    body = event_body()
    arrived = ours(ROUTING_KEY, body, kind="contract", namespace=topology.namespace)
    # A row archived before the kind was renamed: "contract" in the kind column and in its headers.
    old = letters.archive(replace(dead_letter_of(arrived, topology), kind="contract"))
    new = archive_dead_letter(letters, topology, ours(ROUTING_KEY, event_body(record_id="abc"),
                                                      kind="contract-violation", namespace=topology.namespace))

    def found(**raw) -> list[tuple[int, str]]:
        return [(letter.id, letter.kind) for letter in ops.find(parse_filter(**raw))]

    assert found(kind="contract-violation") == found(kind="contract") == [
        (new, "contract-violation"), (old, "contract-violation")]
    assert found(kind="rejected") == []
    listed = cli("dlq", "list", "--kind", "contract", "--json")
    assert listed.exit_code == 0, listed.output
    assert [(row["id"], row["kind"]) for row in map(json.loads, listed.output.splitlines())] == [
        (new, "contract-violation"), (old, "contract-violation")]

    [outcome] = ops.replay(Selection((old,)), by="anna")

    assert (outcome.status, outcome.routing_key) == ("replayed", ROUTING_KEY)
    [message] = take_all(topology.crm_to_ameise)
    assert json.loads(message.body) == body and message.headers["x-replayed-from"] == old
    assert letters.get(old).state == "replayed"


def test_a_new_dead_letter_carries_the_new_kind_as_a_plain_string(publisher, topology, store, letters):
    dead_letter_by_consumer(publisher, topology, store, event_body(record_id="abc"))
    archive_all(topology, letters, 1)

    [letter] = letters.find(DeadLetterFilter(kind="contract-violation"))
    assert letter.kind == "contract-violation" and type(letter.kind) is str
    assert letter.headers["x-error-kind"] == "contract-violation" and type(letter.headers["x-error-kind"]) is str
