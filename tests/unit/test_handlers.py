"""The CRM -> Ameise handler against in-memory Zoho, Ameise and store."""
from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from simulators.ameise import seed_demo as seed_ameise
from simulators.fakes.ameise import InMemoryAmeise
from simulators.fakes.store import MemoryStore
from simulators.fakes.zoho import InMemoryZoho
from simulators.zoho import seed_demo as seed_zoho
from syncbridge.adapters.ameise import AmeiseRejected
from syncbridge.errors import RecordRejected
from syncbridge.handlers import SyncDependencies, sync_crm_record_to_ameise
from syncbridge.mapping import load_mapping, parse_mapping
from syncbridge.messages import SyncCrmRecordToAmeise
from tests.support.ameise import address, contact, contacts, person
from tests.support.clock import FakeClock
from tests.support.waiting import wait_for

MODULES = {"Contacts": "person", "Accounts": "company", "Deals": "contract"}


class World:
    """Zoho and Ameise seeded with the demo records, and the handler's dependencies."""

    def __init__(self) -> None:
        self.zoho = InMemoryZoho()
        self.ameise = InMemoryAmeise()
        self.ids = seed_zoho(self.zoho.state)
        seed_ameise(self.ameise.state)
        self.store = MemoryStore()
        self.deps = SyncDependencies(crm=self.zoho, ameise=self.ameise, store=self.store, mapping=load_mapping(),
                                     module_entities=MODULES, default_vermittler="A1B2C3")
        self._events = 0

    def sync(self, module: str, record_id: str, event_id: str | None = None):
        self._events += 1
        command = SyncCrmRecordToAmeise(module, record_id, event_id or f"event-{self._events}")
        return sync_crm_record_to_ameise(command, self.deps)

    def zoho_record(self, module: str, record_id: str) -> dict:
        return self.zoho.state.get(module, record_id)


@pytest.fixture
def world() -> World:
    return World()


def test_existing_customer_is_updated_and_nothing_is_written_back(world):
    erika = world.ids["Erika Mustermann"]
    world.zoho.update_records("Contacts", [{"id": erika, "Phone": "+49 221 7654321"}])
    world.zoho.writes.clear()

    result = world.sync("Contacts", erika)

    assert (result.action, result.ameise_id, result.written_back) == ("updated", "5001234567", False)
    assert contact(world.ameise.customers["5001234567"], "telefon", "privat") == "+49 221 7654321"
    assert world.ameise.creates["customers"] == 0
    assert [w.operation for w in world.zoho.writes] == []
    assert world.store.find_link("customer", zoho_id=erika).ameise_id == "5001234567"
    [entry] = world.store.activities()
    assert (entry.action, entry.result, entry.entity, entry.ameise_id) == ("updated", "ok", "customer", "5001234567")
    # One action, its parts listed: the customer, its address, the one contact entry it lacked.
    assert entry.details["calls"] == ["PUT kunden/5001234567", "PUT kunden/5001234567/adressen/0",
                                      "POST kunden/5001234567/kontaktdaten (telefon, privat)"]


def test_new_customer_is_created_and_its_number_written_back_without_triggering(world):
    max_id = world.ids["Max Neumann"]

    result = world.sync("Contacts", max_id)

    assert result.action == "created" and result.written_back
    number = result.ameise_id
    assert len(number) == 10 and number.isdigit()
    created = world.ameise.customers[number]
    assert created["Anrede"] == "1"                   # Herr, through the mapping's value table
    assert person(created) == {"Typ": "natuerlich", "Vorname": "Max", "Nachname": "Neumann", "Geburtsdatum": "1988-02-29"}
    assert address(created) == {"Strasse": "Osterstraße 88", "Postleitzahl": "20259", "Ort": "Hamburg", "Land": "Deutschland"}
    assert contacts(created) == [("email", "privat", "max.neumann@example.de"), ("telefon", "privat", "+49 40 9876543")]
    assert world.zoho_record("Contacts", max_id)["Kundennummer"] == number
    [write] = world.zoho.writes
    assert write.operation == "update" and write.records == [{"id": max_id, "Kundennummer": number}]
    assert [e.action for e in world.store.activities()] == ["written_back", "created"]


