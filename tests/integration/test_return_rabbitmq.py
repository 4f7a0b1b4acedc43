"""The return path on a real RabbitMQ: DailyUp deltas -> consumer -> Zoho client -> simulator over HTTP.

The deltas are published as the importer publishes them (up to 100 to an
``ameise.deltas`` message); their values come from a DailyUp snapshot in dicts, and
the store is SQLite through the real SqlStore.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest
from kombu import Connection

from consumers.ameise_to_crm import AmeiseToCrmConsumer
from contracts.events import AmeiseRecordChangedSchema, ameise_deltas_body
from producers.publisher import Publisher
from producers.topology import build_topology
from simulators.fakes.snapshot import MemorySnapshot
from simulators.server import ServerThread
from simulators.zoho import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN, ZohoState, create_zoho_app
from syncbridge.adapters.db.migrate import upgrade
from syncbridge.adapters.db.sql import SqlStore
from syncbridge.adapters.zoho import ZohoClient
from syncbridge.handlers import ReturnDependencies, sync_ameise_records_to_crm
from syncbridge.mapping import load_mapping
from syncbridge.messages import AMEISE_DELTAS_KEY, DELTAS_PER_MESSAGE
from tests.support.returns import LOOKUPS, MODULES, company, contract, delta, person
from tests.support.waiting import wait_for

pytestmark = pytest.mark.rabbitmq


class ReturnPath:
    """Simulated Zoho over HTTP, the real client, a SQLite store, and a consumer on RabbitMQ."""

    def __init__(self, rabbitmq_url: str, namespace: str, database_url: str, server: ServerThread,
                 state: ZohoState) -> None:
        self.url = rabbitmq_url
        self.state = state
        self.topology = build_topology(namespace, retry_delays=(0.5, 1, 2, 3))   # an outage is waited out quickly
        self.publisher = Publisher(rabbitmq_url, self.topology)
        upgrade(database_url)
        self.store = SqlStore.from_url(database_url)
        self.snapshot = MemorySnapshot(LOOKUPS)
        crm = ZohoClient(accounts_url=server.url, client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET,
                         refresh_token=DEFAULT_REFRESH_TOKEN, token_store=self.store.tokens, timeout=10.0)
        self.deps = ReturnDependencies(crm=crm, snapshot=self.snapshot, store=self.store, mapping=load_mapping(),
                                       modules=dict(MODULES))
        self.schema = AmeiseRecordChangedSchema()
        self.handled = 0   # deltas the handler was given

    def handle(self, command):
        self.handled += len(command.records)
        return sync_ameise_records_to_crm(command, self.deps)

    def customer(self, row: dict):
        self.snapshot.put("kunden", row["Kundennummer"], row)
        return delta("customer", row["Kundennummer"])

    def contract(self, row: dict):
        self.snapshot.put("vertraege", row["Vertragsnummer"], row)
        return delta("contract", row["Vertragsnummer"])

    def publish(self, records) -> None:
        """As the DailyUp outbox does: up to 100 deltas to a message, through the deltas exchange."""
        for start in range(0, len(records), DELTAS_PER_MESSAGE):
            chunk = records[start:start + DELTAS_PER_MESSAGE]
            self.publisher.publish(self.topology.deltas, AMEISE_DELTAS_KEY,
                                   ameise_deltas_body([self.schema.dump(r) for r in chunk]),
                                   message_id=f"deltas:{chunk[0].delta_id}-{chunk[-1].delta_id}")

    @contextmanager
    def consuming(self, **options):
        """Run the consumer in a thread; stop it gracefully afterwards."""
        options = {"batch_size": 100, "batch_wait": 1.0, **options}
        consumer = AmeiseToCrmConsumer(Connection(self.url, heartbeat=30), self.topology, self.handle,
                                       self.publisher, self.store, **options)
        thread = threading.Thread(target=consumer.run, daemon=True)
        thread.start()
        try:
            yield consumer
        finally:
            consumer.should_stop = True
            thread.join(timeout=20)
        assert not thread.is_alive(), "the consumer did not stop"

    def wait_processed(self, records, timeout: float = 60.0) -> None:
        pending = [r.delta_id for r in records]

        def all_applied() -> bool:
            # Each look asks only for the deltas not seen applied yet, in order, stopping at the first.
            while pending and self.store.was_processed(pending[-1]):
                pending.pop()
            return not pending
        wait_for(all_applied, timeout=timeout, what=f"{len(records)} deltas applied")

    def waiting(self, queue) -> int:
        with Connection(self.url) as conn:
            return conn.default_channel.queue_declare(queue=queue.name, passive=True).message_count

    def take_dead_letters(self, expect: int, timeout: float = 10.0) -> list:
        letters = []
        deadline = time.monotonic() + timeout
        with Connection(self.url) as conn:
            simple = conn.SimpleQueue(self.topology.dead_letters, accept=["application/json"])
            while len(letters) < expect and time.monotonic() < deadline:
                try:
                    message = simple.get(block=True, timeout=0.2)
                except simple.Empty:
                    continue
                message.ack()
                letters.append(message)
            simple.close()
        return letters

    def close(self) -> None:
        self.publisher.close()


@pytest.fixture
def return_path(rabbitmq_url, namespace, tmp_path):
    state = ZohoState()
    with ServerThread(create_zoho_app(state)) as server:
        path = ReturnPath(rabbitmq_url, namespace, f"sqlite:///{tmp_path / 'syncbridge.db'}", server, state)
        yield path
        path.close()


def test_250_customers_and_300_contracts_reach_zoho_at_ten_records_per_credit(return_path):
    path = return_path
    customers = [path.customer(company(f"51{i:08d}") if i % 5 == 4 else person(f"50{i:08d}", Anrede="12"[i % 2]))
                 for i in range(250)]
    owners = [c.key for c in customers] + [c.key for c in customers[:50]]
    contracts = [path.contract(contract(f"11{i:05d}", owner, Sparte="040" if i % 2 else "050"))
                 for i, owner in enumerate(owners)]
    path.publish(customers + contracts)

    started = time.monotonic()
    with path.consuming():
        path.wait_processed(customers + contracts)
        elapsed = time.monotonic() - started

    contacts, accounts = path.state.records("Contacts"), path.state.records("Accounts")
    deals = path.state.records("Deals")
    assert (len(contacts), len(accounts), len(deals)) == (200, 50, 300)
    by_id = {r["id"]: r for r in contacts + accounts}
    assert {r["Kundennummer"] for r in by_id.values()} == {c.key for c in customers}
    assert {r["Salutation"] for r in contacts} == {"Herr", "Frau"}
    assert {r["Rechtsform"] for r in accounts} == {"GmbH"}
    assert {r["Mailing_Country"] for r in contacts} == {"Deutschland"}
    for deal in deals:
        row = path.snapshot.rows[("vertraege", deal["Vertragsnummer"])].data
        lookup = deal.get("Contact_Name") or deal.get("Account_Name")
        assert by_id[lookup["id"]]["Kundennummer"] == row["Kundennummer"]
        text = {"040": "Privathaftpflicht", "050": "Wohngebäude"}[row["Sparte"]]
        assert (deal["Deal_Name"], deal["Sparte"], deal["Sparte_Text"]) == (
            f"{text} {deal['Vertragsnummer']}", row["Sparte"], text)
    assert path.waiting(path.topology.ameise_to_crm) == 0
    assert path.take_dead_letters(expect=1, timeout=0.5) == []

    records = len(customers) + len(contracts)
    credits = path.state.credits_used
    stats = path.deps.stats
    assert stats.credits == credits and stats.search_calls == 0
    print(f"\nreturn path: {records} records in {stats.calls} Zoho calls, {credits} credits "
          f"({records / credits:.1f} records per credit), {elapsed:.2f} s ({records / elapsed:.0f} records/s)")
    assert records / credits >= 9.5

    # The same deltas once more (a redelivery, a replay): acknowledged without a Zoho call.
    handled = path.handled
    path.publish(customers[:20] + contracts[:20])
    with path.consuming(batch_wait=0.2):
        wait_for(lambda: path.handled >= handled + 40, timeout=10, what="the 40 redelivered deltas")
    assert path.handled == handled + 40
    assert path.waiting(path.topology.ameise_to_crm) == 0  # acknowledged, else back in the queue
    assert path.take_dead_letters(expect=1, timeout=0.5) == []
    assert path.state.credits_used == credits


def test_a_dead_letter_names_each_field_the_crm_refused(return_path):
    path = return_path
    path.state.drop_field("Contacts", "Mobile")   # the CRM lacks a field the mapping writes
    bad = path.customer(person("5088888888", Anrede="7", Mobil="+49 170 1"))
    path.publish([bad])

    with path.consuming(batch_wait=0.2):
        [dead] = path.take_dead_letters(expect=1)

    assert dead.headers["x-error-kind"] == "rejected"
    assert dead.headers["x-error"].startswith("zoho MULTIPLE_OR_MULTI_ERRORS field=Salutation, Mobile: "
                                              "Salutation: invalid data (allowed: Herr, Frau")
    assert "; Mobile: invalid data" in dead.headers["x-error"]
    [failed] = path.store.activities(result="error")
    assert failed.details["field"] == "Salutation, Mobile" and failed.details["code"] == "MULTIPLE_OR_MULTI_ERRORS"
    assert path.state.records("Contacts") == []


def test_refused_records_are_dead_lettered_and_an_outage_is_waited_out(return_path):
    path = return_path
    good = [path.customer(person(f"50{i:08d}")) for i in range(5)]
    bad = path.customer(person("5099999999", Nachname=None))
    path.publish(good + [bad])
    path.state.add_fault(503, count=1, path_prefix="/crm/v7/Contacts/upsert")

    with path.consuming(batch_wait=0.3):
        path.wait_processed(good)
        [dead] = path.take_dead_letters(expect=1)

    assert dead.headers["x-error-kind"] == "rejected"
    assert dead.headers["x-error"] == "zoho MANDATORY_NOT_FOUND field=Last_Name: required field not found"
    # Sent in one message with the good ones, it died alone: the delta under its own routing key.
    assert dead.headers["x-original-routing-key"] == "ameise.customer.created"
    assert dead.properties["message_id"] == bad.delta_id
    assert path.schema.load(dead.payload) == bad
    assert len(path.state.records("Contacts")) == 5
    assert path.waiting(path.topology.ameise_to_crm) == 0
    retried = path.store.activities(action="retry")
    assert len(retried) == 6 and all(e.error.startswith("zoho 503") for e in retried)
