"""The Zoho client against the simulator over real HTTP, and the in-memory fake against the same suite."""
from __future__ import annotations

import re
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from flask import Flask, request

from simulators.fakes.zoho import InMemoryZoho
from simulators.server import ServerThread
from simulators.zoho import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    ZohoState,
    create_zoho_app,
    seed_demo,
)
from syncbridge.adapters.http import LimitedSession
from syncbridge.adapters.tokens import MemoryTokenStore
from syncbridge.adapters.zoho import (
    REFRESHES_PER_CALL,
    ZohoClient,
    ZohoReconnectNeeded,
    ZohoRejected,
    ZohoUnavailable,
    api_domain_for,
    criteria_and,
    criteria_equals,
)
from syncbridge.config import Settings
from syncbridge.errors import ReconnectNeeded, Rejected, Unavailable
from syncbridge.ports import CrmField
from tests.support.clock import FakeClock
from tests.support.waiting import wait_for

MISSING_ID = "5725767000099999999"
DEFAULT_MAPPING = Path(__file__).resolve().parents[2] / "syncbridge" / "mappings" / "default.toml"
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")


def mapping_fields(kind: str) -> set[str]:
    """Every CRM field the default mapping reads or writes for ``kind`` (top-level API names)."""
    with DEFAULT_MAPPING.open("rb") as handle:
        sections = tomllib.load(handle)[kind]
    names = set()
    for direction, section in sections.items():
        names |= {rule["crm"].split(".")[0] for rule in section.get("fields", []) if "crm" in rule}
        names |= set(section.get("customer_lookups", {}))
        if direction == "ameise_to_crm":  # there the constants are CRM fields
            names |= set(section.get("constants", {}))
    return names


def is_zoho_id(value) -> bool:
    return isinstance(value, str) and value.isdigit() and 18 <= len(value) <= 19


class SwappableApp:
    """A WSGI app that forwards to whichever app the current test installed."""

    def __init__(self) -> None:
        self.app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


@pytest.fixture(autouse=True, params=["requests", "limited"])
def http_session(request, monkeypatch):
    """Each test twice: the clients on requests' own session, and on the worker's (which sends plain calls itself)."""
    if request.param == "limited":
        monkeypatch.setattr(requests, "Session", LimitedSession)
    return request.param


@pytest.fixture(scope="module")
def swappable() -> SwappableApp:
    return SwappableApp()


@pytest.fixture(scope="module")
def zoho_server(swappable):
    """One simulator server per module (starting one per test costs time); each test gets a fresh state."""
    with ServerThread(swappable) as server:
        yield server


@pytest.fixture
def state(zoho_server, swappable) -> ZohoState:
    state = ZohoState()
    swappable.app = create_zoho_app(state)
    yield state
    state.wait_idle(timeout=2)


@pytest.fixture
def make_client(zoho_server, state):
    """Build a ZohoClient of the simulator; each call may share or bring its own token store."""

    def make(store: MemoryTokenStore | None = None, **overrides) -> ZohoClient:
        options = dict(accounts_url=zoho_server.url, client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET,
                       refresh_token=DEFAULT_REFRESH_TOKEN, token_store=store or MemoryTokenStore(), timeout=5.0)
        options.update(overrides)
        return ZohoClient(**options)

    return make


class Backend:
    """A CRM client plus the simulated CRM state behind it."""

    def __init__(self, client, state: ZohoState) -> None:
        self.client = client
        self.state = state


@pytest.fixture(params=["http", "memory"])
def crm(request) -> Backend:
    """The real client over HTTP against the simulator, or the in-memory fake: same suite, same answers."""
    if request.param == "http":
        state = request.getfixturevalue("state")
        return Backend(request.getfixturevalue("make_client")(), state)
    fake = InMemoryZoho()
    return Backend(fake, fake.state)


# ---------------------------------------------------------------------- shared suite
def test_get_returns_the_full_record_with_string_ids(crm):
    ids = seed_demo(crm.state)
    contact = crm.client.get_record("Contacts", ids["Erika Mustermann"])
    assert contact["id"] == ids["Erika Mustermann"] and is_zoho_id(contact["id"])
    assert contact["Kundennummer"] == "5001234567"
    assert contact["Mailing_City"] == "Köln"
    assert TIME_RE.match(contact["Created_Time"]) and TIME_RE.match(contact["Modified_Time"])
    assert set(contact["Owner"]) == {"name", "id", "email"} and is_zoho_id(contact["Owner"]["id"])
    deal = crm.client.get_record("Deals", ids["Wohngebäude Mustermann"])
    assert deal["Contact_Name"] == {"name": "Erika Mustermann", "id": ids["Erika Mustermann"]}
    assert deal["Amount"] == 100.0 and deal["Vertragsnummer"] == "1119876"


def test_get_missing_record_is_none(crm):
    assert crm.client.get_record("Contacts", MISSING_ID) is None


