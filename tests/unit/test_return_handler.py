"""The Ameise -> CRM handler against the in-memory Zoho, store and a DailyUp snapshot in dicts."""
from __future__ import annotations

from dataclasses import replace

import pytest

from syncbridge.adapters.zoho import ZohoRejected, ZohoUnavailable
from syncbridge.handlers import (
    OK,
    REJECTED,
    UNAVAILABLE,
)
from syncbridge.messages import AmeiseRecordChanged
from tests.support.returns import World, company, contract, delta, person


@pytest.fixture
def world() -> World:
    return World()


# ---------------------------------------------------------------- customers
def test_a_new_person_becomes_a_contact_with_its_number_and_lookup_texts(world):
    [outcome] = world.apply(world.customer(person("5001234567")))

    assert (outcome.status, outcome.action, outcome.module) == (OK, "created", "Contacts")
    contact = world.only("Contacts")
    assert outcome.zoho_id == contact["id"]
    assert {k: contact.get(k) for k in ("Kundennummer", "Salutation", "First_Name", "Last_Name", "Date_of_Birth",
                                        "Mailing_Zip", "Mailing_Country", "Vermittler")} == {
        "Kundennummer": "5001234567", "Salutation": "Frau", "First_Name": "Erika", "Last_Name": "Mustermann 5001234567",
        "Date_of_Birth": "1964-08-12", "Mailing_Zip": "01147", "Mailing_Country": "Deutschland", "Vermittler": "A1B2C3"}
    [write] = world.zoho.writes
    assert (write.operation, write.module, write.duplicate_check_fields) == ("upsert", "Contacts", ["Kundennummer"])
    assert "Titel" not in write.records[0] and "Mobile" not in write.records[0]  # empty in the delivery: not sent
    assert world.store.find_link("customer", ameise_id="5001234567").zoho_id == contact["id"]
    assert world.store.was_processed(outcome.delta_id)
    [entry] = world.store.activities()
    assert (entry.direction, entry.action, entry.result, entry.entity) == ("ameise_to_crm", "created", "ok", "customer")
    assert (entry.zoho_module, entry.zoho_id, entry.ameise_id, entry.event_id) == (
        "Contacts", contact["id"], "5001234567", outcome.delta_id)
    assert entry.details == {"change": "created", "import_id": 1}


def test_a_legal_person_becomes_an_account(world):
    [outcome] = world.apply(world.customer(company("5007654321")))

    account = world.only("Accounts")
    assert (outcome.action, outcome.module, outcome.zoho_id) == ("created", "Accounts", account["id"])
    assert (account["Account_Name"], account["Rechtsform"], account["Billing_Country"], account["Kundennummer"]) == (
        "Muster Bau 5007654321", "GmbH", "Deutschland", "5007654321")
    assert world.zoho.records("Contacts") == []


def test_a_changed_customer_updates_the_crm_record_and_empty_values_wipe_nothing(world):
    existing = world.zoho.seed("Contacts", {"Last_Name": "Alt", "Kundennummer": "5001234567", "Mobile": "+49 170 1",
                                            "Description": "kept: not in the mapping"})
    record = world.customer(person("5001234567", Nachname="Neu", Mobil=None, Telefon="+49 221 7654321"))

    [outcome] = world.apply(record)

    assert (outcome.action, outcome.zoho_id) == ("updated", existing)
    contact = world.only("Contacts")
    assert (contact["Last_Name"], contact["Phone"], contact["Mobile"], contact["Description"]) == (
        "Neu", "+49 221 7654321", "+49 170 1", "kept: not in the mapping")
    # the full mapped record is sent, not only the changed columns
    assert {"First_Name", "Email", "Mailing_City", "Kundennummer"} <= set(world.zoho.writes[0].records[0])


def test_an_unknown_lookup_code_is_written_as_it_is_and_reported(world):
    [outcome] = world.apply(world.customer(person("5001234567", Land="ZZ")))

    assert (outcome.status, outcome.unknown_codes) == (OK, ("Land=ZZ (laender)",))
    assert world.only("Contacts")["Mailing_Country"] == "ZZ"
    [entry] = world.store.activities()
    assert entry.details["unknown_codes"] == ["Land=ZZ (laender)"]


