"""The Ameise simulator speaks the reference wire formats, quirks included."""
from __future__ import annotations

import base64
import re
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from simulators.ameise import (
    API_PREFIX,
    DEFAULT_EMPLOYEE_ID,
    AmeiseState,
    create_ameise_app,
    seed_demo,
)

REDIRECT_URI = "http://127.0.0.1:8000/connect/ameise/callback"
BASIC = "Basic " + base64.b64encode(b"dev-ameise-client:dev-ameise-secret").decode()
ERIKA = {"Anrede": "2", "Person": {"Typ": "natuerlich", "Vorname": "Erika", "Nachname": "Mustermann"},
         "Kontaktdaten": [{"Kontext": "privat", "Typ": "email", "Value": "erika@example.de"}]}
FLAT = {"Personentyp": "natuerlich", "Vorname": "Erika", "Nachname": "Mustermann", "Email": "erika@example.de"}


def person(nachname: str, **fields) -> dict:
    return {"Person": {"Typ": "natuerlich", "Nachname": nachname, **fields}}


@pytest.fixture
def state() -> AmeiseState:
    return AmeiseState()


@pytest.fixture
def http(state):
    app = create_ameise_app(state)
    assert app.config["AMEISE_STATE"] is state
    return app.test_client()


def authorize(http, scope="ameise/mitarbeiterwebservice offline", **extra) -> str:
    answer = http.get(
        "/oauth2/auth",
        query_string={"client_id": "dev-ameise-client", "redirect_uri": REDIRECT_URI, "response_type": "code",
                      "scope": scope, "state": "st", **extra},
    )
    assert answer.status_code == 302, answer.data
    return answer.headers["Location"]


def code_of(location: str) -> str:
    return parse_qs(urlsplit(location).query)["code"][0]


def exchange(http, code, *, auth=BASIC, redirect_uri=REDIRECT_URI, **form):
    headers = {"Authorization": auth} if auth else {}
    return http.post(
        "/oauth2/token", headers=headers,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, **form},
    )


def tokens(http, **extra) -> dict:
    answer = exchange(http, code_of(authorize(http, **extra)))
    assert answer.status_code == 200, answer.data
    return answer.get_json()


def api(path: str, employee: str = DEFAULT_EMPLOYEE_ID) -> str:
    return f"{API_PREFIX}/{employee}/{path}"


@pytest.fixture
def bearer(http) -> dict:
    return {"Authorization": "Bearer " + tokens(http)["access_token"]}


# ---------------------------------------------------------------- OAuth2
def test_authorize_redirects_with_code_state_and_scope(http):
    location = authorize(http)
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(REDIRECT_URI + "?")
    assert query["state"] == ["st"] and query["scope"] == ["ameise/mitarbeiterwebservice offline"]
    assert query["code"][0]


def test_authorize_refuses_unknown_client_and_redirects_other_errors(http):
    answer = http.get("/oauth2/auth", query_string={"client_id": "nobody", "redirect_uri": REDIRECT_URI, "response_type": "code"})
    assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_client"
    location = authorize(http, response_type="token")
    assert parse_qs(urlsplit(location).query)["error"] == ["unsupported_response_type"]
    location = authorize(http, login_hint="NOBODY")
    assert parse_qs(urlsplit(location).query)["error"] == ["access_denied"]


def test_token_answer_has_the_reference_fields(http, state):
    body = tokens(http)
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert body["scope"] == "ameise/mitarbeiterwebservice offline"
    assert body["refresh_token"] in state.refresh_tokens


def test_no_refresh_token_without_offline(http):
    assert "refresh_token" not in tokens(http, scope="ameise/mitarbeiterwebservice")


@pytest.mark.parametrize(
    "auth, form",
    [
        (None, {"client_id": "dev-ameise-client", "client_secret": "dev-ameise-secret"}),  # body auth is not accepted
        ("Basic " + base64.b64encode(b"dev-ameise-client:wrong").decode(), {}),
        ("Bearer something", {}),
    ],
)
def test_token_endpoint_requires_http_basic_client_auth(http, auth, form):
    answer = exchange(http, code_of(authorize(http)), auth=auth, **form)
    assert answer.status_code == 401
    assert answer.get_json()["error"] == "invalid_client"
    assert answer.headers["WWW-Authenticate"].startswith("Basic")