def test_the_same_event_twice_has_the_effect_of_once(world):
    max_id = world.ids["Max Neumann"]
    first = world.sync("Contacts", max_id, event_id="e-1")
    second = world.sync("Contacts", max_id, event_id="e-1")

    assert (first.action, second.action) == ("created", "duplicate")
    assert world.ameise.creates["customers"] == 1


def test_a_second_event_after_creation_updates_instead_of_creating_again(world):
    max_id = world.ids["Max Neumann"]
    first = world.sync("Contacts", max_id)
    again = world.sync("Contacts", max_id)

    assert (first.action, again.action) == ("created", "updated")
    assert again.ameise_id == first.ameise_id and not again.written_back
    assert world.ameise.creates["customers"] == 1


def test_failed_write_back_is_retried_from_the_link_without_a_second_customer(world):
    max_id = world.ids["Max Neumann"]
    first = world.sync("Contacts", max_id)
    # The write-back was lost (e.g. someone cleared the field): the link still knows the number.
    world.zoho.update_records("Contacts", [{"id": max_id, "Kundennummer": None}])

    again = world.sync("Contacts", max_id)

    assert again.action == "updated" and again.written_back
    assert world.zoho_record("Contacts", max_id)["Kundennummer"] == first.ameise_id
    assert world.ameise.creates["customers"] == 1


def test_company_becomes_a_legal_person(world):
    result = world.sync("Accounts", world.ids["Muster Bau GmbH"])

    created = world.ameise.customers[result.ameise_id]
    assert result.action == "created"
    assert person(created) == {"Typ": "juristisch", "Firmenname": "Muster Bau GmbH", "Rechtsform": "GmbH"}
    assert created["Anrede"] == "4" and contact(created, "email", "geschaeftlich") == "info@musterbau.example"
    assert world.zoho_record("Accounts", world.ids["Muster Bau GmbH"])["Kundennummer"] == result.ameise_id


def test_existing_contract_is_updated(world):
    deal = world.ids["Wohngebäude Mustermann"]
    world.zoho.update_records("Deals", [{"id": deal, "Amount": 120.5}])

    result = world.sync("Deals", deal)

    assert (result.action, result.ameise_id) == ("updated", "1119876")
    contract = world.ameise.contracts["1119876"]
    assert contract["Beitrag"]["Brutto"] == 120.5 and contract["Kunde"] == "5001234567"
    assert world.ameise.creates["contracts"] == 0


def test_new_contract_of_a_new_customer_creates_the_customer_first(world):
    deal = world.ids["Haftpflicht Neumann"]

    result = world.sync("Deals", deal)

    assert result.action == "created" and result.written_back
    contract = world.ameise.contracts[result.ameise_id]
    max_number = world.zoho_record("Contacts", world.ids["Max Neumann"])["Kundennummer"]
    assert contract["Kunde"] == max_number and contract["Sparte"] == "040" and contract["Vermittler"] == "A1B2C3"
    assert world.zoho_record("Deals", deal)["Vertragsnummer"] == result.ameise_id
    assert world.ameise.creates == {"customers": 1, "contracts": 1}


def test_contract_without_customer_is_rejected_naming_the_lookup(world):
    deal = world.zoho.seed("Deals", {"Deal_Name": "Ohne Kunde", "Stage": "Neu", "Sparte": "040"})
    with pytest.raises(RecordRejected) as err:
        world.sync("Deals", deal)
    assert err.value.field == "Contact_Name"
    assert world.ameise.creates["contracts"] == 0


def test_record_gone_from_the_crm_is_skipped_and_remembered(world):
    result = world.sync("Contacts", "4150868000999999999", event_id="gone")
    assert result.action == "skipped"
    assert world.store.was_processed("gone")
    assert world.store.activities()[0].action == "skipped"


def test_unsynced_module_is_rejected(world):
    with pytest.raises(RecordRejected, match="not synced"):
        world.sync("Leads", "4150868000000000001")


