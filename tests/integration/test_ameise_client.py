"""The Ameise client against the simulator over real HTTP, and the in-memory fake against the same suite."""
from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from simulators.ameise import API_PREFIX, DEFAULT_EMPLOYEE_ID, AmeiseState, create_ameise_app
from simulators.ameise import seed_demo as seed_ameise
from simulators.fakes.ameise import InMemoryAmeise
from simulators.fakes.store import MemoryStore
from simulators.fakes.zoho import InMemoryZoho
from simulators.server import ServerThread
from simulators.zoho import seed_demo as seed_zoho
from syncbridge.adapters.ameise import (
    REFRESHES_PER_CALL,
    AmeiseClient,
    AmeiseOAuth,
    AmeiseReconnectNeeded,
    AmeiseRejected,
    AmeiseUnavailable,
)
from syncbridge.adapters.http import LimitedSession
from syncbridge.adapters.tokens import MemoryTokenStore
from syncbridge.config import Settings
from syncbridge.errors import ReconnectNeeded, Rejected, Unavailable
from syncbridge.handlers import SyncDependencies, sync_crm_record_to_ameise
from syncbridge.mapping import load_mapping
from syncbridge.messages import SyncCrmRecordToAmeise
from syncbridge.ports import OAuthToken
from tests.support.clock import FakeClock
from tests.support.waiting import wait_for

REDIRECT_URI = "http://127.0.0.1:8000/connect/ameise/callback"
SCOPE = "ameise/mitarbeiterwebservice offline"

ERIKA = {
    "Anrede": "2",
    "Person": {"Typ": "natuerlich", "Vorname": "Erika", "Nachname": "Mustermann", "Geburtsdatum": "1964-08-12"},
    "Kontaktdaten": [{"Kontext": "privat", "Typ": "email", "Value": "erika.mustermann@example.de"}],
}
ERIKA_ADDRESS = {"Strasse": "Heidestraße 17", "Postleitzahl": "51147", "Ort": "Köln", "Land": "Deutschland"}
ACME = {
    "Anrede": "4",
    "Person": {"Typ": "juristisch", "Firmenname": "Acme Versicherungsmakler GmbH", "Rechtsform": "GmbH"},
    "Kontaktdaten": [{"Kontext": "geschaeftlich", "Typ": "email", "Value": "info@acme.example"}],
}


def contract_for(kunde: str, **changes: Any) -> dict[str, Any]:
    body = {
        "Status": "F", "Gesellschaft": "10330", "Kunde": kunde, "Sparte": "050",
        "Beitrag": {"Brutto": 100, "Netto": 84.03, "Steuer": 15.97, "Zahlweise": "5"},
        "Laufzeit": {"Beginn": "2010-01-01", "Ablauf": "2016-12-31"},
        "Risiko": "", "Antragsnummer": "", "Versicherungsscheinnummer": "123-546", "Vermittler": "A1B2C3",
    }
    body.update(changes)
    return body


# ---------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True, params=["requests", "limited"])
def http_session(request, monkeypatch):
    """Each test twice: the clients on requests' own session, and on the worker's (which sends plain calls itself)."""
    if request.param == "limited":
        monkeypatch.setattr(requests, "Session", LimitedSession)
    return request.param


class _Swappable:
    """A WSGI app that passes requests to whichever app the current test put in place."""

    app: Any = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def server():
    """One loopback server for the module; stopping a server costs half a second."""
    swappable = _Swappable()
    with ServerThread(swappable) as running:
        yield swappable, running.url


@pytest.fixture
def sim(server):
    """A fresh simulator state behind the module's server; yields (state, base url)."""
    swappable, url = server
    state = AmeiseState()
    swappable.app = create_ameise_app(state)
    return state, url


def make_oauth(base_url: str, store: MemoryTokenStore | None = None, **kwargs: Any) -> AmeiseOAuth:
    return AmeiseOAuth(
        auth_url=base_url, client_id="dev-ameise-client", client_secret="dev-ameise-secret",
        redirect_uri=REDIRECT_URI, scope=SCOPE, token_store=store or MemoryTokenStore(), timeout=5.0, **kwargs,
    )


