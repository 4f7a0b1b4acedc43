"""The preflight check against the in-memory fakes: the CRM's fields against the mapping, the Ameise connection."""
from __future__ import annotations

import threading

import pytest

from simulators.fakes.ameise import InMemoryAmeise
from simulators.fakes.snapshot import MemorySnapshot
from simulators.fakes.store import MemoryStore
from simulators.fakes.zoho import InMemoryZoho
from simulators.zoho import ZohoState
from syncbridge.adapters.ameise import AmeiseReconnectNeeded, AmeiseUnavailable
from syncbridge.adapters.zoho import ZohoUnavailable
from syncbridge.bootstrap import bootstrap, wait_for_preflight
from syncbridge.config import Settings
from syncbridge.handlers.preflight import (
    BLOCKING,
    WARNING,
    PreflightDependencies,
    last_recorded,
    record_preflight,
    run_preflight,
)
from syncbridge.mapping import load_mapping
from syncbridge.ports import ActivityEntry

C2A, A2C = "crm_to_ameise", "ameise_to_crm"
MODULES = {"Contacts": "person", "Accounts": "company", "Deals": "contract"}


@pytest.fixture
def zoho() -> InMemoryZoho:
    return InMemoryZoho(ZohoState())


@pytest.fixture
def ameise() -> InMemoryAmeise:
    return InMemoryAmeise()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def snapshot() -> MemorySnapshot:
    return MemorySnapshot()


@pytest.fixture
def deps(zoho, ameise, store, snapshot) -> PreflightDependencies:
    return PreflightDependencies(crm=zoho, store=store, mapping=load_mapping(), module_entities=dict(MODULES),
                                 status_field="Ameise_Status", vermittler="A1B2C3", ameise=ameise, lookups=snapshot)


def findings_about(report, subject: str):
    return [f for f in report.findings if f.subject == subject]


def test_the_seeded_crm_and_a_connected_ameise_pass_both_directions(deps):
    report = run_preflight(deps)

    assert report.blocking() == []
    assert report.passes(C2A) and report.passes(A2C)
    # Ameise cannot tell whether the employee may write for the Vermittler: said, not claimed.
    assert any("cannot be verified before a first write" in note and "A1B2C3" in note for note in report.notes)
    assert report.summary().startswith("0 blocking")


def test_a_field_the_mapping_reads_is_missing_blocks_crm_to_ameise_only(deps, zoho):
    zoho.state.drop_field("Contacts", "Geschlecht")

    report = run_preflight(deps)

    [finding] = findings_about(report, "Contacts.Geschlecht")
    assert finding.severity == BLOCKING and finding.directions == (C2A,)
    assert "does not exist" in finding.message and "Person.Geschlecht" in finding.message
    assert "create Geschlecht in Contacts" in finding.fix
    assert not report.passes(C2A) and report.passes(A2C)
    assert "Contacts.Geschlecht" in report.summary(C2A)


def test_a_field_the_mapping_writes_is_missing_blocks_ameise_to_crm(deps, zoho):
    zoho.state.drop_field("Deals", "Sparte_Text")

    report = run_preflight(deps)

    [finding] = findings_about(report, "Deals.Sparte_Text")
    assert finding.severity == BLOCKING and finding.directions == (A2C,)
    assert report.passes(C2A) and not report.passes(A2C)


def test_a_kundennummer_that_allows_duplicates_blocks_the_return_path(deps, zoho):
    zoho.state.set_field("Contacts", "Kundennummer", unique=False)

    report = run_preflight(deps)

    [finding] = findings_about(report, "Contacts.Kundennummer")
    assert finding.severity == BLOCKING and finding.directions == (A2C,)
    assert "allows duplicate values" in finding.message
    assert "Do not allow duplicate values" in finding.fix
    assert report.passes(C2A) and not report.passes(A2C)


def test_a_missing_vertragsnummer_field_blocks_both_directions(deps, zoho):
    zoho.state.drop_field("Deals", "Vertragsnummer")

    report = run_preflight(deps)

    [finding] = findings_about(report, "Deals.Vertragsnummer")
    assert finding.severity == BLOCKING and set(finding.directions) == {C2A, A2C}
    assert "SYNCBRIDGE_ZOHO_FIELD_VERTRAGSNUMMER" in finding.fix


def test_the_match_field_setting_is_what_is_checked(deps):
    deps.kundennummer_field = "Kunden_Nr"

    report = run_preflight(deps)

    assert {f.subject for f in report.blocking()} == {"Contacts.Kunden_Nr", "Accounts.Kunden_Nr"}