def test_unknown_kundennummer_creates_a_new_customer_and_corrects_the_crm(world):
    contact = world.zoho.seed("Contacts", {"Last_Name": "Irrtum", "Kundennummer": "5009999999"})
    result = world.sync("Contacts", contact)
    assert result.action == "created" and result.ameise_id != "5009999999"
    assert world.zoho_record("Contacts", contact)["Kundennummer"] == result.ameise_id


def test_number_claimed_by_two_crm_records_is_reported_not_merged(world):
    world.sync("Contacts", world.ids["Erika Mustermann"])
    # Kundennummer is unique per module in the CRM, but an account can claim a contact's number.
    twin = world.zoho.seed("Accounts", {"Account_Name": "Doppelt GmbH", "Kundennummer": "5001234567"})

    with pytest.raises(RecordRejected) as err:
        world.sync("Accounts", twin)

    assert err.value.field == "Kundennummer" and "already belongs to" in str(err.value)
    assert person(world.ameise.customers["5001234567"])["Nachname"] == "Mustermann"


def test_unconvertible_value_is_rejected_naming_the_field(world):
    world.deps.mapping = parse_mapping(
        '[person.crm_to_ameise]\nfields = [{ crm = "Last_Name", ameise = "Person.Nachname" },'
        ' { crm = "Description", ameise = "Person.Geburtsdatum", type = "date" }]')
    contact = world.zoho.seed("Contacts", {"Last_Name": "Datum", "Description": "31.12.1990"})
    with pytest.raises(RecordRejected) as err:
        world.sync("Contacts", contact)
    assert err.value.field == "Description"
    assert world.ameise.creates["customers"] == 0


def test_ameise_validation_error_propagates_as_rejected(world):
    contact = world.zoho.seed("Contacts", {"Last_Name": "Plz", "Mailing_Zip": "123", "Mailing_Country": "Deutschland"})
    with pytest.raises(AmeiseRejected) as err:
        world.sync("Contacts", contact)
    assert err.value.field == "Postleitzahl"


def test_a_salutation_outside_the_value_table_is_rejected_naming_the_field(world):
    contact = world.zoho.seed("Contacts", {"Last_Name": "Titel", "Salutation": "Dr."})
    with pytest.raises(RecordRejected) as err:
        world.sync("Contacts", contact)
    assert err.value.field == "Salutation" and "value table 'anrede'" in str(err.value)
    assert world.ameise.creates["customers"] == 0


class Echoes:
    def __init__(self) -> None:
        self.marks: dict[tuple[str, str], dict] = {}

    def remember_echo(self, entity: str, key: str, data: dict) -> None:
        self.marks[(entity, key)] = data


def test_what_is_written_to_ameise_is_marked_as_our_echo(world):
    from dataclasses import replace

    world.deps = replace(world.deps, echoes=Echoes())
    erika = world.ids["Erika Mustermann"]
    world.zoho.update_records("Contacts", [{"id": erika, "Phone": "+49 221 7654321"}])
    deal = next(r["id"] for r in world.zoho.state.records("Deals"))

    world.sync("Contacts", erika)
    world.sync("Deals", deal)

    marks = world.deps.echoes.marks
    customer = marks[("customer", "5001234567")]
    # In the DailyUp's columns and normalized form, as the next delivery will carry them.
    assert customer["Telefon"] == "+49 221 7654321" and customer["Nachname"] == "Mustermann"
    assert (customer["Anrede"], customer["PLZ"], customer["Personentyp"]) == ("2", "51147", "natuerlich")
    assert "Vermittler" not in customer and "Person" not in customer  # Ameise names, not DailyUp columns
    [(entity, number)] = [k for k in marks if k[0] == "contract"]
    contract = marks[(entity, number)]
    assert contract["Kundennummer"] == "5001234567"
    assert {"BeitragBrutto", "Sparte"} <= set(contract)