def test_zoho_refusing_one_record_rejects_it_with_code_and_field_and_takes_the_rest(world):
    good, bad = world.customer(person("5000000001")), world.customer(person("5000000002", Nachname=None))

    outcomes = world.apply(good, bad)

    assert [o.status for o in outcomes] == [OK, REJECTED]
    rejected = outcomes[1]
    assert (rejected.code, rejected.field, rejected.action) == ("MANDATORY_NOT_FOUND", "Last_Name", "failed")
    assert rejected.describe() == "zoho MANDATORY_NOT_FOUND field=Last_Name: required field not found"
    assert len(world.zoho.writes) == 1 and len(world.zoho.writes[0].records) == 2
    assert [c["Kundennummer"] for c in world.zoho.records("Contacts")] == ["5000000001"]
    assert world.store.was_processed(good.delta_id) and not world.store.was_processed(bad.delta_id)
    assert [e.ameise_id for e in world.store.activities()] == ["5000000001"]  # the consumer logs the failure


def test_a_value_zoho_refuses_names_the_field_and_what_zoho_allows(world):
    # an Anrede code the delivered list does not know is written as the code: not a Salutation picklist value
    [outcome] = world.apply(world.customer(person("5001234567", Anrede="7")))

    assert (outcome.status, outcome.code, outcome.field) == (REJECTED, "INVALID_DATA", "Salutation")
    assert outcome.describe().startswith("zoho INVALID_DATA field=Salutation: invalid data (allowed: Herr, Frau")
    assert world.zoho.records("Contacts") == []


def test_several_refused_fields_of_one_record_are_all_named(world):
    world.zoho.state.drop_field("Contacts", "Mobile")

    [outcome] = world.apply(world.customer(person("5001234567", Anrede="7", Nachname="N" * 81, Mobil="+49 170 1")))

    assert (outcome.status, outcome.code) == (REJECTED, "MULTIPLE_OR_MULTI_ERRORS")
    assert outcome.field == "Salutation, Last_Name, Mobile"
    assert "Last_Name: invalid data (at most 80 characters)" in outcome.error
    assert "Mobile: invalid data" in outcome.error
    assert world.zoho.records("Contacts") == []


@pytest.mark.parametrize(("changes", "field"), [
    ({"Personentyp": "sonstig"}, "Personentyp"),
    ({"Geburtsdatum": "12.08.1964"}, "Geburtsdatum"),
], ids=["unknown-personentyp", "date-not-normalized"])
def test_a_row_our_rules_cannot_map_is_rejected_without_calling_zoho(world, changes, field):
    [outcome] = world.apply(world.customer(person("5001234567", **changes)))

    assert (outcome.status, outcome.field) == (REJECTED, field)
    assert field in outcome.error
    assert world.zoho.writes == []


def test_a_delta_without_a_snapshot_row_is_rejected(world):
    [outcome] = world.apply(delta("customer", "5009999999"))

    assert (outcome.status, outcome.field) == (REJECTED, "Kundennummer")
    assert "not in the DailyUp snapshot" in outcome.error


def test_two_crm_records_claiming_one_number_are_reported_not_merged(world):
    first = world.zoho.seed("Contacts", {"Last_Name": "Erste"})
    world.store.save_link("customer", "Contacts", first, "5001234567")
    world.zoho.seed("Contacts", {"Last_Name": "Zweite", "Kundennummer": "5001234567"})

    [outcome] = world.apply(world.customer(person("5001234567")))

    assert (outcome.status, outcome.field) == (REJECTED, "Kundennummer")
    assert "resolve the duplicate in the CRM" in outcome.error
    assert world.store.find_link("customer", ameise_id="5001234567").zoho_id == first