def test_insert_answers_each_record_in_order(crm):
    results = crm.client.insert_records("Contacts", [
        {"First_Name": "Jana", "Last_Name": "Beispiel"},
        {"First_Name": "Ohne Nachname"},
        {"Last_Name": "x" * 256},
        {"Last_Name": "Kaputt", "Email": "not-an-email"},
        {"Last_Name": "Zweiter"},
    ])
    assert [r.ok for r in results] == [True, False, False, False, True]
    assert [r.code for r in results] == ["SUCCESS", "MANDATORY_NOT_FOUND", "INVALID_DATA", "INVALID_DATA", "SUCCESS"]
    first = results[0]
    assert first.action == "insert" and first.message == "record added" and is_zoho_id(first.record_id)
    assert first.details["id"] == first.record_id and TIME_RE.match(first.details["Created_Time"])
    assert results[1].field == "Last_Name" and results[1].details["json_path"] == "$.data[1].Last_Name"
    assert results[2].field == "Last_Name" and results[2].details["json_path"] == "$.data[2].Last_Name"
    assert results[3].field == "Email"
    assert results[1].record_id is None and results[1].action is None
    stored = crm.state.get("Contacts", first.record_id)
    assert stored["Full_Name"] == "Jana Beispiel"
    assert len(crm.state.records("Contacts")) == 2


def test_insert_reusing_a_unique_value_is_duplicate_data(crm):
    crm.state.set_unique_fields("Contacts", "Kundennummer")
    existing = crm.state.seed("Contacts", {"Last_Name": "Mustermann", "Kundennummer": "5001234567"})
    results = crm.client.insert_records("Contacts", [
        {"Last_Name": "Doppelt", "Kundennummer": "5001234567"},
        {"Last_Name": "Neu", "Kundennummer": "5009999999"},
        {"Last_Name": "Auch neu", "Kundennummer": "5009999999"},  # the batch's own earlier record counts too
    ])
    assert [r.code for r in results] == ["DUPLICATE_DATA", "SUCCESS", "DUPLICATE_DATA"]
    assert results[0].field == "Kundennummer"
    assert results[0].details["duplicate_record"]["id"] == existing
    assert results[0].details["json_path"] == "$.data[0].Kundennummer"
    assert results[2].details["duplicate_record"]["id"] == results[1].record_id


def test_update_answers_each_record_in_order(crm):
    crm.state.set_unique_fields("Contacts", "Kundennummer")
    erika = crm.state.seed("Contacts", {"Last_Name": "Mustermann", "Kundennummer": "5001234567"})
    max_ = crm.state.seed("Contacts", {"Last_Name": "Neumann"})
    results = crm.client.update_records("Contacts", [
        {"id": erika, "Phone": "+49 221 7654321"},
        {"id": MISSING_ID, "Phone": "1"},
        {"Phone": "2"},
        {"id": max_, "Kundennummer": "5001234567"},
        {"id": max_, "Last_Name": ""},
    ])
    assert [r.code for r in results] == ["SUCCESS", "INVALID_DATA", "MANDATORY_NOT_FOUND", "DUPLICATE_DATA",
                                         "MANDATORY_NOT_FOUND"]
    assert results[0].action == "update" and results[0].record_id == erika and results[0].message == "record updated"
    assert [r.field for r in results[1:]] == ["id", "id", "Kundennummer", "Last_Name"]
    assert crm.state.get("Contacts", erika)["Phone"] == "+49 221 7654321"
    assert crm.state.get("Contacts", max_).get("Kundennummer") is None


def test_upsert_updates_a_match_and_inserts_the_rest(crm):
    crm.state.set_unique_fields("Contacts", "Kundennummer")
    erika = crm.state.seed("Contacts", {"Last_Name": "Mustermann", "Kundennummer": "5001234567"})
    results = crm.client.upsert_records("Contacts", [
        {"Last_Name": "Mustermann", "Kundennummer": "5001234567", "Phone": "+49 221 1"},
        {"Last_Name": "Neu", "Kundennummer": "5002222222"},
        {"First_Name": "Ohne", "Kundennummer": "5003333333"},
    ], duplicate_check_fields=["Kundennummer"])
    assert [(r.ok, r.code, r.action) for r in results] == [
        (True, "SUCCESS", "update"), (True, "SUCCESS", "insert"), (False, "MANDATORY_NOT_FOUND", None)]
    assert results[0].record_id == erika and is_zoho_id(results[1].record_id)
    assert results[2].field == "Last_Name"
    assert crm.state.get("Contacts", erika)["Phone"] == "+49 221 1"
    assert len(crm.state.records("Contacts")) == 2


def test_lookups_are_written_by_id_and_read_as_objects(crm):
    erika = crm.state.seed("Contacts", {"First_Name": "Erika", "Last_Name": "Mustermann"})
    results = crm.client.insert_records("Deals", [
        {"Deal_Name": "A", "Contact_Name": erika},
        {"Deal_Name": "B", "Contact_Name": {"id": erika}},
        {"Deal_Name": "C", "Contact_Name": {"id": MISSING_ID}},
    ])
    assert [r.code for r in results] == ["SUCCESS", "SUCCESS", "INVALID_DATA"]
    assert results[2].field == "Contact_Name"
    for result in results[:2]:
        deal = crm.client.get_record("Deals", result.record_id)
        assert deal["Contact_Name"] == {"name": "Erika Mustermann", "id": erika}