def connect(oauth: AmeiseOAuth, state: str = "xyz") -> Any:
    """Run the authorization-code flow as a browser would, without following the final redirect."""
    answer = requests.get(oauth.authorization_url(state), allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [state]
    return oauth.exchange_code(query["code"][0])


@pytest.fixture
def connected(sim):
    """(state, base url, oauth, AmeiseClient) with a connected employee."""
    state, url = sim
    oauth = make_oauth(url)
    connect(oauth)
    return state, url, oauth, AmeiseClient(oauth, api_url=url + API_PREFIX, timeout=5.0)


@dataclass
class Target:
    client: Any
    state: AmeiseState
    kind: str


@pytest.fixture(params=["http", "memory"])
def ameise(request) -> Target:
    """The real client against the simulator, and the in-memory fake: the same suite runs on both."""
    if request.param == "http":
        state, _, _, client = request.getfixturevalue("connected")
        return Target(client, state, "http")
    state = AmeiseState()
    return Target(InMemoryAmeise(state), state, "memory")


# ---------------------------------------------------------------- one suite, both implementations
def test_create_person_answers_the_new_kundennummer(ameise):
    nr = ameise.client.create_customer(ERIKA)
    assert nr == "5001234568" and re.fullmatch(r"\d{10}", nr)
    customer = ameise.client.get_customer(nr)
    assert customer["Id"] == nr
    assert (customer["Anrede"], customer["Person"]) == (ERIKA["Anrede"], ERIKA["Person"])
    assert [{k: c[k] for k in ("Kontext", "Typ", "Value")} for c in customer["Kontaktdaten"]] == ERIKA["Kontaktdaten"]
    assert customer["Vermittler"] == "A1B2C3"  # the employee's, as none was given
    assert customer["Benutzername"] == "erika.mustermann@example.de"
    assert ameise.state.creates == {"customers": 1, "contracts": 0}


def test_create_company(ameise):
    nr = ameise.client.create_customer(ACME)
    assert ameise.client.get_customer(nr)["Person"]["Firmenname"] == "Acme Versicherungsmakler GmbH"
    assert ameise.client.create_customer(ERIKA) == str(int(nr) + 1)


def test_update_customer_merges_the_person(ameise):
    nr = ameise.client.create_customer(ERIKA)
    assert ameise.client.update_customer(nr, {"Person": {"Titel": "Dr."}, "Anrede": "2"}) is None
    customer = ameise.client.get_customer(nr)
    assert (customer["Person"]["Titel"], customer["Person"]["Nachname"]) == ("Dr.", "Mustermann")
    assert ameise.state.updates == {"customers": 1, "contracts": 0}
    assert ameise.state.creates["customers"] == 1


def test_main_address_is_set_through_its_sub_resource(ameise):
    nr = ameise.client.create_customer(ERIKA)
    ameise.client.set_main_address(nr, ERIKA_ADDRESS)
    assert ameise.client.get_customer(nr)["Hauptwohnsitz"] == ERIKA_ADDRESS
    ameise.client.set_main_address(nr, {**ERIKA_ADDRESS, "Ort": "Köln-Porz"})
    assert ameise.client.get_customer(nr)["Hauptwohnsitz"]["Ort"] == "Köln-Porz"
    with pytest.raises(AmeiseRejected) as caught:
        ameise.client.set_main_address(nr, {**ERIKA_ADDRESS, "Postleitzahl": "5114"})
    assert (caught.value.status, caught.value.field) == (400, "Postleitzahl")


def test_contact_entries_are_added_and_changed(ameise):
    nr = ameise.client.create_customer(ERIKA)
    ameise.client.add_contact(nr, {"Kontext": "privat", "Typ": "mobil", "Value": "0170 1"})
    [mail, mobil] = ameise.client.get_customer(nr)["Kontaktdaten"]
    ameise.client.update_contact(nr, mobil["Id"], {"Kontext": "privat", "Typ": "mobil", "Value": "0170 2"})
    values = [(c["Typ"], c["Value"]) for c in ameise.client.get_customer(nr)["Kontaktdaten"]]
    assert values == [("email", "erika.mustermann@example.de"), ("mobil", "0170 2")]
    with pytest.raises(AmeiseRejected) as caught:
        ameise.client.update_contact(nr, "999", {"Value": "x"})
    assert caught.value.status == 404


@pytest.mark.parametrize("call", [
    lambda c, nr: c.create_customer({"Personentyp": "natuerlich", "Nachname": "Flach"}),
    lambda c, nr: c.update_customer(nr, {"Ort": "Köln"}),
    lambda c, nr: c.set_main_address(nr, {"PLZ": "51147"}),
    lambda c, nr: c.add_contact(nr, {"Typ": "Email", "Wert": "a@b.de"}),
], ids=["flat-create", "flat-update", "flat-address", "flat-contact"])
def test_the_flat_shape_is_refused_as_the_html_400_naming_no_field(ameise, call):
    nr = ameise.client.create_customer(ERIKA)
    with pytest.raises(AmeiseRejected) as caught:
        call(ameise.client, nr)
    assert (caught.value.status, caught.value.field) == (400, None)
    assert caught.value.message.endswith("Error #400 - Fehlerhafte anfrage!")
    if ameise.kind == "http":
        assert "<html" in caught.value.body
    assert (ameise.state.creates["customers"], ameise.state.updates["customers"]) == (1, 0)


def test_unknown_numbers_read_as_none(ameise):
    assert ameise.client.get_customer("5009999999") is None
    assert ameise.client.get_contract("1999999") is None
    assert ameise.client.customer_contracts("5009999999") == []


def test_update_of_unknown_customer_is_rejected(ameise):
    with pytest.raises(AmeiseRejected) as caught:
        ameise.client.update_customer("5009999999", {"Anrede": "1"})
    assert caught.value.status == 404


def test_search_by_mail_and_text_answers_kunden_such_ergebnisse(ameise):
    erika = ameise.client.create_customer(ERIKA)
    ameise.client.set_main_address(erika, ERIKA_ADDRESS)
    acme = ameise.client.create_customer(ACME)
    [hit] = ameise.client.search_customers({"mail": "ERIKA.mustermann@example.de"})
    assert hit == {"Id": erika, "Text": "Mustermann, Erika (Köln)", "Person": ERIKA["Person"], "Hauptwohnsitz": ERIKA_ADDRESS}
    assert [c["Id"] for c in ameise.client.search_customers({"q": "acme"})] == [acme]
    assert [c["Id"] for c in ameise.client.search_customers({"q": acme})] == [acme]
    assert ameise.client.search_customers({"mail": "nobody@example.de"}) == []
    assert ameise.client.search_customers({"q": "muster", "mail": "info@acme.example"}) == []


def test_search_returns_every_page(ameise):
    for i in range(105):
        ameise.state.seed_customer({"Person": {"Typ": "natuerlich", "Vorname": "Seed", "Nachname": f"Kunde{i:03}"}})
    hits = ameise.client.search_customers({"q": "seed kunde"})
    assert len(hits) == 105
    assert len({h["Id"] for h in hits}) == 105


@pytest.mark.parametrize("query", [{"telefon": "0221"}, {"name": "muster"}, {"kundennummer": "5001234567"}])
def test_unknown_search_filter_is_rejected(ameise, query):
    with pytest.raises(AmeiseRejected) as caught:
        ameise.client.search_customers(query)
    assert caught.value.field == next(iter(query))


@pytest.mark.parametrize(
    "data, field",
    [
        ({"Person": {"Typ": "natuerlich", "Vorname": "Ohne"}}, "Person.Nachname"),
        ({"Person": {"Typ": "juristisch", "Rechtsform": "GmbH"}}, "Person.Firmenname"),
        ({"Person": {"Nachname": "Ohne Typ"}}, "Person.Typ"),
        ({**ERIKA, "Person": {**ERIKA["Person"], "Geburtsdatum": "12.08.1964"}}, "Person.Geburtsdatum"),
        ({**ERIKA, "Anrede": "Frau"}, "Anrede"),
        ({**ERIKA, "Kontaktdaten": [{"Kontext": "privat", "Typ": "email", "Value": "kein-at"}]}, "Kontaktdaten.Value"),
    ],
)
def test_invalid_customer_is_rejected_with_its_field(ameise, data, field):
    with pytest.raises(AmeiseRejected) as caught:
        ameise.client.create_customer(data)
    assert (caught.value.status, caught.value.field) == (400, field)
    assert isinstance(caught.value, Rejected) and not isinstance(caught.value, Unavailable)
    assert ameise.state.creates["customers"] == 0


def test_contract_create_get_and_partial_update(ameise):
    kunde = ameise.client.create_customer(ERIKA)
    nr = ameise.client.create_contract(contract_for(kunde))
    assert nr == "1119877"
    contract = ameise.client.get_contract(nr)
    assert contract["Kunde"] == kunde and contract["Sparte"] == "050"
    assert contract["Beitrag"] == {"Brutto": 100, "Netto": 84.03, "Steuer": 15.97, "Zahlweise": "5"}

    ameise.client.update_contract(nr, {"Beitrag": {"Brutto": 120}, "Laufzeit": {"Ablauf": "2030-12-31"}, "Status": "A"})
    contract = ameise.client.get_contract(nr)
    assert contract["Beitrag"] == {"Brutto": 120, "Netto": 84.03, "Steuer": 15.97, "Zahlweise": "5"}
    assert contract["Laufzeit"] == {"Beginn": "2010-01-01", "Ablauf": "2030-12-31"}
    assert contract["Status"] == "A" and contract["Versicherungsscheinnummer"] == "123-546"
    assert [c["Id"] for c in ameise.client.customer_contracts(kunde)] == [nr]
    assert (ameise.state.creates["contracts"], ameise.state.updates["contracts"]) == (1, 1)


def test_contract_for_unknown_kunde_is_rejected(ameise):
    with pytest.raises(AmeiseRejected) as caught:
        ameise.client.create_contract(contract_for("5009999999"))
    assert (caught.value.status, caught.value.field) == (400, "Kunde")
    assert ameise.state.creates["contracts"] == 0


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"Sparte": "50"}, "Sparte"),
        ({"Status": ""}, "Status"),
        ({"Gesellschaft": None}, "Gesellschaft"),
        ({"Laufzeit": {"Beginn": "01.01.2010"}}, "Laufzeit.Beginn"),
    ],
)
def test_invalid_contract_is_rejected_with_its_field(ameise, changes, field):
    kunde = ameise.client.create_customer(ERIKA)
    with pytest.raises(AmeiseRejected) as caught:
        ameise.client.create_contract(contract_for(kunde, **changes))
    assert caught.value.field == field