# ---------------------------------------------------------------- one record, one worker at a time
def test_an_event_received_before_a_finished_sync_began_is_coalesced(world):
    from datetime import datetime, timedelta

    erika = world.ids["Erika Mustermann"]
    world.sync("Contacts", erika)
    reads = len(world.zoho.reads)
    long_ago = datetime.now(UTC) - timedelta(seconds=60)

    coalesced = sync_crm_record_to_ameise(SyncCrmRecordToAmeise("Contacts", erika, "late-1", long_ago), world.deps)
    fresh = sync_crm_record_to_ameise(
        SyncCrmRecordToAmeise("Contacts", erika, "new-1", datetime.now(UTC) + timedelta(seconds=60)),
        world.deps)

    assert coalesced.action == "coalesced" and world.store.was_processed("late-1")
    assert fresh.action == "updated"
    assert len(world.zoho.reads) == reads + 1          # only the newer event fetched the record again


def test_a_burst_of_events_for_one_new_record_creates_one_customer(world):
    import threading
    from dataclasses import replace
    from datetime import datetime

    world.deps = replace(world.deps, coalesce_margin=0.0)   # receiver and worker share one clock here
    max_id = world.ids["Max Neumann"]
    create = world.ameise.create_customer
    take_record = world.store.take_record
    refused: set[str] = set()

    def counting_lock(key, owner, ttl, **reads):
        taken = take_record(key, owner, ttl, **reads)
        if taken is None:
            refused.add(owner)
        return taken

    def create_while_the_others_wait(data):
        # The first worker creates only once the three others found the record locked.
        assert wait_for(lambda: len(refused) == 3, timeout=10)
        return create(data)

    world.store.take_record = counting_lock
    world.ameise.create_customer = create_while_the_others_wait
    received = datetime.now(UTC)
    results, errors = [], []

    def worker(i):
        try:
            results.append(sync_crm_record_to_ameise(
                SyncCrmRecordToAmeise("Contacts", max_id, f"burst-{i}", received), world.deps))
        except Exception as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert world.ameise.creates["customers"] == 1
    assert sorted(r.action for r in results) == ["coalesced", "coalesced", "coalesced", "created"]


def test_a_record_locked_by_another_worker_is_retried_later_and_a_dead_workers_lock_expires(world):
    from dataclasses import replace

    from syncbridge.errors import RecordBusy, Unavailable

    erika = world.ids["Erika Mustermann"]
    clock = FakeClock()
    world.store = MemoryStore(now=clock)
    world.deps = replace(world.deps, store=world.store, lock_wait=5, lock_ttl=30,
                         monotonic=clock.seconds, sleep=clock.advance, now=clock)
    assert world.store.lock_record(f"Contacts/{erika}", "another-worker", ttl=30)

    with pytest.raises(RecordBusy) as busy:
        world.sync("Contacts", erika)
    assert isinstance(busy.value, Unavailable)        # retried with a delay, never dead-lettered at once
    assert clock.current == FakeClock().current + timedelta(seconds=5)   # it waited lock_wait, no longer

    clock.advance(31)                                 # the other worker died: its lock runs out
    assert world.sync("Contacts", erika).action == "updated"


# ---------------------------------------------------------------- a create whose answer was lost
@pytest.mark.parametrize("reached_ameise", [True, False], ids=["created-then-lost", "never-arrived"])
def test_a_create_whose_answer_was_lost_is_not_made_twice(world, reached_ameise):
    from syncbridge.adapters.ameise import AmeiseUnavailable

    max_id = world.ids["Max Neumann"]
    create = world.ameise.create_customer

    def create_and_lose_the_answer(data):
        if reached_ameise:
            create(data)          # Ameise took it ...
        raise AmeiseUnavailable("Read timed out")   # ... but the answer never came

    world.ameise.create_customer = create_and_lose_the_answer
    with pytest.raises(AmeiseUnavailable):
        world.sync("Contacts", max_id)
    world.ameise.create_customer = create

    result = world.sync("Contacts", max_id)

    assert world.ameise.creates["customers"] == 1
    assert result.action == "created" and world.zoho_record("Contacts", max_id)["Kundennummer"] == result.ameise_id
    assert not world.store.create_under_way(f"Contacts/{max_id}")