# ---------------------------------------------------------------- batching and credits
def test_250_records_per_module_take_three_upserts_each_customers_first(world):
    records = []
    for i in range(250):
        records.append(world.customer(person(f"50{i:08d}")))
        records.append(world.customer(company(f"51{i:08d}")))
        records.append(world.contract(contract(f"11{i:05d}", f"50{i:08d}")))
    world.snapshot.queries.clear()

    outcomes = world.apply(*records)

    assert all(o.status == OK for o in outcomes), {o.error for o in outcomes if o.status != OK}
    calls = [(w.operation, w.module, len(w.records)) for w in world.zoho.writes]
    assert calls == [("upsert", "Contacts", 100), ("upsert", "Contacts", 100), ("upsert", "Contacts", 50),
                     ("upsert", "Accounts", 100), ("upsert", "Accounts", 100), ("upsert", "Accounts", 50),
                     ("upsert", "Deals", 100), ("upsert", "Deals", 100), ("upsert", "Deals", 50)]
    assert world.zoho.state.credits_used == 75  # 750 records, 10 per credit
    stats = world.deps.stats
    assert (stats.records_sent, stats.write_calls, stats.search_calls, stats.credits) == (750, 9, 0, 75)
    assert (stats.records_per_call, stats.records_per_credit) == (750 / 9, 10.0)
    # one query per record table; the contracts' customers come with the customers' query
    assert [table for table, _ in world.snapshot.queries if table in ("kunden", "vertraege")] == ["vertraege", "kunden"]
    assert len(world.zoho.records("Deals")) == 250


def test_a_smaller_batch_size_splits_the_calls(world):
    world.deps.batch_size = 20
    world.apply(*(world.customer(person(f"50{i:08d}")) for i in range(50)))

    assert [len(w.records) for w in world.zoho.writes] == [20, 20, 10]


def test_the_same_record_twice_in_a_batch_is_sent_once(world):
    record = world.customer(person("5001234567"))
    later = delta("customer", "5001234567", "changed", import_id=2)

    outcomes = world.apply(record, later)

    assert [(o.delta_id, o.action) for o in outcomes] == [(record.delta_id, "created"), (later.delta_id, "created")]
    assert [len(w.records) for w in world.zoho.writes] == [1]
    assert world.store.was_processed(record.delta_id) and world.store.was_processed(later.delta_id)


def test_one_message_twice_in_a_batch_counts_once(world):
    record = world.customer(person("5001234567"))

    outcomes = world.apply(record, record)

    assert [o.action for o in outcomes] == ["created", "duplicate"]
    assert len(world.store.activities()) == 1 and [len(w.records) for w in world.zoho.writes] == [1]


def test_a_delta_seen_before_does_not_call_zoho_again(world):
    record = world.customer(person("5001234567"))
    world.apply(record)
    world.zoho.writes.clear()

    [outcome] = world.apply(record)

    assert (outcome.status, outcome.action) == (OK, "duplicate")
    assert world.zoho.writes == []
    assert len(world.store.activities()) == 1


def test_the_snapshot_wins_over_a_stale_delta(world):
    world.customer(person("5001234567", Nachname="Neuester Stand"))

    [outcome] = world.apply(delta("customer", "5001234567", "deleted"))

    assert outcome.action == "created"  # delivered again since: upserted, not marked deleted
    assert world.only("Contacts")["Last_Name"] == "Neuester Stand"


# ---------------------------------------------------------------- contracts
def test_a_contract_whose_customer_is_in_the_same_batch_gets_its_lookup(world):
    records = [world.contract(contract("1119876", "5001234567")), world.customer(person("5001234567")),
               world.contract(contract("1119877", "5007654321", Sparte="999")), world.customer(company("5007654321"))]

    outcomes = world.apply(*records)

    assert [o.status for o in outcomes] == [OK] * 4
    contact, account = world.only("Contacts"), world.only("Accounts")
    deals = {d["Vertragsnummer"]: d for d in world.zoho.records("Deals")}
    first, second = deals["1119876"], deals["1119877"]
    assert first["Contact_Name"]["id"] == contact["id"] and "Account_Name" not in first
    assert second["Account_Name"]["id"] == account["id"] and "Contact_Name" not in second
    assert (first["Deal_Name"], first["Sparte"], first["Sparte_Text"], first["Gesellschaft_Text"]) == (
        "Wohngebäude 1119876", "050", "Wohngebäude", "Allianz Versicherungs-AG")
    assert (first["Vertragsstatus"], first["Vertragsstatus_Text"], first["Zahlweise_Text"]) == ("A", "aktiv", "monatlich")
    assert (first["Amount"], first["Beitrag_Netto"], first["Beginn"], first["Stage"]) == (
        100, 84.03, "2010-01-01", "Abgeschlossen")
    assert (second["Deal_Name"], second["Sparte_Text"]) == ("999 1119877", "999")
    assert outcomes[2].unknown_codes == ("Sparte=999 (sparten)",)
    assert [w.module for w in world.zoho.writes] == ["Contacts", "Accounts", "Deals"]
    assert world.store.find_link("contract", ameise_id="1119876").zoho_id == first["id"]