def test_foreign_vermittler_is_rejected_naming_no_field(ameise):
    kunde = ameise.client.create_customer(ERIKA)
    with pytest.raises(AmeiseRejected) as caught:
        ameise.client.create_contract(contract_for(kunde, Vermittler="Z9Z9Z9"))
    error = caught.value
    assert (error.status, error.field) == (400, None)
    assert error.message.endswith("Error #400 - Fehlerhafte anfrage!")
    if ameise.kind == "http":
        assert "<html" in error.body  # the real quirk: an HTML page, not a JSON list
    assert ameise.state.creates["contracts"] == 0


# ---------------------------------------------------------------- the handler's customer write, on both
def handler_world(ameise):
    """The demo CRM (in memory) and the demo Ameise behind ``ameise``, and the CRM -> Ameise handler's dependencies."""
    zoho = InMemoryZoho()
    ids = seed_zoho(zoho.state)
    seed_ameise(ameise.state)
    store = MemoryStore()
    deps = SyncDependencies(crm=zoho, ameise=ameise.client, store=store, mapping=load_mapping(),
                            module_entities={"Contacts": "person", "Accounts": "company", "Deals": "contract"})
    return zoho, ids, store, deps


def fail_once(ameise, call: str, path: str) -> None:
    """The next ``call`` fails as unavailable: a 503 page from the simulator, or the fake's injected error."""
    if ameise.kind == "http":
        ameise.state.add_fault(status=503, path_prefix=path)
    else:
        ameise.client.fail_next(AmeiseUnavailable(f"{path}: 503"), call=call)