def test_a_sync_that_fails_before_its_create_leaves_no_create_note(world):
    from syncbridge.adapters.zoho import ZohoUnavailable

    max_id = world.ids["Max Neumann"]
    world.zoho.fail_next(ZohoUnavailable("503 Service Unavailable"))
    with pytest.raises(ZohoUnavailable):
        world.sync("Contacts", max_id)
    # Noted with the lease of the record without a link, and withdrawn with its release: no create went out.
    assert not world.store.create_under_way(f"Contacts/{max_id}")
    searches = []
    search = world.ameise.search_customers
    world.ameise.search_customers = lambda query: searches.append(query) or search(query)

    result = world.sync("Contacts", max_id)

    assert result.action == "created" and world.ameise.creates["customers"] == 1
    assert searches == []             # nothing to look for in Ameise: no create was sent before
    assert not world.store.create_under_way(f"Contacts/{max_id}")


def test_a_worker_that_dies_after_sending_a_create_leaves_the_note_its_lease_made(world):
    from dataclasses import replace

    max_id, key = world.ids["Max Neumann"], f"Contacts/{world.ids['Max Neumann']}"
    clock = FakeClock()
    world.store = MemoryStore(now=clock)
    world.deps = replace(world.deps, store=world.store, lock_ttl=30, monotonic=clock.seconds, sleep=clock.advance,
                         now=clock)
    create, finish, note = world.ameise.create_customer, world.store.finish_record, world.store.note_create
    notes = []

    class Died(BaseException):
        """The process ends: nothing after the create runs, not even the release."""

    def create_and_die(data):
        assert world.store.create_under_way(key)      # in the store before the create goes out
        create(data)
        raise Died()

    world.ameise.create_customer = create_and_die
    world.store.finish_record = lambda *args, **kwargs: None
    world.store.note_create = lambda *args: notes.append(args) or note(*args)
    with pytest.raises(Died):
        world.sync("Contacts", max_id)
    assert notes == []                                 # the note came with the lease: no write of its own
    world.ameise.create_customer, world.store.finish_record = create, finish
    clock.advance(31)                                  # the dead worker's lease runs out

    result = world.sync("Contacts", max_id)

    # The retry finds the note, looks in Ameise and finds what the create made: updated, not created twice.
    assert world.ameise.creates["customers"] == 1 and result.action == "created"
    assert world.zoho_record("Contacts", max_id)["Kundennummer"] == result.ameise_id
    assert not world.store.create_under_way(key)


def test_a_lost_contract_create_is_found_among_the_customers_contracts(world):
    from syncbridge.adapters.ameise import AmeiseUnavailable

    deal = next(r["id"] for r in world.zoho.state.records("Deals"))
    world.zoho.update_records("Deals", [{"id": deal, "Vertragsnummer": None}])   # a new contract for Ameise
    create = world.ameise.create_contract

    def create_and_lose_the_answer(data):
        create(data)
        raise AmeiseUnavailable("Read timed out")

    world.ameise.create_contract = create_and_lose_the_answer
    with pytest.raises(AmeiseUnavailable):
        world.sync("Deals", deal)
    world.ameise.create_contract = create

    result = world.sync("Deals", deal)

    assert world.ameise.creates["contracts"] == 1 and result.action == "created"


# ---------------------------------------------------------------- a customer written in several calls
def test_a_failed_address_call_is_finished_by_the_retry_as_one_create(world):
    from syncbridge.adapters.ameise import AmeiseUnavailable

    max_id = world.ids["Max Neumann"]
    world.ameise.fail_next(AmeiseUnavailable("adressen: 503"), call="set_main_address")
    with pytest.raises(AmeiseUnavailable):
        world.sync("Contacts", max_id, event_id="e-max")
    assert world.store.activities() == []                 # nothing logged for the half-done write

    result = world.sync("Contacts", max_id, event_id="e-max")

    assert result.action == "created" and world.ameise.creates["customers"] == 1
    created = world.ameise.customers[result.ameise_id]
    assert address(created)["Ort"] == "Hamburg"
    assert contacts(created) == [("email", "privat", "max.neumann@example.de"), ("telefon", "privat", "+49 40 9876543")]
    [entry] = [e for e in world.store.activities() if e.action != "written_back"]
    assert entry.action == "created" and entry.details["calls"] == [
        f"PUT kunden/{result.ameise_id}", f"PUT kunden/{result.ameise_id}/adressen/0"]
    assert not world.store.create_under_way(f"Contacts/{max_id}")