def test_a_contracts_customer_is_found_by_link_else_by_search(world):
    linked = world.zoho.seed("Contacts", {"Last_Name": "Verknüpft"})
    world.store.save_link("customer", "Contacts", linked, "5000000001")
    searched = world.zoho.seed("Accounts", {"Account_Name": "Gefunden", "Kundennummer": "5000000002"})
    world.snapshot.put("kunden", "5000000002", company("5000000002"))

    outcomes = world.apply(world.contract(contract("1110001", "5000000001")),
                           world.contract(contract("1110002", "5000000002")))

    assert [o.status for o in outcomes] == [OK, OK]
    deals = {d["Vertragsnummer"]: d for d in world.zoho.records("Deals")}
    assert deals["1110001"]["Contact_Name"]["id"] == linked
    assert deals["1110002"]["Account_Name"]["id"] == searched
    assert world.deps.stats.search_calls == 1  # the company's own module first: found at once
    assert world.store.find_link("customer", ameise_id="5000000002").zoho_id == searched


def test_a_contract_whose_customer_is_not_in_the_crm_yet_waits(world):
    world.snapshot.put("kunden", "5001234567", person("5001234567"))

    [outcome] = world.apply(world.contract(contract("1119876", "5001234567")))

    assert (outcome.status, outcome.field) == (UNAVAILABLE, "Kundennummer")
    assert "customer 5001234567 is not in the CRM yet" in outcome.error
    assert world.zoho.records("Deals") == [] and not world.store.was_processed(outcome.delta_id)


@pytest.mark.parametrize("customer", ["deleted", "never-delivered"])
def test_a_contract_whose_customer_cannot_come_is_rejected(world, customer):
    if customer == "deleted":
        world.snapshot.put("kunden", "5001234567", person("5001234567"), deleted=True)

    [outcome] = world.apply(world.contract(contract("1119876", "5001234567")))

    assert (outcome.status, outcome.field) == (REJECTED, "Kundennummer")
    assert ("deleted in Ameise" if customer == "deleted" else "neither in the DailyUp snapshot") in outcome.error


def test_a_contract_of_a_customer_zoho_refused_in_the_same_batch_is_rejected_too(world):
    outcomes = world.apply(world.customer(person("5001234567", Nachname=None)),
                           world.contract(contract("1119876", "5001234567")))

    assert [o.status for o in outcomes] == [REJECTED, REJECTED]
    assert "its customer 5001234567 failed: zoho MANDATORY_NOT_FOUND" in outcomes[1].error
    assert [w.module for w in world.zoho.writes] == ["Contacts"]


# ---------------------------------------------------------------- Zoho unavailable or refusing a whole call
def test_an_outage_leaves_every_record_waiting_and_stops_calling(world):
    records = [world.customer(person("5001234567")), world.contract(contract("1119876", "5001234567")),
               world.customer(company("5007654321"))]
    world.zoho.fail_next(ZohoUnavailable("Too Many Requests", status=429, retry_after=30))

    outcomes = world.apply(*records)

    assert [o.status for o in outcomes] == [UNAVAILABLE] * 3
    assert all(o.retry_after == 30 and "zoho 429" in o.error for o in outcomes)
    assert world.zoho.writes == [] and world.deps.stats.calls == 0  # the first call failed; no other was tried
    assert world.store.activities() == [] and not any(world.store.was_processed(r.delta_id) for r in records)

    again = world.apply(*records)  # the retry, once Zoho is back

    assert [o.status for o in again] == [OK] * 3
    assert world.only("Deals")["Contact_Name"]["id"] == world.only("Contacts")["id"]