def sync(deps, module: str, record_id: str, event_id: str):
    return sync_crm_record_to_ameise(SyncCrmRecordToAmeise(module, record_id, event_id), deps)


def test_an_update_failing_midway_is_finished_by_its_retry_as_one_action(ameise):
    zoho, ids, store, deps = handler_world(ameise)
    erika = ids["Erika Mustermann"]
    zoho.update_records("Contacts", [{"id": erika, "Mailing_City": "Köln-Porz", "Mobile": "+49 170 1"}])
    fail_once(ameise, "set_main_address", "kunden/5001234567/adressen")

    with pytest.raises(Unavailable):
        sync(deps, "Contacts", erika, "e-1")
    assert ameise.state.customers["5001234567"]["Hauptwohnsitz"]["Ort"] == "Köln"   # the address call failed
    result = sync(deps, "Contacts", erika, "e-1")                                    # the retry of the message

    customer = ameise.state.customers["5001234567"]
    assert result.action == "updated" and customer["Hauptwohnsitz"]["Ort"] == "Köln-Porz"
    assert [(c["Typ"], c["Value"]) for c in customer["Kontaktdaten"]] == [
        ("email", "erika.mustermann@example.de"), ("telefon", "+49 221 1234567"), ("mobil", "+49 170 1")]
    [entry] = store.activities()
    assert entry.details["calls"] == [
        "PUT kunden/5001234567", "PUT kunden/5001234567/adressen/0",
        "POST kunden/5001234567/kontaktdaten (telefon, privat)", "POST kunden/5001234567/kontaktdaten (mobil, privat)"]


