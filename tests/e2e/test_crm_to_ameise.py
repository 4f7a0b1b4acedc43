"""CRM -> Ameise end to end: Zoho simulator -> webhook -> receiver -> RabbitMQ -> consumer -> Ameise simulator."""
from __future__ import annotations

import json

import pytest
import requests
from kombu import Connection

from syncbridge.adapters.db.dead_letters import SqlDeadLetterStore
from syncbridge.handlers.dead_letters import DeadLetterOps, Selection
from tests.support.ameise import contact, person
from tests.support.waiting import wait_for


def customer_by_name(stack, last_name):
    return next((c for c in stack.ameise_state.customers.values() if person(c).get("Nachname") == last_name), None)


def test_user_edit_of_an_existing_customer_updates_it_in_ameise(stack):
    erika = stack.demo_ids["zoho"]["Erika Mustermann"]

    answer = requests.patch(f"{stack.zoho.url}/_sim/records/Contacts/{erika}", json={"Phone": "+49 221 7654321"}, timeout=5)

    assert answer.status_code == 200
    wait_for(lambda: contact(stack.ameise_state.customers["5001234567"], "telefon") == "+49 221 7654321", what="update in Ameise")
    assert stack.ameise_state.creates == {"customers": 0, "contracts": 0}
    # The link is saved just after the update: wait for it rather than race it.
    link = wait_for(lambda: stack.services.store.find_link("customer", zoho_id=erika), what="the link")
    assert link.ameise_id == "5001234567"


def test_new_customer_is_created_and_its_number_written_back_without_a_loop(stack):
    created = requests.post(f"{stack.zoho.url}/_sim/records/Contacts",
                            json={"First_Name": "Jana", "Last_Name": "Beispiel", "Email": "jana@example.de"}, timeout=5)
    jana = created.json()["id"]

    number = wait_for(lambda: stack.zoho_state.get("Contacts", jana).get("Kundennummer"), what="Kundennummer written back")

    customer = stack.ameise_state.customers[number]
    assert (person(customer)["Vorname"], person(customer)["Nachname"], person(customer)["Typ"]) == ("Jana", "Beispiel", "natuerlich")
    stack.zoho_state.wait_idle(5)
    # The write-back carried "trigger": [], so exactly one workflow webhook fired (the user's create).
    assert [d["operation"] for d in stack.zoho_state.deliveries if jana in d["ids"]] == ["create"]
    assert stack.ameise_state.creates["customers"] == 1
    # The write-back is logged just after Zoho took it; the consumer's attempt (1) after the handler's steps (0).
    wait_for(lambda: sorted((e.action, e.attempt or 0) for e in stack.services.store.activities(zoho_id=jana))
             == [("created", 0), ("created", 1), ("written_back", 0)], what="the activity log")


def test_existing_contract_is_updated(stack):
    deal = stack.demo_ids["zoho"]["Wohngebäude Mustermann"]

    requests.patch(f"{stack.zoho.url}/_sim/records/Deals/{deal}", json={"Amount": 123.45}, timeout=5)

    wait_for(lambda: stack.ameise_state.contracts["1119876"]["Beitrag"]["Brutto"] == 123.45, what="contract update")
    assert stack.ameise_state.creates["contracts"] == 0


def test_new_contract_is_created_with_its_new_customer_and_both_numbers_written_back(stack):
    deal = stack.demo_ids["zoho"]["Haftpflicht Neumann"]
    max_id = stack.demo_ids["zoho"]["Max Neumann"]

    requests.patch(f"{stack.zoho.url}/_sim/records/Deals/{deal}", json={"Risiko": "Privathaftpflicht Single"}, timeout=5)

    vertragsnummer = wait_for(lambda: stack.zoho_state.get("Deals", deal).get("Vertragsnummer"), what="Vertragsnummer")
    kundennummer = stack.zoho_state.get("Contacts", max_id)["Kundennummer"]
    contract = stack.ameise_state.contracts[vertragsnummer]
    assert contract["Kunde"] == kundennummer and contract["Risiko"] == "Privathaftpflicht Single"
    assert stack.ameise_state.creates == {"customers": 1, "contracts": 1}


@pytest.mark.parametrize("style", ["json", "notify"])
def test_other_webhook_styles_reach_ameise(make_stack, style):
    stack = make_stack(webhook_style=style)
    requests.post(f"{stack.zoho.url}/_sim/records/Contacts", json={"Last_Name": f"Stil-{style}"}, timeout=5)
    wait_for(lambda: customer_by_name(stack, f"Stil-{style}"), what=f"{style} webhook processed")


def test_bad_token_is_401_and_nothing_is_queued(make_stack):
    stack = make_stack(workers=0)   # no crm-to-ameise worker: whatever is queued stays in the queue

    def queued() -> int:
        with Connection(stack.settings.broker_url) as connection:
            return stack.services.topology.crm_to_ameise(connection.default_channel).queue_declare(
                passive=True).message_count

    erika = stack.demo_ids["zoho"]["Erika Mustermann"]
    url = f"{stack.receiver.url}/webhooks/zoho/Contacts"
    answer = requests.post(f"{url}?token=wrong", data={"id": erika}, timeout=5)
    assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"
    assert queued() == 0
    # The same request with the right token is queued, and seen where the refused one was not.
    answer = requests.post(f"{url}?token={stack.settings.zoho_webhook_token}", data={"id": erika}, timeout=5)
    assert answer.status_code == 202
    wait_for(lambda: queued() == 1, what="the accepted event in crm-to-ameise")