def test_a_picklist_lacking_texts_of_the_delivered_lookup_list_lists_the_missing_ones(deps, snapshot):
    for code, text in {"1": "Herr", "2": "Frau", "7": "Hochwürden", "8": "Exzellenz"}.items():
        snapshot.put("anreden", code, {"ID": code, "Text": text})

    report = run_preflight(deps)

    [finding] = [f for f in findings_about(report, "Contacts.Salutation") if f.severity == BLOCKING]
    assert finding.directions == (A2C,)
    assert finding.message.endswith("Exzellenz, Hochwürden")
    assert "Herr" not in finding.message
    assert not report.passes(A2C) and report.passes(C2A)


def test_without_a_delivery_only_the_mapping_file_is_checked_and_the_rest_is_noted(deps, zoho):
    zoho.state.set_field("Deals", "Stage", pick_list_values=["Beratung", "Angebot"])

    report = run_preflight(deps)

    [finding] = findings_about(report, "Deals.Stage")
    assert finding.severity == BLOCKING and "Abgeschlossen" in finding.message and "constants" in finding.message
    assert any("No DailyUp delivery has been accepted yet" in n and "anreden (Contacts.Salutation)" in n
               for n in report.notes)


def test_a_field_of_the_wrong_type_blocks_the_direction_that_writes_it(deps, zoho):
    zoho.state.set_field("Deals", "Beginn", data_type="text")
    zoho.state.set_field("Deals", "Beitrag_Netto", data_type="integer")

    report = run_preflight(deps)

    [beginn] = [f for f in findings_about(report, "Deals.Beginn") if f.severity == BLOCKING]
    assert beginn.directions == (A2C,)
    assert "type text" in beginn.message and "date" in beginn.message
    [netto] = findings_about(report, "Deals.Beitrag_Netto")
    assert netto.severity == BLOCKING and "cents" in netto.message


def test_a_field_read_as_a_date_of_another_type_is_a_warning(deps, zoho):
    zoho.state.set_field("Contacts", "Date_of_Birth", data_type="boolean")

    report = run_preflight(deps)

    severities = {(f.severity, f.directions) for f in findings_about(report, "Contacts.Date_of_Birth")}
    assert severities == {(WARNING, (C2A,)), (BLOCKING, (A2C,))}


def test_lookup_texts_longer_than_the_field_are_listed(deps, zoho, snapshot):
    zoho.state.set_field("Accounts", "Rechtsform", length=10)
    snapshot.put("rechtsformen", "1", {"ID": "1", "Text": "GmbH"})
    snapshot.put("rechtsformen", "2", {"ID": "2", "Text": "Gesellschaft bürgerlichen Rechts"})

    report = run_preflight(deps)

    [finding] = findings_about(report, "Accounts.Rechtsform")
    assert "longer than its 10 characters: Gesellschaft bürgerlichen Rechts" in finding.message


def test_picklist_values_the_value_table_lacks_are_a_warning(deps):
    report = run_preflight(deps)

    [finding] = findings_about(report, "Contacts.Salutation")
    assert finding.severity == WARNING and finding.directions == (C2A,)
    assert "Dr., Prof." in finding.message and "[values.anrede]" in finding.fix


def test_an_unreachable_crm_is_one_blocking_finding(deps, zoho):
    zoho.fail_next(ZohoUnavailable("connection refused"))

    report = run_preflight(deps)

    crm = findings_about(report, "Zoho CRM")
    assert len(crm) == 1 and crm[0].severity == BLOCKING and set(crm[0].directions) == {C2A, A2C}
    assert "cannot be reached" in crm[0].message


def test_an_ameise_needing_a_reconnect_blocks_crm_to_ameise_only(deps, ameise):
    ameise.fail_next(AmeiseReconnectNeeded("refresh token revoked"), call="check_connection")

    report = run_preflight(deps)

    [finding] = findings_about(report, "Ameise")
    assert finding.directions == (C2A,) and "syncbridge connect ameise" in finding.fix
    assert not report.passes(C2A) and report.passes(A2C)


def test_an_unreachable_ameise_blocks_crm_to_ameise(deps, ameise):
    ameise.fail_next(AmeiseUnavailable("timed out"), call="check_connection")

    [finding] = findings_about(run_preflight(deps), "Ameise")
    assert finding.severity == BLOCKING and "cannot be reached" in finding.message