def test_a_create_failing_at_its_address_is_finished_by_its_retry(ameise):
    zoho, ids, store, deps = handler_world(ameise)
    max_id = ids["Max Neumann"]
    fail_once(ameise, "set_main_address", "kunden/5001234568/adressen")

    with pytest.raises(Unavailable):
        sync(deps, "Contacts", max_id, "e-1")
    result = sync(deps, "Contacts", max_id, "e-1")

    assert (result.action, result.ameise_id, ameise.state.creates["customers"]) == ("created", "5001234568", 1)
    customer = ameise.state.customers["5001234568"]
    assert customer["Hauptwohnsitz"] == {"Strasse": "Osterstraße 88", "Postleitzahl": "20259", "Ort": "Hamburg",
                                         "Land": "Deutschland"}
    assert [c["Typ"] for c in customer["Kontaktdaten"]] == ["email", "telefon"]
    assert [e.action for e in store.activities()] == ["written_back", "created"]
    assert zoho.state.get("Contacts", max_id)["Kundennummer"] == "5001234568"


def lose_the_next_create_answer(ameise, deps) -> Callable[[], None]:
    """The next customer create reaches Ameise but its answer is lost; returns what waits for it and undoes it."""
    if ameise.kind == "http":
        # The simulator takes the create and answers after the client has given up.
        client = ameise.client
        deps.ameise = AmeiseClient(client.oauth, api_url=client.api_url, timeout=0.3)
        ameise.state.add_fault(status=None, delay=1.0, path_prefix="kunden")

        def settle() -> None:
            wait_for(lambda: any(r["method"] == "POST" and r["path"].endswith("/kunden") for r in ameise.state.requests),
                     timeout=5, what="the create answered")
            deps.ameise = client
        return settle
    create = ameise.client.create_customer

    def create_and_lose_the_answer(data):
        create(data)
        raise AmeiseUnavailable("Read timed out")

    ameise.client.create_customer = create_and_lose_the_answer
    return lambda: setattr(ameise.client, "create_customer", create)


def test_a_lost_create_answer_is_recovered_through_the_search_array(ameise):
    zoho, ids, store, deps = handler_world(ameise)
    max_id = ids["Max Neumann"]
    settle = lose_the_next_create_answer(ameise, deps)
    with pytest.raises(Unavailable):
        sync(deps, "Contacts", max_id, "e-1")
    settle()
    assert ameise.state.creates["customers"] == 1 and store.create_under_way(f"Contacts/{max_id}")

    result = sync(deps, "Contacts", max_id, "e-1")

    assert (result.action, result.ameise_id, ameise.state.creates["customers"]) == ("created", "5001234568", 1)
    customer = ameise.state.customers["5001234568"]
    assert [c["Typ"] for c in customer["Kontaktdaten"]] == ["email", "telefon"]   # matched, not added twice
    assert customer["Hauptwohnsitz"]["Ort"] == "Hamburg"
    assert not store.create_under_way(f"Contacts/{max_id}")


def test_a_lost_create_of_a_customer_without_mail_is_found_by_its_name(ameise):
    zoho, _, store, deps = handler_world(ameise)
    contact = zoho.seed("Contacts", {"First_Name": "Ohne", "Last_Name": "Mailadresse", "Date_of_Birth": "1970-01-02"})
    # A namesake born on another day is not the lost create.
    ameise.state.seed_customer({"Person": {"Typ": "natuerlich", "Vorname": "Ohne", "Nachname": "Mailadresse",
                                           "Geburtsdatum": "1980-01-02"}}, "5000000001")
    settle = lose_the_next_create_answer(ameise, deps)
    with pytest.raises(Unavailable):
        sync(deps, "Contacts", contact, "e-1")
    settle()
    [lost] = [nr for nr in ameise.state.customers if nr not in ("5000000001", "5001234567")]

    result = sync(deps, "Contacts", contact, "e-1")

    assert (result.action, result.ameise_id, ameise.state.creates["customers"]) == ("created", lost, 1)
    if ameise.kind == "http":
        [search] = [r["query"] for r in ameise.state.requests if r["path"].endswith("/kunden/_search")]
        assert "q=Ohne+Mailadresse" in search and "mail=" not in search