def test_a_whole_call_refused_rejects_its_records(world):
    world.zoho.fail_next(ZohoRejected("permission denied", status=403, code="NO_PERMISSION"))

    outcomes = world.apply(world.customer(person("5000000001")), world.customer(person("5000000002")))

    assert [(o.status, o.code) for o in outcomes] == [(REJECTED, "NO_PERMISSION")] * 2
    assert outcomes[0].describe() == "zoho 403 NO_PERMISSION: permission denied"


# ---------------------------------------------------------------- deleted in Ameise
def deleted_customer(world: World, kundennummer: str, *, in_crm: bool = True, linked: bool = True) -> str | None:
    """A customer the last delivery no longer had; optionally in the CRM, linked or only findable by search."""
    world.snapshot.put("kunden", kundennummer, person(kundennummer), deleted=True)
    if not in_crm:
        return None
    zoho_id = world.zoho.seed("Contacts", {"Last_Name": "Mustermann", "Phone": "+49 1", "Kundennummer": kundennummer})
    if linked:
        world.store.save_link("customer", "Contacts", zoho_id, kundennummer)
    return zoho_id


def test_mark_sets_the_status_field_and_nothing_else(world):
    zoho_id = deleted_customer(world, "5001234567")

    [outcome] = world.apply(delta("customer", "5001234567", "deleted"))

    assert (outcome.status, outcome.action, outcome.zoho_id) == (OK, "marked", zoho_id)
    [write] = world.zoho.writes
    assert write.records == [{"Kundennummer": "5001234567", "Ameise_Status": "geloescht"}]
    contact = world.only("Contacts")
    assert (contact["Ameise_Status"], contact["Phone"], contact["Last_Name"]) == ("geloescht", "+49 1", "Mustermann")


def test_a_marked_record_delivered_again_is_no_longer_marked(world):
    deleted_customer(world, "5001234567")
    world.apply(delta("customer", "5001234567", "deleted"))
    world.snapshot.put("kunden", "5001234567", person("5001234567"), import_id=2)

    [outcome] = world.apply(delta("customer", "5001234567", "created", import_id=2))

    assert outcome.action == "updated"
    assert world.only("Contacts")["Ameise_Status"] is None


def test_mark_finds_an_unlinked_record_by_search_and_links_it(world):
    zoho_id = deleted_customer(world, "5001234567", linked=False)

    [outcome] = world.apply(delta("customer", "5001234567", "deleted"))

    assert (outcome.action, outcome.zoho_id) == ("marked", zoho_id)
    assert world.deps.stats.search_calls == 1
    assert world.store.find_link("customer", ameise_id="5001234567").zoho_id == zoho_id


@pytest.mark.parametrize("mode", ["mark", "delete"])
def test_a_deleted_record_the_crm_never_had_is_skipped(mode):
    world = World(delete_mode=mode)
    deleted_customer(world, "5001234567", in_crm=False)

    [outcome] = world.apply(delta("customer", "5001234567", "deleted"))

    assert (outcome.status, outcome.action, outcome.reason) == (OK, "skipped", "deleted in Ameise and not in the CRM")
    assert world.zoho.writes == [] and world.deps.stats.search_calls == 2  # looked in Contacts and Accounts
    assert world.store.was_processed(outcome.delta_id)