def test_without_a_connection_probe_the_stored_grant_decides(deps):
    deps.ameise = None

    [finding] = findings_about(run_preflight(deps), "Ameise")
    assert "not connected" in finding.message


def test_checking_the_return_path_only_leaves_ameise_alone(deps, ameise):
    ameise.fail_next(AmeiseUnavailable("timed out"), call="check_connection")

    report = run_preflight(deps, [A2C])

    assert all(f.subject != "Ameise" for f in report.findings)
    assert report.passes(A2C) and not report.passes(C2A)   # C2A was not checked, so it does not pass


def test_no_vermittler_setting_is_a_warning(deps):
    deps.vermittler = ""

    [finding] = findings_about(run_preflight(deps), "SYNCBRIDGE_AMEISE_VERMITTLER")
    assert finding.severity == WARNING


def test_a_last_write_refused_with_the_html_page_is_a_warning_until_a_write_succeeds(deps, store):
    store.log(ActivityEntry(direction=C2A, action="failed", result="error", zoho_module="Contacts", zoho_id="42",
                            error="ameise 400: Error #400 - Fehlerhafte anfrage!"))

    [finding] = findings_about(run_preflight(deps), "Ameise")
    assert finding.severity == WARNING and "Contacts/42" in finding.message

    store.log(ActivityEntry(direction=C2A, action="updated", result="ok", zoho_module="Contacts", zoho_id="43"))
    assert findings_about(run_preflight(deps), "Ameise") == []


def test_the_state_is_logged_only_when_it_changes(deps, zoho, store):
    zoho.state.drop_field("Contacts", "Geschlecht")
    failing = run_preflight(deps)

    first = record_preflight(store, C2A, failing)
    assert first is not None and first.result == "error"
    assert first.error.startswith("CRM -> Ameise paused: preflight failing: Contacts.Geschlecht")
    # A system entry naming its direction: the entries of a direction stay the records it synced.
    assert (first.direction, first.details["direction"]) == ("system", C2A)
    assert store.activities(direction=C2A) == []
    assert record_preflight(store, C2A, failing) is None            # unchanged: not logged again

    zoho.state.add_field("Contacts", "Geschlecht", "text")
    passed = record_preflight(store, C2A, run_preflight(deps))
    assert passed is not None and passed.result == "ok"
    assert last_recorded(store, C2A) == passed


def test_a_worker_waits_until_the_check_passes(zoho, ameise, store, publisher):
    settings = Settings.from_env({}, ameise_vermittler="A1B2C3")
    services = bootstrap(settings, store=store, crm=zoho, ameise=ameise, publisher=publisher)
    zoho.state.set_field("Contacts", "Kundennummer", unique=False)
    waits: list[float] = []

    def fix_it_meanwhile(seconds: float) -> None:
        waits.append(seconds)
        zoho.state.set_field("Contacts", "Kundennummer", unique=True)

    ready = wait_for_preflight(services, A2C, threading.Event(), interval=7.0, wait=fix_it_meanwhile)

    assert ready is True and waits == [7.0]                       # one failing check, one pause, one passing check
    log = store.activities(direction="system", action="preflight")
    assert [e.result for e in log] == ["ok", "error"]             # newest first
    assert "Contacts.Kundennummer" in log[1].error


def test_a_stopped_worker_stops_waiting(zoho, ameise, store, publisher):
    services = bootstrap(Settings.from_env({}), store=store, crm=zoho, ameise=ameise, publisher=publisher)
    zoho.state.drop_field("Contacts", "Kundennummer")
    stop = threading.Event()

    assert wait_for_preflight(services, C2A, stop, interval=1.0, wait=lambda _: stop.set()) is False


def test_the_deletion_mark_field_is_checked_in_every_module_in_mark_mode(deps, zoho):
    zoho.state.drop_field("Deals", "Ameise_Status")
    zoho.state.set_field("Contacts", "Ameise_Status", data_type="picklist", pick_list_values=["aktiv"])

    report = run_preflight(deps)

    [deals] = findings_about(report, "Deals.Ameise_Status")
    assert deals.directions == (A2C,) and "SYNCBRIDGE_ZOHO_FIELD_AMEISE_STATUS" in deals.message
    [contacts] = findings_about(report, "Contacts.Ameise_Status")
    assert "geloescht" in contacts.message

    deps.status_field = ""          # delete mode delete or ignore: the field is not written
    assert findings_about(run_preflight(deps), "Deals.Ameise_Status") == []