# ---------------------------------------------------------------- OAuth2, real client only
def test_authorization_code_flow_learns_the_employee(sim):
    state, url = sim
    store = MemoryTokenStore()
    oauth = make_oauth(url, store)
    auth_url = oauth.authorization_url("s1")
    query = parse_qs(urlsplit(auth_url).query)
    assert auth_url.startswith(url + "/oauth2/auth?")
    assert query["client_id"] == ["dev-ameise-client"] and query["response_type"] == ["code"]
    assert query["scope"] == [SCOPE] and query["redirect_uri"] == [REDIRECT_URI]

    token = connect(oauth, "s1")
    assert token.extra["employee_id"] == DEFAULT_EMPLOYEE_ID == oauth.employee_id
    assert token.refresh_token in state.refresh_tokens
    assert store.load("ameise").access_token == token.access_token
    assert store.status("ameise") == ("active", "")
    assert oauth.access_token() == token.access_token  # fresh: no refresh


def test_refresh_keeps_the_old_refresh_token_when_none_comes_back(sim):
    state, url = sim
    store = MemoryTokenStore()
    oauth = make_oauth(url, store)
    first = connect(oauth)
    stale = store.load("ameise")
    stale.expires_at = time.time()
    store.save("ameise", stale)

    access = oauth.access_token()
    after = store.load("ameise")
    assert access != first.access_token and after.access_token == access
    assert after.refresh_token == first.refresh_token
    assert after.extra["employee_id"] == DEFAULT_EMPLOYEE_ID


def test_rotated_refresh_token_replaces_the_old_one(sim):
    state, url = sim
    state.rotate_refresh_tokens = True
    store = MemoryTokenStore()
    oauth = make_oauth(url, store)
    first = connect(oauth)
    new_access = oauth.refresh_access_token(rejected=first.access_token)
    after = store.load("ameise")
    assert after.access_token == new_access
    assert after.refresh_token != first.refresh_token
    assert state.refresh_tokens == [after.refresh_token]


def test_refreshes_early_when_the_token_expires_within_the_margin(sim):
    state, url = sim
    state.token_lifetime = 30
    oauth = make_oauth(url, refresh_margin=60.0)
    first = connect(oauth)
    second = oauth.access_token()
    assert second != first.access_token
    token_calls = [r for r in state.requests if r["path"] == "/oauth2/token"]
    assert len(token_calls) == 2  # the code exchange and one refresh


def test_concurrent_callers_share_one_refresh(sim):
    state, url = sim
    store = MemoryTokenStore()
    oauth = make_oauth(url, store)
    connect(oauth)
    stale = store.load("ameise")
    stale.expires_at = time.time()
    store.save("ameise", stale)
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(oauth.access_token())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1 and len(seen) == 8
    assert len([r for r in state.requests if r["path"] == "/oauth2/token"]) == 2  # exchange + one refresh


def test_401_refreshes_once_and_retries(connected):
    state, _, oauth, client = connected
    nr = state.seed_customer(ERIKA)
    state.expire_access_tokens()
    assert client.get_customer(nr)["Person"]["Nachname"] == "Mustermann"
    calls = [(r["method"], r["path"].rsplit("/", 1)[-1], r["status"]) for r in state.requests][-3:]
    assert calls == [("GET", nr, 401), ("POST", "token", 200), ("GET", nr, 200)]
    api_calls = [r for r in state.requests if r["path"].startswith(API_PREFIX)]
    assert api_calls[-1]["request_id"] == api_calls[-2]["request_id"]  # one logical request
    assert oauth.token_store.status("ameise")[0] == "active"


def test_a_401_after_a_refresh_is_sent_again_after_another_one(connected):
    # With many calls in flight, the token one of them refreshed may be refused as well.
    state, _, oauth, client = connected
    number = client.create_customer(ERIKA)
    state.add_fault(status=401, count=2)

    assert client.get_customer(number)["Id"] == number
    assert [r["status"] for r in state.requests if "kunden" in r["path"]][-3:] == [401, 401, 200]
    assert oauth.token_store.status("ameise")[0] == "active"