def test_code_is_single_use_and_bound_to_the_redirect_uri(http):
    code = code_of(authorize(http))
    assert exchange(http, code, redirect_uri="http://elsewhere.example/cb").get_json()["error"] == "invalid_grant"
    code = code_of(authorize(http))
    assert exchange(http, code).status_code == 200
    again = exchange(http, code)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"


# RFC 7636 appendix B: the example verifier and its S256 challenge.
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_pkce_s256_code_is_redeemed_only_with_its_verifier(http):
    code = code_of(authorize(http, code_challenge=RFC_CHALLENGE, code_challenge_method="S256"))
    wrong = exchange(http, code, code_verifier=RFC_VERIFIER[:-1] + "x")
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_grant"
    # A failed attempt uses the code up, as a code is good for one token request.
    assert exchange(http, code, code_verifier=RFC_VERIFIER).status_code == 400
    code = code_of(authorize(http, code_challenge=RFC_CHALLENGE, code_challenge_method="S256"))
    missing = exchange(http, code)
    assert missing.status_code == 400 and missing.get_json()["error"] == "invalid_grant"
    code = code_of(authorize(http, code_challenge=RFC_CHALLENGE, code_challenge_method="S256"))
    assert exchange(http, code, code_verifier=RFC_VERIFIER).status_code == 200


def test_pkce_plain_is_the_default_method_and_a_verifier_needs_a_challenge(http):
    code = code_of(authorize(http, code_challenge=RFC_VERIFIER))
    assert exchange(http, code, code_verifier=RFC_VERIFIER).status_code == 200
    code = code_of(authorize(http))
    unasked = exchange(http, code, code_verifier=RFC_VERIFIER)
    assert unasked.status_code == 400 and unasked.get_json()["error"] == "invalid_grant"


@pytest.mark.parametrize("extra", [
    {"code_challenge": RFC_CHALLENGE, "code_challenge_method": "S512"},
    {"code_challenge": "too-short", "code_challenge_method": "S256"},
    {"code_challenge_method": "S256"},
])
def test_pkce_malformed_requests_are_sent_back_as_invalid_request(http, extra):
    query = parse_qs(urlsplit(authorize(http, **extra)).query)
    assert query["error"] == ["invalid_request"] and query["state"] == ["st"] and "code" not in query


def test_the_consent_page_asks_first_and_keeps_the_pkce_challenge(http, state):
    state.consent_page = True
    page = http.get("/oauth2/auth", query_string={
        "client_id": "dev-ameise-client", "redirect_uri": REDIRECT_URI, "response_type": "code",
        "scope": "ameise/mitarbeiterwebservice offline", "state": "st", "code_challenge": RFC_CHALLENGE,
        "code_challenge_method": "S256"})
    assert page.status_code == 200 and "Erlauben" in page.get_data(as_text=True)
    form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.get_data(as_text=True)))
    denied = http.post("/oauth2/auth/consent", data={**form, "decision": "deny"})
    assert parse_qs(urlsplit(denied.headers["Location"]).query) == {
        "error": ["access_denied"], "error_description": ["the user denied the request"], "state": ["st"]}
    allowed = http.post("/oauth2/auth/consent", data={**form, "decision": "allow"})
    code = code_of(allowed.headers["Location"])
    assert exchange(http, code).status_code == 400                       # the challenge went with the consent
    allowed = http.post("/oauth2/auth/consent", data={**form, "decision": "allow"})
    assert exchange(http, code_of(allowed.headers["Location"]), code_verifier=RFC_VERIFIER).status_code == 200