def test_delete_mode_deletes_known_records_in_the_crm():
    world = World(delete_mode="delete")
    contact_id = deleted_customer(world, "5001234567")
    deal_id = world.zoho.seed("Deals", {"Deal_Name": "Alt", "Vertragsnummer": "1119876"})
    world.store.save_link("contract", "Deals", deal_id, "1119876")
    world.snapshot.put("vertraege", "1119876", contract("1119876", "5001234567"), deleted=True)

    outcomes = world.apply(delta("contract", "1119876", "deleted"), delta("customer", "5001234567", "deleted"))

    assert [(o.status, o.action, o.zoho_id) for o in outcomes] == [(OK, "deleted", deal_id), (OK, "deleted", contact_id)]
    assert world.zoho.records("Contacts") == [] and world.zoho.records("Deals") == []
    assert sorted((w.operation, w.module) for w in world.zoho.writes) == [("delete", "Contacts"), ("delete", "Deals")]
    assert {e.action for e in world.store.activities()} == {"deleted"}


def test_a_number_delivered_again_after_a_delete_becomes_a_new_crm_record():
    world = World(delete_mode="delete")
    old_id = deleted_customer(world, "5001234567")
    world.apply(delta("customer", "5001234567", "deleted"))
    world.snapshot.put("kunden", "5001234567", person("5001234567"))

    [outcome] = world.apply(delta("customer", "5001234567", "created", import_id=2))

    assert (outcome.status, outcome.action) == (OK, "created") and outcome.zoho_id != old_id
    assert world.store.find_link("customer", ameise_id="5001234567").zoho_id == outcome.zoho_id


def test_delete_mode_skips_a_linked_record_already_gone_from_the_crm():
    world = World(delete_mode="delete")
    zoho_id = deleted_customer(world, "5001234567")
    world.zoho.delete_records("Contacts", [zoho_id])  # a user deleted it in the CRM meanwhile

    [outcome] = world.apply(delta("customer", "5001234567", "deleted"))

    assert (outcome.status, outcome.action) == (OK, "skipped")
    assert outcome.reason == "deleted in Ameise and already gone from the CRM"


def test_ignore_mode_touches_nothing_but_logs():
    world = World(delete_mode="ignore")
    deleted_customer(world, "5001234567")

    [outcome] = world.apply(delta("customer", "5001234567", "deleted"))

    assert (outcome.status, outcome.action) == (OK, "skipped")
    assert world.zoho.writes == [] and world.deps.stats.calls == 0
    [entry] = world.store.activities()
    assert (entry.action, entry.details["reason"]) == ("skipped", "deleted in Ameise; SYNCBRIDGE_DAILYUP_DELETE_MODE=ignore")
    assert world.only("Contacts").get("Ameise_Status") is None


# ---------------------------------------------------------------- echoes of our own writes
def echoed(record: AmeiseRecordChanged, *columns: str) -> AmeiseRecordChanged:
    return replace(record, echoed_fields=columns)


def test_a_linked_record_is_not_sent_the_values_that_came_back_from_our_writes(world):
    # The CRM wrote Telefon and Nachname to Ameise, and has a newer Phone since; Ameise set the Mobil.
    contact = world.zoho.seed("Contacts", {"Last_Name": "Mustermann", "Phone": "+49 221 999",
                                            "Kundennummer": "5001234567"})
    world.store.save_link("customer", "Contacts", contact, "5001234567")
    row = person("5001234567", Nachname="Mustermann", Telefon="+49 221 111", Mobil="+49 170 1234567")
    record = echoed(world.customer(row), "Nachname", "Telefon")

    [outcome] = world.apply(record)

    assert (outcome.status, outcome.action, outcome.zoho_id) == (OK, "updated", contact)
    sent = world.zoho.writes[0].records[0]
    assert "Phone" not in sent and "Last_Name" not in sent
    assert {"Mobile", "First_Name", "Kundennummer"} <= set(sent)
    assert (world.only("Contacts")["Phone"], world.only("Contacts")["Mobile"]) == ("+49 221 999", "+49 170 1234567")


def test_a_record_the_crm_lacks_is_sent_whole_whatever_came_back(world):
    row = person("5001234567", Telefon="+49 221 111")

    [outcome] = world.apply(echoed(world.customer(row), "Nachname", "Telefon"))

    assert (outcome.status, outcome.action) == (OK, "created")
    assert (world.only("Contacts")["Last_Name"], world.only("Contacts")["Phone"]) == (row["Nachname"], "+49 221 111")