def test_401_after_the_refreshes_needs_a_reconnect(connected):
    state, _, oauth, client = connected
    state.add_fault(status=401, count=1 + REFRESHES_PER_CALL)
    with pytest.raises(AmeiseReconnectNeeded) as caught:
        client.get_customer("5001234567")
    assert caught.value.status == 401
    assert isinstance(caught.value, ReconnectNeeded) and isinstance(caught.value, Unavailable)
    assert oauth.token_store.status("ameise")[0] == "reconnect_needed"
    # Until a person reconnects, nothing is tried again with the dead grant.
    before = len(state.requests)
    state.expire_access_tokens()
    with pytest.raises(AmeiseReconnectNeeded):
        client.get_customer("5001234567")
    assert [r["status"] for r in state.requests[before:]] == [401]


def test_revoked_grant_needs_a_reconnect(connected):
    state, _, oauth, client = connected
    state.revoke_all()
    with pytest.raises(AmeiseReconnectNeeded) as caught:
        client.create_customer(ERIKA)
    assert caught.value.code == "invalid_grant"
    status, detail = oauth.token_store.status("ameise")
    assert status == "reconnect_needed" and "invalid_grant" in detail
    assert state.creates["customers"] == 0


def test_wrong_client_secret_needs_a_reconnect_on_refresh(sim):
    state, url = sim
    store = MemoryTokenStore()
    connect(make_oauth(url, store))
    wrong = AmeiseOAuth(
        auth_url=url, client_id="dev-ameise-client", client_secret="not-the-secret", redirect_uri=REDIRECT_URI,
        scope=SCOPE, token_store=store, timeout=5.0,
    )
    with pytest.raises(AmeiseReconnectNeeded) as caught:
        wrong.refresh_access_token(rejected=store.load("ameise").access_token)
    assert (caught.value.status, caught.value.code) == (401, "invalid_client")
    assert store.status("ameise")[0] == "reconnect_needed"


def test_token_endpoint_failure_is_unavailable_not_a_reconnect(connected):
    state, _, oauth, client = connected
    state.add_fault(status=503, path_prefix="/oauth2/token")
    with pytest.raises(AmeiseUnavailable) as caught:
        oauth.refresh_access_token(rejected=oauth.access_token())
    assert caught.value.status == 503 and not isinstance(caught.value, ReconnectNeeded)
    assert oauth.token_store.status("ameise")[0] == "active"


def test_used_authorization_code_is_rejected(sim):
    _, url = sim
    oauth = make_oauth(url)
    answer = requests.get(oauth.authorization_url("s"), allow_redirects=False, timeout=5)
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    oauth.exchange_code(code)
    with pytest.raises(AmeiseRejected) as caught:
        oauth.exchange_code(code)
    assert (caught.value.status, caught.value.code) == (400, "invalid_grant")


def test_connect_with_a_configured_refresh_token(sim):
    _, url = sim
    first = connect(make_oauth(url))
    store = MemoryTokenStore()
    token = make_oauth(url, store).connect_with_refresh_token(first.refresh_token)
    assert token.extra["employee_id"] == DEFAULT_EMPLOYEE_ID
    assert store.load("ameise").refresh_token == first.refresh_token


def test_not_connected_needs_a_reconnect(sim):
    _, url = sim
    client = AmeiseClient(make_oauth(url), api_url=url + API_PREFIX)
    with pytest.raises(AmeiseReconnectNeeded):
        client.get_customer("5001234567")


def test_plain_http_is_refused_for_other_hosts():
    with pytest.raises(ValueError, match="https"):
        make_oauth("http://auth.example.com")


def test_from_settings_wires_the_urls(sim):
    state, url = sim
    settings = Settings.from_env(
        {}, ameise_auth_url=url, ameise_api_url=url + API_PREFIX, public_url="http://127.0.0.1:8000",
    )
    store = MemoryTokenStore()
    client = AmeiseClient.from_settings(settings, store)
    assert client.oauth.redirect_uri == REDIRECT_URI
    connect(client.oauth)
    assert client.create_customer(ERIKA) == "5001234568"


# ---------------------------------------------------------------- failures, real client only
def test_server_error_page_is_unavailable(connected):
    state, _, _, client = connected
    state.add_fault(status=500)
    with pytest.raises(AmeiseUnavailable) as caught:
        client.get_customer("5001234567")
    assert caught.value.status == 500
    assert "Whoops, da ist wohl etwas schief gegangen." in caught.value.message
    assert not isinstance(caught.value, Rejected)


def test_429_is_unavailable_with_retry_after(connected):
    state, _, _, client = connected
    state.add_fault(status=429, retry_after=7)
    with pytest.raises(AmeiseUnavailable) as caught:
        client.search_customers({"mail": "a@b.de"})
    assert (caught.value.status, caught.value.retry_after) == (429, 7.0)