def test_refresh_answers_no_new_refresh_token_unless_rotating(http, state):
    refresh = tokens(http)["refresh_token"]
    form = {"grant_type": "refresh_token", "refresh_token": refresh}
    body = http.post("/oauth2/token", headers={"Authorization": BASIC}, data=form).get_json()
    assert body["access_token"] and "refresh_token" not in body
    state.rotate_refresh_tokens = True
    rotated = http.post("/oauth2/token", headers={"Authorization": BASIC}, data=form).get_json()
    assert rotated["refresh_token"] != refresh
    old = http.post("/oauth2/token", headers={"Authorization": BASIC}, data=form)
    assert old.status_code == 400 and old.get_json()["error"] == "invalid_grant"


def test_revoked_refresh_token_is_invalid_grant(http, state):
    refresh = tokens(http)["refresh_token"]
    assert state.revoke_refresh_token(refresh)
    answer = http.post("/oauth2/token", headers={"Authorization": BASIC}, data={"grant_type": "refresh_token", "refresh_token": refresh})
    assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_grant"


def test_userinfo_names_the_employee(http, state):
    state.add_employee("07B12X_ABCDEF", "Q1W2E3", "Petra Pfiffig", "petra@example.de")
    body = tokens(http, login_hint="07B12X_ABCDEF")
    info = http.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]}).get_json()
    assert info == {"sub": "07B12X_ABCDEF", "name": "Petra Pfiffig", "email": "petra@example.de"}
    assert http.get("/userinfo").status_code == 401


# ---------------------------------------------------------------- API access
def test_api_needs_a_valid_token_and_answers_html(http, state, bearer):
    answer = http.get(api("kunden/5001234567"))
    assert answer.status_code == 401 and answer.mimetype == "text/html"
    state.expire_access_tokens()
    assert http.get(api("kunden/5001234567"), headers=bearer).status_code == 401


def test_token_of_another_employee_is_forbidden(http, bearer):
    answer = http.get(api("kunden/5001234567", employee="07B12X_ABCDEF"), headers=bearer)
    assert answer.status_code == 403 and answer.mimetype == "text/html"


@pytest.mark.parametrize(
    "header, status",
    [("X-Custom-Trace", 400), ("X-Api-Key", 400), ("X-Dio-Request-Id", 404), ("X-Forwarded-For", 404), ("X-Request-Id", 404)],
)
def test_custom_headers_must_start_with_x_dio(http, bearer, header, status):
    answer = http.get(api("kunden/5001234567"), headers={**bearer, header: "1"})
    assert answer.status_code == status and answer.mimetype == "text/html"


# ---------------------------------------------------------------- customers
def test_create_answers_only_id_and_benutzername(http, bearer, state):
    answer = http.post(api("kunden"), headers=bearer, json=ERIKA)
    assert answer.status_code == 201
    assert answer.get_json() == {"Id": "5001234568", "Benutzername": "erika@example.de"}
    record = http.get(api("kunden/5001234568"), headers=bearer).get_json()
    assert record["Person"] == {"Typ": "natuerlich", "Vorname": "Erika", "Nachname": "Mustermann"}
    assert record["Kontaktdaten"] == [{"Id": "1", "Kontext": "privat", "Typ": "email", "Value": "erika@example.de"}]
    assert record["Anrede"] == "2" and record["Vermittler"] == "A1B2C3" and record["GeaendertAm"]
    assert "Hauptwohnsitz" not in record  # written only through adressen
    assert state.creates == {"customers": 1, "contracts": 0}


@pytest.mark.parametrize("body", [
    FLAT,                                                           # the flat customer of old
    {**ERIKA, "Hauptwohnsitz": {"Ort": "Köln"}},                    # the address has its own sub-resource
    {**ERIKA, "Person": {"Typ": "natuerlich", "Nachname": "M", "Lieblingsfarbe": "blau"}},
    {**ERIKA, "Kontaktdaten": [{"Kontext": "privat", "Typ": "email", "Wert": "a@b.de"}]},
])
def test_unknown_fields_answer_the_html_400_naming_no_field(http, bearer, state, body):
    answer = http.post(api("kunden"), headers=bearer, json=body)
    text = answer.get_data(as_text=True)
    assert answer.status_code == 400 and answer.mimetype == "text/html"
    assert "<title>Error #400 - Fehlerhafte anfrage!</title>" in text
    assert not any(name in text for name in ("Personentyp", "Hauptwohnsitz", "Lieblingsfarbe", "Wert"))
    assert state.customers == {}