def test_a_contact_call_whose_answer_was_lost_adds_no_second_entry(world):
    from syncbridge.adapters.ameise import AmeiseUnavailable

    erika = world.ids["Erika Mustermann"]
    world.zoho.update_records("Contacts", [{"id": erika, "Mobile": "+49 170 1111111"}])
    add = world.ameise.add_contact

    def add_and_lose_the_answer(number, entry):
        add(number, entry)                                 # Ameise took it ...
        raise AmeiseUnavailable("Read timed out")          # ... but the answer never came

    world.ameise.add_contact = add_and_lose_the_answer
    with pytest.raises(AmeiseUnavailable):
        world.sync("Contacts", erika, event_id="e-erika")
    world.ameise.add_contact = add

    result = world.sync("Contacts", erika, event_id="e-erika")

    assert result.action == "updated"
    assert contacts(world.ameise.customers["5001234567"]) == [
        ("email", "privat", "erika.mustermann@example.de"), ("telefon", "privat", "+49 221 1234567"),
        ("mobil", "privat", "+49 170 1111111")]
    # The telefon entry went in with the lost answer; the retry adds only the mobil entry still missing.
    [entry] = world.store.activities()
    assert entry.details["calls"] == ["PUT kunden/5001234567", "PUT kunden/5001234567/adressen/0",
                                      "POST kunden/5001234567/kontaktdaten (mobil, privat)"]


def test_a_changed_contact_value_replaces_the_entry_of_its_typ_and_kontext(world):
    erika = world.ids["Erika Mustermann"]
    world.sync("Contacts", erika)
    world.zoho.update_records("Contacts", [{"id": erika, "Email": "erika@neu.example"}])

    world.sync("Contacts", erika)

    assert contacts(world.ameise.customers["5001234567"]) == [
        ("email", "privat", "erika@neu.example"), ("telefon", "privat", "+49 221 1234567")]
    assert world.store.activities()[0].details["calls"][-1] == "PUT kunden/5001234567/kontaktdaten/1 (email, privat)"


@pytest.mark.parametrize(("operation", "source", "policy", "reported"), [
    ("delete", "delete event", "ignore", False),
    ("delete", "delete event", "report", True),
    (None, "sync", "report", True),              # a workflow webhook of a record gone by the time it is read
])
def test_a_record_deleted_in_the_crm_is_noted_in_the_deleted_records_and_reported_by_policy(
        world, operation, source, policy, reported):
    from datetime import datetime

    from simulators.fakes.sweep import MemorySweepState

    world.deps.deleted, world.deps.deleted_policy = MemorySweepState(), policy
    received = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

    result = sync_crm_record_to_ameise(
        SyncCrmRecordToAmeise("Contacts", "3652397000000999999", "notify-1", received, operation), world.deps)

    assert result.action == "skipped"
    [deleted] = world.deps.deleted.deleted()
    assert (deleted.module, deleted.record_id, deleted.source) == ("Contacts", "3652397000000999999", source)
    assert deleted.deleted_at == (received if operation == "delete" else None)
    actions = [entry.action for entry in world.store.activities()]
    assert ("deleted_in_crm" in actions) is reported
    # Seen again (Zoho Flow retrying the event): noted once, reported once.
    sync_crm_record_to_ameise(
        SyncCrmRecordToAmeise("Contacts", "3652397000000999999", "notify-2", received, operation), world.deps)
    assert len(world.deps.deleted.deleted()) == 1
    assert [entry.action for entry in world.store.activities()].count("deleted_in_crm") == (1 if reported else 0)