def test_writes_take_at_most_100_records(crm):
    with pytest.raises(ValueError):
        crm.client.insert_records("Leads", [{"Last_Name": f"L{i}"} for i in range(101)])
    assert crm.client.update_records("Leads", []) == []
    results = crm.client.insert_records("Leads", [{"Last_Name": f"L{i}"} for i in range(100)])
    assert len(results) == 100 and all(r.ok for r in results)
    assert len({r.record_id for r in results}) == 100


def test_delete_answers_each_id_in_order(crm):
    erika = crm.state.seed("Contacts", {"Last_Name": "Mustermann"})
    max_ = crm.state.seed("Contacts", {"Last_Name": "Neumann"})
    keep = crm.state.seed("Contacts", {"Last_Name": "Bleibt"})
    results = crm.client.delete_records("Contacts", [erika, MISSING_ID, max_])
    assert [(r.ok, r.code, r.action, r.record_id) for r in results] == [
        (True, "SUCCESS", "delete", erika), (False, "INVALID_DATA", None, None), (True, "SUCCESS", "delete", max_)]
    assert results[0].message == "record deleted" and results[1].details == {"id": MISSING_ID}
    assert [r["id"] for r in crm.state.records("Contacts")] == [keep]
    assert crm.client.get_record("Contacts", erika) is None


def test_delete_of_only_unknown_ids_still_answers_per_id(crm):
    [result] = crm.client.delete_records("Deals", [MISSING_ID])
    assert (result.ok, result.code) == (False, "INVALID_DATA")


def test_delete_takes_at_most_100_ids_and_costs_one_credit(crm):
    ids = [crm.state.seed("Leads", {"Last_Name": f"L{i}"}) for i in range(101)]
    with pytest.raises(ValueError):
        crm.client.delete_records("Leads", ids)
    assert crm.client.delete_records("Leads", []) == []
    assert crm.state.credits_used == 0
    assert all(r.ok for r in crm.client.delete_records("Leads", ids[:100]))
    assert crm.state.credits_used == 1
    assert [r["id"] for r in crm.state.records("Leads")] == ids[100:]


def test_search_finds_by_escaped_criteria(crm):
    tricky = r"Müller (Bau), GmbH \ Nord"
    wanted = crm.state.seed("Accounts", {"Account_Name": tricky, "Billing_City": "Köln"})
    crm.state.seed("Accounts", {"Account_Name": "Müller", "Billing_City": "Köln"})
    found = crm.client.search_records("Accounts", criteria_equals("Account_Name", tricky))
    assert [r["id"] for r in found] == [wanted] and is_zoho_id(found[0]["id"])
    both = crm.client.search_records("Accounts", "(Billing_City:starts_with:Kö)")
    assert len(both) == 2
    narrowed = crm.client.search_records("Accounts", criteria_and(criteria_equals("Billing_City", "köln"),
                                                                   "(Account_Name:starts_with:Müller \\()"))
    assert [r["id"] for r in narrowed] == [wanted]
    assert crm.client.search_records("Accounts", criteria_equals("Account_Name", "Niemand GmbH")) == []


def test_search_reads_every_page(crm):
    ids = {crm.state.seed("Leads", {"Last_Name": f"Massen {i}", "Company": "Bulk"}) for i in range(205)}
    found = crm.client.search_records("Leads", criteria_equals("Company", "Bulk"))
    assert {r["id"] for r in found} == ids and len(found) == 205


def test_unknown_module_and_bad_criteria_are_rejected(crm):
    with pytest.raises(ZohoRejected) as caught:
        crm.client.get_record("Kontakte", MISSING_ID)
    assert caught.value.code == "INVALID_MODULE" and caught.value.status == 400
    with pytest.raises(ZohoRejected) as caught:
        crm.client.search_records("Contacts", "(Email:equals:a@b.de")
    assert caught.value.code == "INVALID_QUERY"


def test_field_metadata_types_every_field_the_default_mapping_uses(crm):
    contacts = {f.api_name: f for f in crm.client.field_metadata("Contacts")}
    assert contacts["Kundennummer"] == CrmField("Kundennummer", "text", 50, unique=True, custom_field=True,
                                                duplicate_check=True)
    assert contacts["Email"].data_type == "email" and contacts["Email"].length == 100
    assert contacts["Email"].duplicate_check and not contacts["Email"].unique  # the system duplicate-check field
    assert contacts["Last_Name"].length == 80 and not contacts["Last_Name"].custom_field
    assert contacts["Salutation"].data_type == "picklist" and {"Herr", "Frau"} <= set(contacts["Salutation"].pick_list_values)
    assert "-None-" not in contacts["Salutation"].pick_list_values
    assert contacts["Account_Name"].data_type == "lookup" and contacts["Account_Name"].lookup_module == "Accounts"
    assert contacts["Full_Name"].read_only and not contacts["Mailing_City"].duplicate_check
    deals = {f.api_name: f for f in crm.client.field_metadata("Deals")}
    assert deals["Vertragsnummer"].unique and deals["Vertragsnummer"].duplicate_check
    assert deals["Amount"].data_type == "currency" and deals["Beginn"].data_type == "date"
    assert "Abgeschlossen" in deals["Stage"].pick_list_values
    assert deals["Contact_Name"].lookup_module == "Contacts"
    accounts = {f.api_name: f for f in crm.client.field_metadata("Accounts")}
    assert accounts["Kundennummer"].unique and accounts["Account_Name"].duplicate_check
    assert accounts["Email"].custom_field and accounts["Email"].data_type == "email"
    for kind, module, key in (("person", "Contacts", "Kundennummer"), ("company", "Accounts", "Kundennummer"),
                              ("contract", "Deals", "Vertragsnummer")):
        known = {f.api_name for f in crm.client.field_metadata(module)}
        used = mapping_fields(kind) | {key, "Vermittler", "Ameise_Status"}
        assert used <= known, f"{module} lacks {sorted(used - known)}"