def test_validation_answers_a_json_list(http, bearer):
    answer = http.post(api("kunden"), headers=bearer,
                       json={"Anrede": "Frau", "Person": {"Typ": "natuerlich", "Geburtsdatum": "1964-13-01"}})
    assert answer.status_code == 400
    assert answer.get_json() == [
        {"field": "Anrede", "message": "Anrede ist ein Schlüssel (z. B. \"1\"), kein Text"},
        {"field": "Person.Nachname", "message": "Person.Nachname ist ein Pflichtfeld"},
        {"field": "Person.Geburtsdatum", "message": "Person.Geburtsdatum muss ein Datum im Format JJJJ-MM-TT sein"},
    ]
    company = http.post(api("kunden"), headers=bearer, json={"Person": {"Typ": "juristisch", "Rechtsform": "GmbH"}})
    assert company.get_json() == [{"field": "Person.Firmenname", "message": "Person.Firmenname ist ein Pflichtfeld"}]
    broken = http.post(api("kunden"), headers={**bearer, "Content-Type": "application/json"}, data="{not json")
    assert broken.status_code == 400 and "field" not in broken.get_json()[0]


def test_put_merges_person_and_unknown_customer_is_an_html_404(http, bearer, state):
    nr = state.seed_customer(ERIKA)
    answer = http.put(api(f"kunden/{nr}"), headers=bearer, json={"Person": {"Titel": "Dr."}})
    assert answer.status_code == 200
    assert answer.get_json()["Person"] == {"Typ": "natuerlich", "Vorname": "Erika", "Nachname": "Mustermann", "Titel": "Dr."}
    assert state.updates["customers"] == 1
    contacts_in_put = http.put(api(f"kunden/{nr}"), headers=bearer, json={"Kontaktdaten": []})
    assert contacts_in_put.status_code == 400 and contacts_in_put.mimetype == "text/html"
    missing = http.get(api("kunden/5009999999"), headers=bearer)
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    assert http.put(api("kunden/5009999999"), headers=bearer, json={"Anrede": "1"}).status_code == 404


def test_main_address_is_written_through_adressen_and_read_as_hauptwohnsitz(http, bearer, state):
    nr = state.seed_customer(ERIKA)
    address = {"Strasse": "Heidestraße 17", "Postleitzahl": "51147", "Ort": "Köln", "Land": "Deutschland"}
    answer = http.put(api(f"kunden/{nr}/adressen/0"), headers=bearer, json=address)
    assert answer.status_code == 200
    assert http.get(api(f"kunden/{nr}"), headers=bearer).get_json()["Hauptwohnsitz"] == address
    assert http.get(api(f"kunden/{nr}/adressen"), headers=bearer).get_json() == [{"Typ": "Hauptwohnsitz", **address}]
    flat = http.put(api(f"kunden/{nr}/adressen/0"), headers=bearer, json={"PLZ": "51147"})
    assert flat.status_code == 400 and flat.mimetype == "text/html"
    bad = http.put(api(f"kunden/{nr}/adressen/0"), headers=bearer, json={**address, "Postleitzahl": "5114"})
    assert bad.status_code == 400 and bad.get_json()[0]["field"] == "Postleitzahl"
    assert http.put(api(f"kunden/{nr}/adressen/1"), headers=bearer, json=address).status_code == 404