def test_a_linked_record_gone_from_the_crm_is_sent_again_whole_and_fares_as_without_echoes():
    def run(*columns: str):
        world = World()
        world.store.save_link("customer", "Contacts", "4000000000000000001", "5001234567")  # deleted in the CRM since
        [outcome] = world.apply(echoed(world.customer(person("5001234567")), *columns))
        return world, outcome

    trimmed, outcome = run("Nachname", "Telefon")
    whole, expected = run()

    # Zoho misses the mandatory Last_Name of the trimmed record, as the upsert inserts: it is sent again whole.
    first, again = trimmed.zoho.writes
    assert "Last_Name" not in first.records[0] and again.records == whole.zoho.writes[0].records
    assert replace(outcome, error="") == replace(expected, error="")
    assert outcome.error.split(" as Contacts/")[0] == expected.error.split(" as Contacts/")[0]


def test_a_field_is_left_out_only_when_every_column_it_reads_came_back(world):
    contact = world.zoho.seed("Contacts", {"Last_Name": "Mustermann", "Kundennummer": "5001234567"})
    world.store.save_link("customer", "Contacts", contact, "5001234567")
    world.snapshot.put("kunden", "5001234567", person("5001234567"))
    deal = world.zoho.seed("Deals", {"Deal_Name": "x", "Vertragsnummer": "1119876"})
    world.store.save_link("contract", "Deals", deal, "1119876")

    [outcome] = world.apply(echoed(world.contract(contract("1119876", "5001234567")), "Sparte", "Status"))

    assert outcome.status == OK
    sent = world.zoho.writes[-1].records[0]
    # Sparte and its text are ours; the Deal_Name template reads the Vertragsnummer too, which is not.
    assert not {"Sparte", "Sparte_Text", "Vertragsstatus", "Vertragsstatus_Text"} & set(sent)
    assert {"Deal_Name", "Gesellschaft", "Amount", "Stage", "Contact_Name"} <= set(sent)


def test_a_record_with_several_deltas_in_a_batch_leaves_out_only_what_all_of_them_name(world):
    contact = world.zoho.seed("Contacts", {"Last_Name": "Mustermann", "Kundennummer": "5001234567"})
    world.store.save_link("customer", "Contacts", contact, "5001234567")
    first = echoed(world.customer(person("5001234567")), "Nachname", "Telefon")
    second = replace(first, delta_id="2:customer:5001234567", import_id=2, echoed_fields=("Telefon", "Ort"))

    world.apply(first, second)

    [write] = world.zoho.writes
    sent = write.records[0]
    assert "Phone" not in sent and {"Last_Name", "Mailing_City"} <= set(sent)


def test_a_customer_whose_number_never_reached_the_crm_updates_its_linked_record_by_id(world):
    # syncbridge created 5001234568 in Ameise from this contact; its sync failed before the number was written back
    paul = world.zoho.seed("Contacts", {"First_Name": "Paul", "Last_Name": "Fehler"})
    world.store.save_link("customer", "Contacts", paul, "5001234568")
    world.store.note_create(f"Contacts/{paul}", True)

    [outcome] = world.apply(world.customer(person("5001234568")))

    assert (outcome.status, outcome.action, outcome.zoho_id) == (OK, "updated", paul)
    contact = world.only("Contacts")                     # no second contact
    assert (contact["id"], contact["Kundennummer"]) == (paul, "5001234568")
    [write] = world.zoho.writes
    assert (write.operation, write.records[0]["id"]) == ("update", paul)


def test_a_linked_customer_whose_number_the_crm_has_is_upserted_by_it(world):
    existing = world.zoho.seed("Contacts", {"Last_Name": "Alt", "Kundennummer": "5001234567"})
    world.store.save_link("customer", "Contacts", existing, "5001234567")
    updated, new = world.customer(person("5001234567")), world.customer(person("5001234570"))

    outcomes = world.apply(updated, new)

    assert [(o.action, o.zoho_id == existing) for o in outcomes] == [("updated", True), ("created", False)]
    [write] = world.zoho.writes                          # one upsert carries both: no call of its own
    assert (write.operation, len(write.records)) == ("upsert", 2)