def test_field_metadata_follows_changes_to_the_crm(crm):
    crm.state.set_field("Contacts", "Kundennummer", unique=False)
    crm.state.drop_field("Contacts", "Titel")
    crm.state.add_field("Contacts", "Hobby", "picklist", pick_list_values=["Segeln", "Golf"])
    fields = {f.api_name: f for f in crm.client.field_metadata("Contacts")}
    assert not fields["Kundennummer"].unique and not fields["Kundennummer"].duplicate_check
    assert "Titel" not in fields
    assert fields["Hobby"] == CrmField("Hobby", "picklist", None, custom_field=True, pick_list_values=("Segeln", "Golf"))
    with pytest.raises(ZohoRejected) as caught:
        crm.client.field_metadata("Kontakte")
    assert caught.value.code == "INVALID_MODULE"


def test_writes_to_an_unknown_field_are_refused_naming_it(crm):
    [result] = crm.client.insert_records("Contacts", [{"Last_Name": "Roth", "Lieblingsfarbe": "blau"}])
    assert not result.ok and result.code == "INVALID_DATA" and result.field == "Lieblingsfarbe"
    crm.state.drop_field("Contacts", "Titel")
    [result] = crm.client.insert_records("Contacts", [{"Last_Name": "Roth", "Titel": "Dr."}])
    assert result.field == "Titel" and result.fields == ("Titel",)
    assert crm.state.find("Contacts", Last_Name="Roth") == []


@pytest.mark.parametrize("module, field, value, expected", [
    ("Deals", "Probability", 12.7, "integer"),     # refused, not truncated to 12
    ("Deals", "Probability", "zwölf", "integer"),
    ("Deals", "Amount", "viel", "currency"),
    ("Deals", "Beginn", "01.01.2020", "date"),
    ("Contacts", "Email", "keine-adresse", "email"),
    ("Contacts", "Salutation", ["Herr"], "picklist"),
    ("Contacts", "Email_Opt_Out", "ja", "boolean"),
    ("Contacts", "Mailing_City", {"name": "Köln"}, "text"),
])
def test_a_value_of_the_wrong_type_is_refused_with_the_expected_type(crm, module, field, value, expected):
    name = "Deal_Name" if module == "Deals" else "Last_Name"
    [result] = crm.client.insert_records(module, [{name: "Typfehler", field: value}])
    assert not result.ok and result.code == "INVALID_DATA" and result.field == field
    assert result.details["expected_data_type"] == expected and f"expected {expected}" in result.message
    assert crm.state.records(module) == []


def test_whole_numbers_and_numeric_text_are_taken_as_numbers(crm):
    [result] = crm.client.insert_records("Deals", [{"Deal_Name": "Zahlen", "Probability": "40", "Amount": "99.5"}])
    assert result.ok
    [deal] = crm.state.records("Deals")
    assert (deal["Probability"], deal["Amount"]) == (40, 99.5)


def test_a_picklist_takes_only_its_values_and_names_them(crm):
    [bad, good] = crm.client.insert_records("Contacts", [{"Last_Name": "A", "Salutation": "Herr Dr."},
                                                         {"Last_Name": "B", "Salutation": "Frau"}])
    assert not bad.ok and bad.code == "INVALID_DATA" and bad.field == "Salutation"
    assert {"Herr", "Frau"} <= set(bad.details["supported_values"]) and "allowed: " in bad.message
    assert good.ok and crm.state.get("Contacts", good.record_id)["Salutation"] == "Frau"
    crm.state.set_field("Contacts", "Salutation", pick_list_values=["Herr", "Frau", "Herr Dr."])
    [again] = crm.client.insert_records("Contacts", [{"Last_Name": "A", "Salutation": "Herr Dr."}])
    assert again.ok


def test_a_value_longer_than_the_field_is_refused_with_its_length(crm):
    [result] = crm.client.insert_records("Contacts", [{"Last_Name": "x" * 81}])
    assert not result.ok and result.code == "INVALID_DATA" and result.field == "Last_Name"
    assert result.details["maximum_length"] == 80 and "at most 80 characters" in result.message
    [fits] = crm.client.insert_records("Contacts", [{"Last_Name": "x" * 80}])
    assert fits.ok