def test_malformed_body_is_400_with_field_errors(stack):
    answer = requests.post(f"{stack.receiver.url}/webhooks/zoho/Contacts",
                           headers={"X-Webhook-Token": stack.settings.zoho_webhook_token},
                           json={"id": 4150868000000376008}, timeout=5)
    assert answer.status_code == 400
    assert "id" in answer.json()["fields"]
    broken = requests.post(f"{stack.receiver.url}/webhooks/zoho/Contacts",
                           headers={"X-Webhook-Token": stack.settings.zoho_webhook_token, "Content-Type": "application/json"},
                           data="{not json", timeout=5)
    assert broken.status_code == 400 and "Traceback" not in broken.text


def test_broker_down_is_503_never_202(tmp_path):
    from simulators.server import ServerThread
    from syncbridge.bootstrap import web_app
    from syncbridge.config import Settings

    settings = Settings.from_env({}, broker_url="amqp://guest:guest@127.0.0.1:1//", database_url=f"sqlite:///{tmp_path}/x.db")
    with ServerThread(web_app(settings)) as receiver:
        answer = requests.post(f"{receiver.url}/webhooks/zoho/Contacts?token={settings.zoho_webhook_token}",
                               data={"id": "4150868000000376008"}, timeout=15)
        ready = requests.get(f"{receiver.url}/readyz", timeout=15)
    assert answer.status_code == 503 and answer.headers.get("Retry-After")
    assert answer.json().get("status") != "queued"
    assert ready.status_code == 503


def _dead_letters(stack, rabbitmq_url, expected):
    """The dead letters, once ``expected`` of them reached the archive (the stack runs the archiver)."""
    from syncbridge.adapters.db.dead_letters import SqlDeadLetterStore

    letters = SqlDeadLetterStore(stack.services.store.engine)
    return wait_for(lambda: (found := letters.find()) and len(found) >= expected and found, what="dead letters")


def test_messages_failing_their_contract_land_in_the_dead_letters_with_their_reason(stack, rabbitmq_url):
    topology = stack.services.topology
    # Confirmed one by one: each is in the queue before the next goes out and before the wait begins.
    with Connection(rabbitmq_url, transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer()
        producer.publish({"schema_version": 1, "event_id": "bad-1", "module": "Contacts", "record_id": 4150868000000376008},
                         exchange=topology.events, routing_key="crm.contacts.changed", serializer="json")
        producer.publish(b"\x80not json", exchange=topology.events, routing_key="crm.contacts.changed",
                         content_type="application/json", content_encoding="binary")
        producer.publish("plain text", exchange=topology.events, routing_key="crm.contacts.changed",
                         content_type="text/plain", content_encoding="utf-8")

    letters = _dead_letters(stack, rabbitmq_url, 3)

    by_kind = {}
    for letter in letters:
        by_kind.setdefault(letter.headers["x-error-kind"], []).append(letter)
    assert sorted(by_kind) == ["contract-violation", "undecodable"] and len(by_kind["undecodable"]) == 2
    [contract] = by_kind["contract-violation"]
    assert "record_id" in contract.headers["x-error"] and "received_at" in contract.headers["x-error"]
    assert contract.headers["x-original-routing-key"] == "crm.contacts.changed"
    assert contract.headers["x-original-exchange"] == topology.events.name
    assert json.loads(contract.body)["event_id"] == "bad-1"   # the message itself, unchanged


def test_record_rejected_by_ameise_is_dead_lettered_and_logged(stack, rabbitmq_url):
    created = requests.post(f"{stack.zoho.url}/_sim/records/Contacts",
                            json={"Last_Name": "Falsch", "Mailing_Zip": "12", "Mailing_Country": "Deutschland"}, timeout=5)
    record_id = created.json()["id"]

    [letter] = _dead_letters(stack, rabbitmq_url, 1)

    assert letter.headers["x-error-kind"] == "rejected" and letter.record == record_id
    assert "Postleitzahl" in letter.headers["x-error"]
    [entry] = stack.services.store.activities(zoho_id=record_id)
    assert (entry.action, entry.result) == ("failed", "error") and "Postleitzahl" in entry.error
    # The customer call went through before the address call was refused: it waits, linked, for the replay.
    [made] = [nr for nr in stack.ameise_state.customers if nr != "5001234567"]
    assert stack.ameise_state.creates["customers"] == 1 and "Hauptwohnsitz" not in stack.ameise_state.customers[made]

    # The cause is fixed in the CRM (without a new webhook); the replay brings the record through.
    stack.zoho_state.write("Contacts", "update", [{"id": record_id, "Mailing_Zip": "12345"}], workflow=False)
    ops = DeadLetterOps(SqlDeadLetterStore(stack.services.store.engine), stack.services.store,
                        publisher=stack.services.publisher, topology=stack.services.topology)
    [outcome] = ops.replay(Selection(ids=(letter.id,)), by="ops-test")

    assert outcome.status == "replayed", outcome
    number = wait_for(lambda: stack.zoho_state.get("Contacts", record_id).get("Kundennummer"), what="the replay")
    assert number == made and stack.ameise_state.creates["customers"] == 1
    assert stack.ameise_state.customers[number]["Hauptwohnsitz"]["Postleitzahl"] == "12345"
    assert stack.services.store.activities(action="dead_letter_replayed")[0].details.get("by") == "ops-test"