def test_contact_data_sub_resource_adds_and_changes_entries(http, bearer, state):
    nr = state.seed_customer(ERIKA)
    added = http.post(api(f"kunden/{nr}/kontaktdaten"), headers=bearer,
                      json={"Kontext": "privat", "Typ": "telefon", "Value": "0221 1"})
    assert added.status_code == 201 and added.get_json() == {"Id": "2"}
    again = http.post(api(f"kunden/{nr}/kontaktdaten"), headers=bearer,
                      json={"Kontext": "privat", "Typ": "telefon", "Value": "0221 1"})
    assert again.status_code == 201  # the service adds what it is sent: matching is the caller's job
    changed = http.put(api(f"kunden/{nr}/kontaktdaten/1"), headers=bearer, json={"Value": "neu@example.de"})
    assert changed.get_json()["Value"] == "neu@example.de"
    values = [(c["Typ"], c["Value"]) for c in http.get(api(f"kunden/{nr}/kontaktdaten"), headers=bearer).get_json()]
    assert values == [("email", "neu@example.de"), ("telefon", "0221 1"), ("telefon", "0221 1")]
    wrong = http.post(api(f"kunden/{nr}/kontaktdaten"), headers=bearer, json={"Kontext": "urlaub", "Typ": "fax", "Value": "1"})
    assert wrong.status_code == 400 and wrong.get_json()[0]["field"] == "Kontaktdaten.Kontext"
    assert http.put(api(f"kunden/{nr}/kontaktdaten/99"), headers=bearer, json={"Value": "x"}).status_code == 404


def test_sub_resources_of_the_demo_customer(http, bearer, state):
    kunde, vertrag = seed_demo(state)
    get = lambda path: http.get(api(f"kunden/{kunde}/{path}"), headers=bearer).get_json()  # noqa: E731
    assert get("adressen") == [{"Typ": "Hauptwohnsitz", "Strasse": "Heidestraße 17", "Postleitzahl": "51147",
                                "Ort": "Köln", "Land": "Deutschland"}]
    assert get("kontaktdaten") == [{"Id": "1", "Kontext": "privat", "Typ": "email", "Value": "erika.mustermann@example.de"}]
    assert [c["Id"] for c in get("vertraege")] == [vertrag]
    assert get("dokumente") == []


def test_search_answers_a_plain_array_of_kunden_such_ergebnisse(http, bearer, state):
    seed_demo(state)
    acme = state.seed_customer({"Anrede": "4", "Person": {"Typ": "juristisch", "Firmenname": "Acme GmbH"},
                                "Kontaktdaten": [{"Kontext": "geschaeftlich", "Typ": "email", "Value": "info@acme.example"}]})
    for i in range(3):
        state.seed_customer(person(f"Muster{i}"))
    page = http.get(api("kunden/_search"), headers=bearer, query_string={"q": "MUSTER", "from": 1, "size": 2}).get_json()
    assert isinstance(page, list) and [h["Person"]["Nachname"] for h in page] == ["Muster0", "Muster1"]
    by_mail = http.get(api("kunden/_search"), headers=bearer, query_string={"mail": "INFO@acme.example"}).get_json()
    assert by_mail == [{"Id": acme, "Text": "Acme GmbH", "Person": {"Typ": "juristisch", "Firmenname": "Acme GmbH"}}]
    erika = http.post(api("kunden/_search"), headers=bearer, json={"mail": "erika.mustermann@example.de"}).get_json()
    assert erika == [{"Id": "5001234567", "Text": "Mustermann, Erika (Köln)",
                      "Person": {"Typ": "natuerlich", "Vorname": "Erika", "Nachname": "Mustermann",
                                 "Geburtsdatum": "1964-08-12", "Geschlecht": "weiblich"},
                      "Hauptwohnsitz": {"Strasse": "Heidestraße 17", "Postleitzahl": "51147", "Ort": "Köln",
                                        "Land": "Deutschland"}}]
    for invented in ({"name": "muster"}, {"kundennummer": "5001234567"}):
        unknown = http.post(api("kunden/_search"), headers=bearer, json=invented)
        assert unknown.status_code == 400 and unknown.get_json()[0]["field"] == next(iter(invented))
    too_big = http.get(api("kunden/_search"), headers=bearer, query_string={"size": 1000})
    assert too_big.status_code == 400 and too_big.get_json()[0]["field"] == "size"