def test_several_problems_of_one_record_come_as_multiple_errors_each_naming_its_field(crm):
    existing = crm.state.seed("Contacts", {"Last_Name": "Alt", "Kundennummer": "K-1"})
    [result, fine] = crm.client.insert_records("Contacts", [
        {"Last_Name": "y" * 81, "Salutation": "Majestät", "Kundennummer": "K-1", "Unbekannt": 1},
        {"Last_Name": "Gut"}])
    assert not result.ok and result.code == "MULTIPLE_OR_MULTI_ERRORS"
    assert "api_name" not in result.details
    assert result.fields == ("Last_Name", "Salutation", "Unbekannt", "Kundennummer")
    assert result.field == "Last_Name, Salutation, Unbekannt, Kundennummer"
    codes = {e["details"]["api_name"]: e["code"] for e in result.details["errors"]}
    assert codes == {"Last_Name": "INVALID_DATA", "Salutation": "INVALID_DATA", "Unbekannt": "INVALID_DATA",
                     "Kundennummer": "DUPLICATE_DATA"}
    assert "Kundennummer: duplicate data" in result.message and "Last_Name: invalid data" in result.message
    assert next(e for e in result.details["errors"] if e["code"] == "DUPLICATE_DATA")[
        "details"]["duplicate_record"]["id"] == existing
    assert fine.ok and len(crm.state.records("Contacts")) == 2


def test_upsert_may_match_only_on_unique_or_system_duplicate_check_fields(crm):
    with pytest.raises(ZohoRejected) as caught:
        crm.client.upsert_records("Contacts", [{"Last_Name": "Roth", "Mailing_City": "Köln"}], ["Mailing_City"])
    assert caught.value.status == 400 and caught.value.code == "INVALID_DATA" and caught.value.field == "Mailing_City"
    assert crm.state.records("Contacts") == []
    crm.state.set_field("Contacts", "Kundennummer", unique=False)  # created without "Do not allow duplicate values"
    with pytest.raises(ZohoRejected) as caught:
        crm.client.upsert_records("Contacts", [{"Last_Name": "Roth", "Kundennummer": "K-9"}], ["Kundennummer"])
    assert caught.value.field == "Kundennummer" and "field=Kundennummer" in caught.value.describe()
    crm.state.set_field("Contacts", "Kundennummer", unique=True)
    [first] = crm.client.upsert_records("Contacts", [{"Last_Name": "Roth", "Kundennummer": "K-9"}], ["Kundennummer"])
    [second] = crm.client.upsert_records("Contacts", [{"Last_Name": "Roth-Neu", "Email": "r@example.de"}], ["Email"])
    assert (first.ok, first.action, second.ok, second.action) == (True, "insert", True, "insert")


def test_get_records_names_at_most_50_fields(crm):
    crm.state.seed("Leads", {"Last_Name": "Feld"})
    with pytest.raises(ZohoRejected) as caught:
        crm.client.list_records("Leads", [f"Feld_{i}" for i in range(51)])
    assert caught.value.code == "LIMIT_EXCEEDED" and caught.value.status == 400
    [row] = crm.client.list_records("Leads", ["Last_Name", *[f"Feld_{i}" for i in range(49)]])
    assert row["Last_Name"] == "Feld" and is_zoho_id(row["id"])


def test_get_records_reads_beyond_2000_records_by_page_token(crm):
    ids = [crm.state.seed("Leads", {"Last_Name": f"Massen {i}"}) for i in range(2150)]
    rows = crm.client.list_records("Leads", ["Last_Name"])
    assert [r["id"] for r in rows] == ids
    assert rows[-1] == {"id": ids[-1], "Last_Name": "Massen 2149"}
    assert crm.client.list_records("Deals", ["Deal_Name"]) == []


def test_get_records_modified_since_lists_only_newer_records(crm):
    clock = FakeClock()
    crm.state.wall_clock = clock.seconds
    old = crm.state.seed("Contacts", {"Last_Name": "Alt"})
    changed = crm.state.seed("Contacts", {"Last_Name": "Geändert"})
    clock.advance(60)
    since = clock() - timedelta(seconds=30)
    assert crm.client.list_records("Contacts", ["Last_Name"], modified_since=since) == []   # 304
    crm.state.user_update("Contacts", changed, {"Mailing_City": "Köln"})
    rows = crm.client.list_records("Contacts", ["Last_Name", "Mailing_City"], modified_since=since)
    assert rows == [{"id": changed, "Last_Name": "Geändert", "Mailing_City": "Köln"}]
    assert {r["id"] for r in crm.client.list_records("Contacts", ["Last_Name"])} == {old, changed}


def test_deleted_records_are_listed(crm):
    keep = crm.state.seed("Contacts", {"First_Name": "Bleibt", "Last_Name": "Da"})
    gone = crm.state.seed("Contacts", {"First_Name": "Ist", "Last_Name": "Weg"})
    assert crm.client.deleted_records("Contacts") == []
    [result] = crm.client.delete_records("Contacts", [gone])
    assert result.ok
    [entry] = crm.client.deleted_records("Contacts")
    assert entry["id"] == gone and entry["display_name"] == "Ist Weg" and entry["type"] == "recycle"
    assert TIME_RE.match(entry["deleted_time"]) and is_zoho_id(entry["deleted_by"]["id"])
    assert crm.client.deleted_records("Contacts", "permanent") == []
    assert crm.state.get("Contacts", keep) is not None


# ---------------------------------------------------------------------- client only
@pytest.mark.parametrize("style", ["204", "400", "404", "empty"])
def test_missing_record_in_every_style_is_none(state, make_client, style):
    state.missing_record_style = style
    assert make_client().get_record("Contacts", MISSING_ID) is None