def test_timeout_is_unavailable(connected):
    state, url, oauth, _ = connected
    client = AmeiseClient(oauth, api_url=url + API_PREFIX, timeout=0.2)
    state.add_fault(status=None, delay=0.6)
    with pytest.raises(AmeiseUnavailable, match="timed out") as caught:
        client.get_customer("5001234567")
    assert isinstance(caught.value.__cause__, requests.Timeout)


def test_connection_refused_is_unavailable(connected):
    _, _, oauth, _ = connected
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = AmeiseClient(oauth, api_url=f"http://127.0.0.1:{port}{API_PREFIX}", timeout=2.0)
    with pytest.raises(AmeiseUnavailable, match="could not reach"):
        client.get_customer("5001234567")


def test_only_x_dio_headers_are_sent(connected):
    state, _, _, client = connected
    client.get_customer("5001234567")
    assert re.fullmatch(r"[0-9a-f]{32}", state.requests[-1]["request_id"])


# ---------------------------------------------------------------- the preflight check's probe
def test_check_connection_answers_the_employee_and_writes_nothing(ameise):
    assert ameise.client.check_connection() == DEFAULT_EMPLOYEE_ID
    assert ameise.state.creates == {"customers": 0, "contracts": 0}
    assert ameise.state.updates == {"customers": 0, "contracts": 0}


def test_check_connection_refreshes_a_token_ameise_no_longer_takes(connected):
    state, _, oauth, client = connected
    state.expire_access_tokens()
    old = oauth.token_store.load("ameise").access_token
    before = len(state.requests)

    assert client.check_connection() == DEFAULT_EMPLOYEE_ID

    assert oauth.token_store.load("ameise").access_token != old
    searches = [r for r in state.requests[before:] if "/kunden/_search" in r.get("path", "")]
    # One logical search: refused with the stale token, answered after the refresh.
    assert [r["status"] for r in searches] == [401, 200]
    assert searches[0]["request_id"] == searches[1]["request_id"]


def test_check_connection_of_a_revoked_grant_needs_a_reconnect(connected):
    state, _, oauth, client = connected
    state.revoke_all()
    with pytest.raises(AmeiseReconnectNeeded):
        client.check_connection()
    assert oauth.token_store.status("ameise")[0] == "reconnect_needed"


def test_check_connection_without_a_grant_needs_a_reconnect(sim):
    _, url = sim
    with pytest.raises(AmeiseReconnectNeeded):
        AmeiseClient(make_oauth(url), api_url=url + API_PREFIX).check_connection()


class CountingTokenStore(MemoryTokenStore):
    """A token store that counts its reads."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    def load(self, provider: str) -> OAuthToken | None:
        self.loads += 1
        return super().load(provider)


def test_api_calls_use_the_token_as_last_read_for_a_few_seconds(sim):
    state, url = sim
    store, clock = CountingTokenStore(), FakeClock()
    oauth = make_oauth(url, store, token_cache_s=5.0, monotonic=clock.seconds)
    client = AmeiseClient(oauth, api_url=url + API_PREFIX, timeout=5.0)
    connect(oauth)
    number = client.create_customer(ERIKA)
    store.loads = 0

    for _ in range(5):
        assert client.get_customer(number)["Id"] == number
    assert store.loads == 0                              # the token read by the create serves them all

    clock.advance(5.1)
    client.get_customer(number)
    assert store.loads == 1                              # read again once the time is up


def test_a_token_refreshed_elsewhere_is_read_again_on_401(sim):
    state, url = sim
    store, clock = CountingTokenStore(), FakeClock()
    oauth = make_oauth(url, store, monotonic=clock.seconds)
    other = make_oauth(url, store)                        # another process on the same store
    client = AmeiseClient(oauth, api_url=url + API_PREFIX, timeout=5.0)
    connect(oauth)
    number = client.create_customer(ERIKA)
    state.expire_access_tokens()
    renewed = other.refresh_access_token(rejected=store.load("ameise").access_token)
    token_calls = len([r for r in state.requests if r["path"] == "/oauth2/token"])

    assert client.get_customer(number)["Id"] == number

    calls = [(r["path"].rsplit("/", 1)[-1], r["status"]) for r in state.requests][-2:]
    assert calls == [(number, 401), (number, 200)]        # the cached, expired token, then the stored one
    assert len([r for r in state.requests if r["path"] == "/oauth2/token"]) == token_calls  # no refresh of its own
    assert oauth.credentials()[0] == renewed