def test_routes_are_a_blueprint_any_app_can_mount(state):
    from flask import Flask

    from simulators.ameise import blueprint

    app = Flask("elsewhere")
    app.config["AMEISE_STATE"] = state
    app.register_blueprint(blueprint)
    state.seed_customer(ERIKA, "5000000001")
    assert app.test_client().get("/_sim/kunden/5000000001").get_json()["Person"]["Nachname"] == "Mustermann"


# ---------------------------------------------------------------- contracts
def contract(kunde: str, **changes) -> dict:
    return {
        "Status": "F", "Gesellschaft": "10330", "Kunde": kunde, "Sparte": "050",
        "Beitrag": {"Brutto": 100, "Netto": 84.03, "Steuer": 15.97, "Zahlweise": "5"},
        "Laufzeit": {"Beginn": "2010-01-01", "Ablauf": "2016-12-31"},
        "Risiko": "", "Antragsnummer": "", "Versicherungsscheinnummer": "123-546", "Vermittler": "A1B2C3", **changes,
    }


def test_contract_create_answers_only_id_and_put_merges_nested(http, bearer, state):
    kunde = state.seed_customer(ERIKA)
    answer = http.post(api("vertraege"), headers=bearer, json=contract(kunde))
    assert answer.status_code == 201 and answer.get_json() == {"Id": "1119877"}
    merged = http.put(api("vertraege/1119877"), headers=bearer, json={"Beitrag": {"Brutto": 110}}).get_json()
    assert merged["Beitrag"] == {"Brutto": 110, "Netto": 84.03, "Steuer": 15.97, "Zahlweise": "5"}
    assert state.contracts["1119877"]["Beitrag"]["Brutto"] == 110


def test_foreign_vermittler_is_an_html_400_naming_no_field(http, bearer, state):
    kunde = state.seed_customer(ERIKA)
    answer = http.post(api("vertraege"), headers=bearer, json=contract(kunde, Vermittler="Z9Z9Z9"))
    assert answer.status_code == 400 and answer.mimetype == "text/html"
    assert "<title>Error #400 - Fehlerhafte anfrage!</title>" in answer.get_data(as_text=True)
    assert "Vermittler" not in answer.get_data(as_text=True)
    assert state.contracts == {}


def test_contract_validation(http, bearer, state):
    answer = http.post(api("vertraege"), headers=bearer, json=contract("5009999999", Sparte="50", Status=""))
    assert answer.status_code == 400
    assert {m["field"] for m in answer.get_json()} == {"Kunde", "Sparte", "Status"}


# ---------------------------------------------------------------- faults
def test_faults_answer_html_for_count_requests_then_recover(http, bearer, state):
    state.add_fault(status=500, count=2)
    for _ in range(2):
        answer = http.get(api("kunden/5001234567"), headers=bearer)
        assert answer.status_code == 500 and "Whoops, da ist wohl etwas schief gegangen." in answer.get_data(as_text=True)
    assert http.get(api("kunden/5001234567"), headers=bearer).status_code == 404
    assert state.faults == []


def test_429_carries_retry_after_only_when_given(http, bearer, state):
    state.add_fault(status=429)
    state.add_fault(status=429, retry_after=30)
    assert "Retry-After" not in http.get(api("kunden/1"), headers=bearer).headers
    assert http.get(api("kunden/1"), headers=bearer).headers["Retry-After"] == "30"


def test_fault_path_prefix_and_delay(http, bearer, state):
    state.add_fault(status=503, path_prefix="vertraege")
    assert http.get(api("kunden/1"), headers=bearer).status_code == 404
    assert http.get(api("vertraege/1"), headers=bearer).status_code == 503
    state.add_fault(status=503, path_prefix="/oauth2/token")
    assert exchange(http, code_of(authorize(http))).status_code == 503
    state.add_fault(status=None, delay=0.2)
    started = time.monotonic()
    assert http.get(api("kunden/1"), headers=bearer).status_code == 404
    assert time.monotonic() - started >= 0.2
    with pytest.raises(ValueError):
        state.add_fault(status=200)