def test_two_clients_share_one_token(state, make_client, zoho_server):
    store = MemoryTokenStore()
    a, b = make_client(store), make_client(store)
    erika = state.seed("Contacts", {"Last_Name": "Mustermann"})
    barrier = threading.Barrier(8)
    errors = []

    def read(client):
        try:
            barrier.wait()
            assert client.get_record("Contacts", erika)["id"] == erika
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(c,)) for c in (a, b) * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert state.tokens_minted() == 1
    token = store.load("zoho")
    assert token.access_token.startswith("1000.") and token.extra["api_domain"] == zoho_server.url
    assert store.status("zoho") == ("active", "")


def test_updates_from_many_threads_while_one_is_in_flight_go_as_one_call_and_cost_its_credits(state, make_client):
    """Write-backs of a worker's threads: those queued behind a call in flight leave together, each
    thread gets its own record's result, and Zoho charges one call of N records, not N calls."""
    state.set_unique_fields("Contacts", "Kundennummer")
    ids = [state.seed("Contacts", {"Last_Name": f"Kunde {n}"}) for n in range(13)]
    held, release = threading.Event(), threading.Event()

    class HoldFirstUpdate(requests.Session):     # requests.Session is the worker's LimitedSession in that run
        def request(self, method, url, *args, **kwargs):
            if method == "PUT" and not held.is_set():
                held.set()
                assert release.wait(10)
            return super().request(method, url, *args, **kwargs)

    client = make_client(session=HoldFirstUpdate())
    client.get_record("Contacts", ids[0])          # the token, minted before the counting starts
    calls, credits = state.api_calls, state.credits_used
    with ThreadPoolExecutor(13) as pool:
        first = pool.submit(client.update_records, "Contacts", [{"id": ids[0], "Kundennummer": "5001000000"}])
        assert held.wait(10)
        # the twelfth takes the first's number: Zoho refuses it, and only it
        numbers = [f"50010000{n:02d}" for n in range(1, 12)] + ["5001000000"]
        later = [pool.submit(client.update_records, "Contacts", [{"id": record, "Kundennummer": number}])
                 for record, number in zip(ids[1:], numbers, strict=True)]
        wait_for(lambda: client._updates.waiting("Contacts") == 12, timeout=10, what="twelve updates waiting")
        release.set()
        [result] = first.result(10)
        assert result.ok and result.record_id == ids[0]
        answers = [future.result(10) for future in later]
    assert [[r.record_id for r in answer] for answer in answers[:11]] == [[record] for record in ids[1:12]]
    assert all(answer[0].ok for answer in answers[:11])
    assert answers[11][0].code == "DUPLICATE_DATA" and answers[11][0].field == "Kundennummer"
    assert [state.get("Contacts", record).get("Kundennummer") for record in ids] == ["5001000000", *numbers[:11], None]
    assert state.api_calls - calls == 2                 # the one in flight, then the twelve together
    assert state.credits_used - credits == 1 + 2        # an update costs a credit per ten records


def test_token_is_refreshed_before_it_expires(state, make_client):
    state.token_lifetime = 100
    early = make_client(refresh_margin=300)
    early.get_record("Contacts", MISSING_ID)
    early.get_record("Contacts", MISSING_ID)
    assert state.tokens_minted() == 2
    relaxed = make_client(refresh_margin=30)
    relaxed.get_record("Contacts", MISSING_ID)
    relaxed.get_record("Contacts", MISSING_ID)
    assert state.tokens_minted() == 3


def test_refused_token_is_refreshed_once_and_the_call_retried(state, make_client):
    store = MemoryTokenStore()
    client = make_client(store)
    erika = state.seed("Contacts", {"Last_Name": "Mustermann"})
    client.get_record("Contacts", erika)
    first = store.load("zoho").access_token
    state.expire_access_tokens()
    assert client.get_record("Contacts", erika)["id"] == erika
    assert state.tokens_minted() == 2 and store.load("zoho").access_token != first


@pytest.mark.parametrize("code", ["INVALID_TOKEN", "AUTHENTICATION_FAILURE"])
def test_token_refused_again_after_refresh_needs_reconnect(state, make_client, code):
    state.auth_error_code = code
    store = MemoryTokenStore()
    client = make_client(store)
    state.add_fault(401, count=1 + REFRESHES_PER_CALL)
    with pytest.raises(ZohoReconnectNeeded) as caught:
        client.get_record("Contacts", MISSING_ID)
    assert caught.value.status == 401
    assert store.status("zoho")[0] == "reconnect_needed"
    assert state.tokens_minted() == 1 + REFRESHES_PER_CALL


def test_a_token_refused_after_one_refresh_is_refreshed_again_and_the_call_goes_through(state, make_client):
    # With many calls in flight, the token one of them refreshed may be refused as well.
    state.auth_error_code = "INVALID_TOKEN"
    store = MemoryTokenStore()
    client = make_client(store)
    state.add_fault(401, count=2)

    assert client.get_record("Contacts", MISSING_ID) is None
    assert store.status("zoho")[0] != "reconnect_needed"
    assert state.tokens_minted() == 3


def test_revoked_refresh_token_needs_reconnect(state, make_client):
    store = MemoryTokenStore()
    client = make_client(store)
    client.get_record("Contacts", MISSING_ID)
    state.revoke_refresh_token(DEFAULT_REFRESH_TOKEN)
    with pytest.raises(ZohoReconnectNeeded) as caught:
        client.get_record("Contacts", MISSING_ID)
    error = caught.value
    assert isinstance(error, ZohoUnavailable) and isinstance(error, ReconnectNeeded) and isinstance(error, Unavailable)
    assert error.code == "invalid_code" and error.status == 200
    status, detail = store.status("zoho")
    assert status == "reconnect_needed" and "invalid_code" in detail


def test_wrong_client_secret_needs_reconnect(state, make_client):
    store = MemoryTokenStore()
    with pytest.raises(ZohoReconnectNeeded):
        make_client(store, client_secret="wrong").get_record("Contacts", MISSING_ID)
    assert store.status("zoho")[0] == "reconnect_needed"


def test_token_throttle_is_unavailable_not_reconnect(state, make_client):
    state.mint_limit = 1
    make_client().get_record("Contacts", MISSING_ID)
    store = MemoryTokenStore()
    with pytest.raises(ZohoUnavailable) as caught:
        make_client(store).get_record("Contacts", MISSING_ID)
    assert not isinstance(caught.value, ReconnectNeeded)
    assert caught.value.status == 400 and caught.value.retry_after == 60
    assert store.status("zoho")[0] == "not_connected"


def test_accounts_server_failure_is_unavailable(state, make_client):
    state.add_fault(500, path_prefix="/oauth/")
    with pytest.raises(ZohoUnavailable) as caught:
        make_client().get_record("Contacts", MISSING_ID)
    assert caught.value.status == 500


@pytest.mark.parametrize("status, retry_after, header, expected", [
    (500, None, False, None), (503, None, False, None), (429, 7, False, 7.0), (429, 2.5, True, 2.5),
    (429, None, False, None)])
def test_server_errors_and_rate_limits_are_unavailable(state, make_client, status, retry_after, header, expected):
    """A 429 names its wait in details.retry_after (Zoho's sample body) or a Retry-After header: the error carries it."""
    client = make_client()
    client.get_record("Contacts", MISSING_ID)  # the token first, so the fault hits the API call
    state.add_fault(status, retry_after=retry_after, retry_after_header=header)
    with pytest.raises(ZohoUnavailable) as caught:
        client.insert_records("Contacts", [{"Last_Name": "X"}])
    assert caught.value.status == status and caught.value.retry_after == expected
    if status != 503:
        assert caught.value.code in ("INTERNAL_ERROR", "TOO_MANY_REQUESTS")
    assert state.records("Contacts") == []


def test_timeout_and_refused_connection_are_unavailable(state, make_client, zoho_server):
    client = make_client(timeout=0.3)
    client.get_record("Contacts", MISSING_ID)
    state.add_fault(None, delay=1.0)
    with pytest.raises(ZohoUnavailable) as caught:
        client.get_record("Contacts", MISSING_ID)
    assert isinstance(caught.value.__cause__, requests.Timeout)
    with ServerThread(Flask("closed")) as closed:
        url = closed.url
    with pytest.raises(ZohoUnavailable) as caught:
        make_client(accounts_url=url).get_record("Contacts", MISSING_ID)
    assert isinstance(caught.value.__cause__, requests.ConnectionError)


def test_client_errors_are_rejected(state, make_client):
    client = make_client()
    client.get_record("Contacts", MISSING_ID)
    state.add_fault(403)
    with pytest.raises(ZohoRejected) as caught:
        client.update_records("Contacts", [{"id": MISSING_ID, "Phone": "1"}])
    error = caught.value
    assert isinstance(error, Rejected) and error.status == 403 and error.code == "NO_PERMISSION"
    assert error.body["status"] == "error" and "zoho 403 NO_PERMISSION" in error.describe()


def test_writes_carry_empty_trigger_so_no_workflow_fires(state, make_client):
    received = []
    receiver = Flask("receiver")

    @receiver.post("/hook")
    def hook():
        received.append(request.get_json())
        return "", 204

    with ServerThread(receiver) as server:
        state.set_unique_fields("Contacts", "Kundennummer")
        state.add_webhook("Contacts", f"{server.url}/hook", style="json", token="t")
        client = make_client()
        [created] = client.insert_records("Contacts", [{"Last_Name": "Beispiel"}])
        client.update_records("Contacts", [{"id": created.record_id, "Kundennummer": "5001111111"}])
        client.upsert_records("Contacts", [{"Last_Name": "Beispiel", "Kundennummer": "5001111111"}], ["Kundennummer"])
        state.user_update("Contacts", created.record_id, {"Phone": "+49 1"})  # a person's edit does fire
        assert state.wait_idle(timeout=5)
    assert [(r["id"], r["operation"]) for r in received] == [(created.record_id, "edit")]
    assert len(state.deliveries) == 1


def test_delete_fails_as_a_whole_when_zoho_does(state, make_client):
    client = make_client()
    record_id = state.seed("Contacts", {"Last_Name": "Mustermann"})
    state.add_fault(503)
    with pytest.raises(ZohoUnavailable):
        client.delete_records("Contacts", [record_id])
    state.add_fault(403)
    with pytest.raises(ZohoRejected) as caught:
        client.delete_records("Contacts", [record_id])
    assert caught.value.code == "NO_PERMISSION"
    assert state.get("Contacts", record_id) is not None