# ---------------------------------------------------------------- state and admin API
def test_seed_demo_and_new_numbers(state):
    assert seed_demo(state) == ("5001234567", "1119876")
    erika = state.customers["5001234567"]
    assert (erika["Anrede"], erika["Person"]["Geburtsdatum"]) == ("2", "1964-08-12")
    assert (erika["Hauptwohnsitz"]["Postleitzahl"], erika["Hauptwohnsitz"]["Ort"]) == ("51147", "Köln")
    vertrag = state.contracts["1119876"]
    assert vertrag["Versicherungsscheinnummer"] == "WG-123-546" and vertrag["Laufzeit"]["Ablauf"] == "2030-12-31"
    assert state.creates == {"customers": 0, "contracts": 0}  # seeds are not creates
    assert state.create_customer(ERIKA, DEFAULT_EMPLOYEE_ID)["Id"] == "5001234568"


def test_numbers_stay_unique_under_concurrent_creates(state):
    def create_many():
        for _ in range(25):
            state.create_customer(ERIKA, DEFAULT_EMPLOYEE_ID)

    threads = [threading.Thread(target=create_many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(state.customers) == 200 == state.creates["customers"]


def test_admin_api(http, state):
    seeded = http.post("/_sim/seed", json={"demo": True, "kunden": [{**ERIKA, "Id": "5000000001"}]})
    assert seeded.status_code == 201
    assert seeded.get_json() == {"kunden": ["5001234567", "5000000001"], "vertraege": ["1119876"]}
    summary = http.get("/_sim/state").get_json()
    assert (summary["customers"], summary["contracts"], summary["creates"]) == (2, 1, {"customers": 0, "contracts": 0})
    assert len(http.get("/_sim/kunden").get_json()) == 2
    assert http.get("/_sim/kunden/5000000001").get_json()["Person"]["Nachname"] == "Mustermann"
    assert http.get("/_sim/vertraege/1119876").get_json()["Kunde"] == "5001234567"
    assert http.get("/_sim/vertraege/1").status_code == 404 and http.get("/_sim/vertraege/1").get_json()["error"]

    assert http.post("/_sim/faults", json={"status": 503, "count": 2}).status_code == 201
    assert state.faults[0]["status"] == 503 and state.faults[0]["count"] == 2
    assert http.delete("/_sim/faults").get_json() == {"faults": []}

    assert http.post("/_sim/config", json={"token_lifetime": 5, "rotate_refresh_tokens": True}).status_code == 200
    assert (state.token_lifetime, state.rotate_refresh_tokens) == (5, True)
    assert http.post("/_sim/reset").get_json()["customers"] == 0


@pytest.mark.parametrize(
    "path, body",
    [
        ("/_sim/faults", {"status": "boom"}),
        ("/_sim/faults", {"count": 0}),
        ("/_sim/faults", {"stauts": 500}),
        ("/_sim/seed", {"kunden": [{"Person": {"Typ": "natuerlich"}}]}),
        ("/_sim/seed", {"kunden": [FLAT]}),
        ("/_sim/seed", {"vertraege": "nope"}),
        ("/_sim/config", {"token_lifetime": -1}),
        ("/_sim/seed", ["not", "an", "object"]),
    ],
)
def test_admin_api_answers_json_errors(http, path, body):
    answer = http.post(path, json=body)
    assert answer.status_code == 400 and answer.get_json()["error"]


def test_admin_revoke_ends_the_grant(http, state):
    body = tokens(http)
    assert http.post("/_sim/revoke", json={}).get_json() == {"revoked": True}
    assert state.refresh_tokens == []
    assert http.get(api("kunden/1"), headers={"Authorization": "Bearer " + body["access_token"]}).status_code == 401


def test_request_log_records_api_calls_not_admin_calls(http, bearer, state):
    http.get(api("kunden/5001234567"), headers={**bearer, "X-Dio-Request-Id": "abc"})
    http.get("/_sim/state")
    last = state.requests[-1]
    assert (last["method"], last["status"], last["request_id"]) == ("GET", 404, "abc")
    assert not any(r["path"].startswith("/_sim") for r in state.requests)


# ---------------------------------------------------------------- DailyUp delivery and edits in Ameise
def test_dailyup_delivers_the_current_data_in_the_stand_in_format(http, state, tmp_path):
    from syncbridge.dailyup.reader import open_delivery
    from syncbridge.deliveries import ParsedRow

    seed_demo(state)
    edit = {"Kontaktdaten": [{"Kontext": "privat", "Typ": "telefon", "Value": "+49 221 999"}]}
    assert http.patch("/_sim/kunden/5001234567", json=edit).status_code == 200

    answer = http.get("/_sim/dailyup?date=2026-11-23&hauptvermittler=777")

    assert answer.status_code == 200 and answer.mimetype == "application/zip"
    assert 'filename="DailyUp_777_20261123.zip"' in answer.headers["Content-Disposition"]
    path = tmp_path / "DailyUp_777_20261123.zip"
    path.write_bytes(answer.data)
    with open_delivery(path) as delivery:
        rows = {t: [r for r in delivery.rows(t)] for t in delivery.tables}
    assert all(isinstance(r, ParsedRow) for table in rows.values() for r in table)
    (kunde,), (vertrag,) = rows["kunden"], rows["vertraege"]
    assert kunde.data["Telefon"] == "+49 221 999" and kunde.data["Geburtsdatum"] == "1964-08-12"
    assert kunde.data["Anrede"] == "2" and kunde.data["Land"] == "DE"          # codes of the lookup lists
    assert (kunde.data["Vorname"], kunde.data["PLZ"], kunde.data["Email"]) == ("Erika", "51147", "erika.mustermann@example.de")
    assert vertrag.data["Kundennummer"] == "5001234567" and vertrag.data["BeitragNetto"] == "84.03"
    lookups = {r.key: r.data["Text"] for r in rows["vertragsstatus"]}
    assert lookups[vertrag.data["Status"]] == "aktiv"


def test_deleting_a_customer_removes_its_contracts(http, state):
    seed_demo(state)

    answer = http.delete("/_sim/kunden/5001234567")

    assert answer.status_code == 200 and answer.get_json()["vertraege"] == ["1119876"]
    assert state.get_customer("5001234567") is None and state.get_contract("1119876") is None
    assert http.delete("/_sim/kunden/5001234567").status_code == 404
    assert http.patch("/_sim/kunden/5001234567", json={"Anrede": "1"}).status_code == 404


def test_an_invalid_edit_in_ameise_is_refused(http, state):
    seed_demo(state)

    answer = http.patch("/_sim/kunden/5001234567", json={"Person": {"Nachname": ""}})

    assert answer.status_code == 400 and answer.get_json()["messages"][0]["field"] == "Person.Nachname"
    assert http.patch("/_sim/kunden/5001234567", json={"Mobil": "1"}).status_code == 400


def test_dailyup_delivers_a_legal_person_from_its_nested_fields(state, tmp_path):
    from simulators.dailyup import customer_row

    nr = state.seed_customer({
        "Anrede": "4", "Person": {"Typ": "juristisch", "Firmenname": "Acme GmbH", "Rechtsform": "GmbH"},
        "Kontaktdaten": [{"Kontext": "geschaeftlich", "Typ": "telefon", "Value": "040 1"}],
        "Hauptwohnsitz": {"Strasse": "Hafenweg 3", "Postleitzahl": "20457", "Ort": "Hamburg", "Land": "Deutschland"}})

    row = customer_row(state.customers[nr])

    assert (row["Personentyp"], row["Firma"], row["Rechtsform"], row["Anrede"]) == ("juristisch", "Acme GmbH", "01", "4")
    assert (row["Telefon"], row["PLZ"], row["Land"], row["Nachname"]) == ("040 1", "20457", "DE", "")