def test_simulated_delete_refuses_what_zoho_refuses(state, make_client, zoho_server):
    token = make_client().access_token().access_token
    headers = {"Authorization": f"Zoho-oauthtoken {token}"}

    def delete(**params):
        return requests.delete(f"{zoho_server.url}/crm/v7/Contacts", params=params, headers=headers, timeout=5)

    assert delete().json()["code"] == "REQUIRED_PARAM_MISSING"
    too_many = delete(ids=",".join(str(5725767000000400000 + i) for i in range(101)))
    assert (too_many.status_code, too_many.json()["code"]) == (400, "LIMIT_EXCEEDED")
    assert delete(ids=MISSING_ID, wf_trigger="maybe").json()["details"] == {"param": "wf_trigger"}
    existing = state.seed("Contacts", {"Last_Name": "Mustermann"})
    partly = delete(ids=f"{existing},{MISSING_ID}", wf_trigger="false")
    assert partly.status_code == 207 and [r["status"] for r in partly.json()["data"]] == ["success", "error"]


def test_credits_reflect_batching(state, make_client):
    client = make_client()
    client.upsert_records("Leads", [{"Last_Name": f"L{i}", "Email": f"l{i}@example.de"} for i in range(100)], ["Email"])
    assert state.credits_used == 10


def test_from_settings_and_plain_http_only_for_loopback(state, zoho_server):
    settings = Settings.from_env({}, zoho_accounts_url=zoho_server.url, http_timeout="5")
    client = ZohoClient.from_settings(settings, MemoryTokenStore())
    assert client.get_record("Contacts", MISSING_ID) is None
    with pytest.raises(ValueError):
        ZohoClient(accounts_url="http://accounts.zoho.example", client_id="c", client_secret="s", refresh_token="r",
                   token_store=MemoryTokenStore())
    ZohoClient(accounts_url="http://zoho-sim:8101", client_id="c", client_secret="s", refresh_token="r",
               token_store=MemoryTokenStore(), allow_http=True)


@pytest.mark.parametrize("accounts, api", [
    ("https://accounts.zoho.eu", "https://www.zohoapis.eu"), ("https://accounts.zoho.com", "https://www.zohoapis.com"),
    ("https://accounts.zoho.com.au", "https://www.zohoapis.com.au"), ("https://accounts.zoho.jp", "https://www.zohoapis.jp"),
    ("https://accounts.zoho.sa", "https://www.zohoapis.sa"), ("https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
    ("http://127.0.0.1:8101", "http://127.0.0.1:8101")])
def test_every_data_centre_maps_to_its_api_domain(accounts, api):
    assert api_domain_for(accounts) == api


def test_criteria_helpers_escape_as_zoho_expects():
    assert criteria_equals("Account_Name", "A (B), C\\D") == r"(Account_Name:equals:A \(B\)\, C\\D)"
    assert criteria_and("(A:equals:1)", "(B:equals:2)") == "((A:equals:1)and(B:equals:2))"
    assert criteria_and("(A:equals:1)") == "(A:equals:1)"


# ---------------------------------------------------------------------- pages and webhook failures (the sweep)
def test_records_are_read_page_by_page_with_a_cursor_beyond_2000(crm):
    ids = [crm.state.seed("Leads", {"Last_Name": f"Massen {i}"}) for i in range(2150)]
    cursors, found, cursor = [], [], None
    while True:
        page = crm.client.records_page("Leads", ["Modified_Time"], cursor=cursor)
        found += [r["id"] for r in page.records]
        cursor = page.next_cursor
        if cursor is None:
            break
        cursors.append(cursor.split(":")[0] + (cursor.split(":")[1] if cursor.startswith("page") else ""))
    assert found == ids
    assert cursors == [f"page{n}" for n in range(2, 11)] + ["token"]   # page numbers up to 2,000, then the token
    assert crm.client.records_page("Deals", ["Deal_Name"]).records == []
    with pytest.raises(ValueError):
        crm.client.records_page("Leads", ["Last_Name"], cursor="page:0")


def test_records_page_lists_only_records_modified_since(crm):
    clock = FakeClock()
    crm.state.wall_clock = clock.seconds
    crm.state.seed("Contacts", {"Last_Name": "Alt"})
    clock.advance(60)
    changed = crm.state.user_create("Contacts", {"Last_Name": "Neu"})
    page = crm.client.records_page("Contacts", ["Modified_Time"], modified_since=clock() - timedelta(seconds=30))
    assert [r["id"] for r in page.records] == [changed] and page.next_cursor is None
    assert crm.client.records_page("Contacts", ["Modified_Time"], modified_since=clock()).records == []   # 304


def test_failed_webhook_calls_are_listed_since_a_time(crm):
    clock = FakeClock(datetime.now(UTC))
    crm.state.add_webhook("Contacts", "http://127.0.0.1:9/nobody", token="t")
    first = crm.state.user_create("Contacts", {"Last_Name": "Verloren"})
    assert crm.state.wait_idle(10)
    failures = crm.client.webhook_failures()
    assert [(f["entity_details"]["module"], f["entity_details"]["id"]) for f in failures] == [("Contacts", first)]
    assert failures[0]["failure_reason"]
    assert crm.client.webhook_failures(clock() + timedelta(hours=1)) == []
