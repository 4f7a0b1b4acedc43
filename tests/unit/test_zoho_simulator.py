"""The Zoho CRM simulator speaks Zoho's wire formats, quirks included."""
from __future__ import annotations

import re
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask, request

from simulators.server import ServerThread
from simulators.zoho import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    SimulatorInputError,
    ZohoState,
    create_zoho_app,
    seed_demo,
)
from tests.support.clock import FakeClock
from tests.support.waiting import wait_for

REFRESH = {"grant_type": "refresh_token", "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET,
           "refresh_token": DEFAULT_REFRESH_TOKEN}
INVALID_TOKEN = {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"}
MISSING_ID = "5725767000099999999"


@pytest.fixture
def state() -> ZohoState:
    state = ZohoState()
    yield state
    state.wait_idle(timeout=2)


@pytest.fixture
def http(state):
    return create_zoho_app(state).test_client()


@pytest.fixture
def auth(http) -> dict[str, str]:
    token = http.post("/oauth/v2/token", data=REFRESH).get_json()["access_token"]
    return {"Authorization": f"Zoho-oauthtoken {token}"}


class Receiver:
    """A webhook receiver that remembers every request; ``status`` and ``delay`` shape its answer."""

    def __init__(self) -> None:
        self.got: list[dict] = []
        self.status = 200
        self.delay = 0.0
        self.app = Flask("receiver")
        self.app.add_url_rule("/<path:path>", "hook", self.hook, methods=["POST"])

    def hook(self, path: str):
        time.sleep(self.delay)
        self.got.append({"path": path, "args": request.args.to_dict(), "form": request.form.to_dict(),
                         "json": request.get_json(silent=True), "headers": dict(request.headers)})
        return "", self.status


@pytest.fixture(scope="module")
def receiver_server():
    receiver = Receiver()
    with ServerThread(receiver.app) as server:
        receiver.url = server.url
        yield receiver


@pytest.fixture
def receiver(receiver_server) -> Receiver:
    receiver_server.got.clear()
    receiver_server.status, receiver_server.delay = 200, 0.0
    return receiver_server


# ---------------------------------------------------------------------- OAuth
def test_refresh_grant_mints_an_access_token(http):
    answer = http.post("/oauth/v2/token", data=REFRESH)
    body = answer.get_json()
    assert answer.status_code == 200
    assert set(body) == {"access_token", "scope", "api_domain", "token_type", "expires_in"}
    assert body["access_token"].startswith("1000.") and body["token_type"] == "Bearer"
    assert body["api_domain"] == "http://localhost" and body["expires_in"] == 3600
    assert body["scope"] == "ZohoCRM.modules.ALL"
    # Zoho's own examples put the parameters into the query string of the POST
    assert http.post("/oauth/v2/token", query_string=REFRESH).status_code == 200


@pytest.mark.parametrize("change", [{"client_secret": "wrong"}, {"refresh_token": "1000.nope"},
                                    {"client_id": "someone-else"}])
def test_bad_grant_answers_http_200_invalid_code(http, change):
    answer = http.post("/oauth/v2/token", data={**REFRESH, **change})
    assert answer.status_code == 200 and answer.get_json() == {"error": "invalid_code"}


def test_minting_is_throttled_per_refresh_token(http, state):
    state.mint_limit = 3
    assert [http.post("/oauth/v2/token", data=REFRESH).status_code for _ in range(3)] == [200, 200, 200]
    throttled = http.post("/oauth/v2/token", data=REFRESH)
    assert throttled.status_code == 400
    assert throttled.get_json() == {"error": "Access Denied", "error_description":
                                    "You have made too many requests continuously. Please try again after some time."}
    other = state.issue_refresh_token()
    assert http.post("/oauth/v2/token", data={**REFRESH, "refresh_token": other}).status_code == 200
    assert state.tokens_minted(DEFAULT_REFRESH_TOKEN) == 3 and state.tokens_minted() == 4


def test_authorization_code_flow_auto_consents(http):
    redirect = "http://127.0.0.1:8000/oauth/zoho/callback"
    answer = http.get("/oauth/v2/auth", query_string={
        "scope": "ZohoCRM.modules.ALL", "client_id": DEFAULT_CLIENT_ID, "response_type": "code",
        "access_type": "offline", "prompt": "consent", "redirect_uri": redirect, "state": "xyz"})
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(redirect + "?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["state"] == "xyz" and query["location"] == "eu" and query["accounts-server"] == "http://localhost"
    exchange = {"grant_type": "authorization_code", "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET, "redirect_uri": redirect, "code": query["code"]}
    body = http.post("/oauth/v2/token", data=exchange).get_json()
    assert body["refresh_token"] and body["access_token"].startswith("1000.")
    assert http.post("/oauth/v2/token", data=exchange).get_json() == {"error": "invalid_code"}  # one use only
    again = http.post("/oauth/v2/token", data={**REFRESH, "refresh_token": body["refresh_token"]})
    assert "access_token" in again.get_json()
    assert http.get("/oauth/v2/auth", query_string={"client_id": "nobody", "redirect_uri": redirect}).status_code == 400


def test_revoking_a_refresh_token_ends_its_access_tokens(http, state, auth):
    assert http.get(f"/crm/v7/Contacts/{MISSING_ID}", headers=auth).status_code == 204
    state.revoke_refresh_token(DEFAULT_REFRESH_TOKEN)
    assert http.get(f"/crm/v7/Contacts/{MISSING_ID}", headers=auth).status_code == 401
    assert http.post("/oauth/v2/token", data=REFRESH).get_json() == {"error": "invalid_code"}


# ---------------------------------------------------------------------- API auth and routing
def test_api_needs_a_live_zoho_oauthtoken(http, state, auth):
    url = f"/crm/v7/Contacts/{MISSING_ID}"
    missing = http.get(url)
    assert missing.status_code == 401 and missing.get_json() == INVALID_TOKEN
    bearer = {"Authorization": auth["Authorization"].replace("Zoho-oauthtoken", "Bearer")}
    assert http.get(url, headers=bearer).status_code == 401
    state.expire_access_tokens()
    assert http.get(url, headers=auth).get_json() == INVALID_TOKEN
    state.auth_error_code = "AUTHENTICATION_FAILURE"
    assert http.get(url, headers=auth).get_json()["code"] == "AUTHENTICATION_FAILURE"


def test_unknown_module_and_url(http, auth):
    answer = http.get(f"/crm/v7/Kontakte/{MISSING_ID}", headers=auth)
    assert answer.status_code == 400 and answer.get_json()["code"] == "INVALID_MODULE"
    answer = http.get("/crm/v7/Contacts/1/2/3", headers=auth)
    assert answer.status_code == 404 and answer.get_json()["code"] == "INVALID_URL_PATTERN"


def test_record_shape(http, state, auth):
    ids = seed_demo(state)
    answer = http.get(f"/crm/v7/Deals/{ids['Wohngebäude Mustermann']}", headers=auth)
    assert answer.status_code == 200
    [deal] = answer.get_json()["data"]
    assert re.fullmatch(r"\d{19}", deal["id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", deal["Modified_Time"])
    assert deal["Contact_Name"] == {"name": "Erika Mustermann", "id": ids["Erika Mustermann"]}
    assert set(deal["Owner"]) == {"name", "id", "email"} and set(deal["Created_By"]) >= {"name", "id"}
    assert deal["Beitrag_Netto"] == 84.03 and deal["Ablauf"] == "2030-12-31"


@pytest.mark.parametrize("style, status, body", [
    ("204", 204, None),
    ("400", 400, "INVALID_DATA"),
    ("404", 404, "INVALID_DATA"),
    ("empty", 200, {"data": []}),
])
def test_missing_record_styles(http, state, auth, style, status, body):
    state.missing_record_style = style
    answer = http.get(f"/crm/v7/Contacts/{MISSING_ID}", headers=auth)
    assert answer.status_code == status
    if body is None:
        assert answer.data == b""
    elif isinstance(body, str):
        assert answer.get_json()["code"] == body
    else:
        assert answer.get_json() == body


# ---------------------------------------------------------------------- writes
def test_write_statuses_and_result_shapes(http, state, auth):
    inserted = http.post("/crm/v7/Contacts", headers=auth, json={"data": [{"Last_Name": "A"}], "trigger": []})
    assert inserted.status_code == 201
    [ok] = inserted.get_json()["data"]
    assert ok["code"] == "SUCCESS" and ok["status"] == "success" and ok["message"] == "record added"
    assert set(ok["details"]) == {"id", "Modified_Time", "Modified_By", "Created_Time", "Created_By"}
    record_id = ok["details"]["id"]
    mixed = http.post("/crm/v7/Contacts", headers=auth, json={"data": [{"Last_Name": "B"}, {"First_Name": "C"}]})
    assert mixed.status_code == 207
    assert mixed.get_json()["data"][1] == {"code": "MANDATORY_NOT_FOUND", "details": {
        "api_name": "Last_Name", "json_path": "$.data[1].Last_Name"}, "message": "required field not found",
        "status": "error"}
    failed = http.post("/crm/v7/Contacts", headers=auth, json={"data": [{"First_Name": "D"}]})
    assert failed.status_code == 400 and failed.get_json()["data"][0]["code"] == "MANDATORY_NOT_FOUND"
    updated = http.put("/crm/v7/Contacts", headers=auth, json={"data": [{"id": record_id, "Phone": "1"}]})
    assert updated.status_code == 200 and updated.get_json()["data"][0]["message"] == "record updated"
    one = http.put(f"/crm/v7/Contacts/{record_id}", headers=auth, json={"data": [{"Phone": "2"}]})
    assert one.status_code == 200 and state.get("Contacts", record_id)["Phone"] == "2"
    upserted = http.post("/crm/v7/Contacts/upsert", headers=auth, json={
        "data": [{"Last_Name": "A", "Email": "a@example.de"}, {"Last_Name": "A2", "Email": "a@example.de"}],
        "duplicate_check_fields": ["Email"]})
    assert upserted.status_code == 200
    first, second = upserted.get_json()["data"]
    assert (first["action"], first["duplicate_field"], first["message"]) == ("insert", None, "record added")
    assert (second["action"], second["duplicate_field"], second["message"]) == ("update", "Email", "record updated")
    assert second["details"]["id"] == first["details"]["id"]


def test_duplicate_and_invalid_data_details(http, state, auth):
    state.set_unique_fields("Deals", "Vertragsnummer")
    existing = state.seed("Deals", {"Deal_Name": "Alt", "Vertragsnummer": "1119876"})
    answer = http.post("/crm/v7/Deals", headers=auth, json={"data": [
        {"Deal_Name": "Neu", "Vertragsnummer": "1119876"},
        {"Deal_Name": "y" * 256},
        {"Deal_Name": "Z", "Amount": "viel"},
        {"Deal_Name": "Z", "Beginn": "01.01.2020"},
        "not a record",
    ]})
    dup, long_text, amount, begin, junk = answer.get_json()["data"]
    assert dup["code"] == "DUPLICATE_DATA" and dup["message"] == "duplicate data"
    assert dup["details"]["api_name"] == "Vertragsnummer" and dup["details"]["json_path"] == "$.data[0].Vertragsnummer"
    assert dup["details"]["duplicate_record"]["id"] == existing
    assert dup["details"]["duplicate_record"]["module"]["api_name"] == "Deals"
    assert long_text["code"] == "INVALID_DATA" and long_text["details"]["maximum_length"] == 120  # Deal_Name
    assert amount["details"]["expected_data_type"] == "currency" and begin["details"]["api_name"] == "Beginn"
    assert junk["code"] == "INVALID_DATA" and junk["details"]["json_path"] == "$.data[4]"
    update = http.put("/crm/v7/Deals", headers=auth, json={"data": [{"id": MISSING_ID, "Stage": "X"}]})
    assert update.get_json()["data"][0]["details"] == {"api_name": "id", "json_path": "$.data[0].id"}


def test_field_metadata_in_zohos_shape(http, state, auth):
    answer = http.get("/crm/v7/settings/fields?module=Contacts", headers=auth)
    assert answer.status_code == 200
    fields = {f["api_name"]: f for f in answer.get_json()["fields"]}
    assert fields["Kundennummer"]["unique"] == {"case_sensitive": False} and fields["Kundennummer"]["custom_field"]
    assert fields["Mailing_City"]["unique"] == {} and fields["Mailing_City"]["custom_field"] is False
    salutation = fields["Salutation"]
    assert salutation["data_type"] == "picklist" and salutation["pick_list_values"][0]["actual_value"] == "-None-"
    assert {"display_value": "Herr", "actual_value": "Herr"}.items() <= salutation["pick_list_values"][1].items()
    assert fields["Account_Name"]["lookup"]["module"]["api_name"] == "Accounts"
    assert fields["Last_Name"]["length"] == 80 and fields["Email"]["data_type"] == "email"
    assert all(f["id"].isdigit() for f in fields.values())
    assert http.get("/crm/v7/settings/fields", headers=auth).get_json()["code"] == "REQUIRED_PARAM_MISSING"
    assert http.get("/crm/v7/settings/fields?module=Kontakte", headers=auth).get_json()["code"] == "INVALID_MODULE"
    assert http.get("/crm/v7/settings/fields?module=Contacts").status_code == 401


def test_several_problems_answer_multiple_errors_without_a_top_level_field(http, state, auth):
    answer = http.post("/crm/v7/Deals", headers=auth, json={"data": [
        {"Deal_Name": "Z", "Probability": 12.7, "Stage": "Gewonnen"}]})
    assert answer.status_code == 400
    [result] = answer.get_json()["data"]
    assert result["code"] == "MULTIPLE_OR_MULTI_ERRORS" and result["status"] == "error"
    assert "api_name" not in result["details"]
    first, second = result["details"]["errors"]
    assert first == {"code": "INVALID_DATA", "message": "invalid data", "details": {
        "expected_data_type": "integer", "api_name": "Probability", "json_path": "$.data[0].Probability"}}
    assert second["details"]["api_name"] == "Stage" and "Abgeschlossen" in second["details"]["supported_values"]
    assert state.records("Deals") == []


def test_upsert_refuses_a_duplicate_check_field_that_is_not_unique(http, state, auth):
    answer = http.post("/crm/v7/Contacts/upsert", headers=auth, json={
        "data": [{"Last_Name": "A", "Mailing_City": "Köln"}], "duplicate_check_fields": ["Email", "Mailing_City"]})
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["code"] == "INVALID_DATA" and body["details"]["api_name"] == "Mailing_City"
    assert body["details"]["json_path"] == "$.duplicate_check_fields[1]"
    assert state.records("Contacts") == []


def test_a_unique_value_is_free_again_once_changed_or_deleted(state):
    first = state.seed("Contacts", {"Last_Name": "A", "Kundennummer": "K-1"})
    [taken] = state.write("Contacts", "insert", [{"Last_Name": "B", "Kundennummer": "k-1"}])  # case-insensitive
    assert taken["code"] == "DUPLICATE_DATA" and taken["details"]["duplicate_record"]["id"] == first
    state.write("Contacts", "update", [{"id": first, "Kundennummer": "K-2"}])
    [now_free] = state.write("Contacts", "insert", [{"Last_Name": "B", "Kundennummer": "K-1"}])
    assert now_free["status"] == "success"
    [upserted] = state.write("Contacts", "upsert", [{"Last_Name": "A2", "Kundennummer": "K-2"}],
                             duplicate_check_fields=["Kundennummer"])
    assert (upserted["action"], upserted["details"]["id"]) == ("update", first)
    state.delete("Contacts", [first])
    [after_delete] = state.write("Contacts", "insert", [{"Last_Name": "C", "Kundennummer": "K-2"}])
    assert after_delete["status"] == "success"
    state.set_field("Contacts", "Kundennummer", unique=False)
    [allowed] = state.write("Contacts", "insert", [{"Last_Name": "D", "Kundennummer": "K-2"}])
    assert allowed["status"] == "success"


def test_write_body_errors(http, auth):
    too_many = http.post("/crm/v7/Leads", headers=auth, json={"data": [{"Last_Name": str(i)} for i in range(101)]})
    assert too_many.status_code == 400 and too_many.get_json()["code"] == "LIMIT_EXCEEDED"
    broken = http.post("/crm/v7/Leads", headers=auth, data="{not json", content_type="application/json")
    assert broken.status_code == 400 and broken.get_json()["status"] == "error"
    assert http.post("/crm/v7/Leads", headers=auth, json={}).get_json()["code"] == "REQUIRED_PARAM_MISSING"
    assert http.post("/crm/v7/Leads", headers=auth, json={"data": {"Last_Name": "X"}}).status_code == 400
    assert http.post("/crm/v7/Leads", headers=auth, json={"data": [{"Last_Name": "X"}], "trigger": "none"}
                     ).status_code == 400


def test_credits(http, state, auth):
    http.get(f"/crm/v7/Leads/{MISSING_ID}", headers=auth)
    assert state.credits_used == 1
    http.post("/crm/v7/Leads/upsert", headers=auth, json={
        "data": [{"Last_Name": f"L{i}", "Email": f"l{i}@example.de"} for i in range(100)], "trigger": []})
    assert state.credits_used == 11
    http.post("/crm/v7/Leads", headers=auth, json={"data": [{"Last_Name": f"M{i}"} for i in range(11)]})
    assert state.credits_used == 13
    http.get(f"/crm/v7/Leads/{MISSING_ID}")  # refused: costs nothing
    assert state.credits_used == 13
    assert http.get("/_sim/state").get_json()["credits_used"] == 13


# ---------------------------------------------------------------------- search
def test_search(http, state, auth):
    tricky = state.seed("Accounts", {"Account_Name": "Bau (Nord), GmbH", "Phone": "+49 40 123", "Email": "a@b.de"})
    state.seed("Accounts", {"Account_Name": "Bau Süd GmbH", "Phone": "040 999"})
    search = "/crm/v7/Accounts/search"

    def ids(**params):
        answer = http.get(search, headers=auth, query_string=params)
        return [] if answer.status_code == 204 else [r["id"] for r in answer.get_json()["data"]]

    assert ids(criteria=r"(Account_Name:equals:Bau \(Nord\)\, GmbH)") == [tricky]
    assert len(ids(criteria="(Account_Name:starts_with:bau)")) == 2
    assert ids(criteria=r"((Account_Name:starts_with:Bau)and(Account_Name:equals:Bau \(Nord\)\, GmbH))") == [tricky]
    assert len(ids(criteria=r"((Account_Name:equals:x)or(Phone:equals:040 999)or(Email:equals:a@b.de))")) == 2
    assert len(ids(criteria="(Account_Name:equals:Bau Süd GmbH,nobody)")) == 1  # an unescaped comma lists values
    assert ids(email="A@B.DE") == [tricky] and ids(phone="+4940123") == [tricky] and len(ids(word="gmbh")) == 2
    empty = http.get(search, headers=auth, query_string={"criteria": "(Account_Name:equals:Niemand)"})
    assert empty.status_code == 204 and empty.data == b""
    page = http.get(search, headers=auth, query_string={"criteria": "(Account_Name:starts_with:Bau)", "per_page": 1})
    assert page.get_json()["info"] == {"per_page": 1, "count": 1, "page": 1, "more_records": True}
    assert http.get(search, headers=auth, query_string={"word": "x", "per_page": 201}).status_code == 400
    assert http.get(search, headers=auth).get_json()["code"] == "REQUIRED_PARAM_MISSING"
    assert http.get(search, headers=auth, query_string={"criteria": "Account_Name=x"}).get_json()["code"] == \
        "INVALID_QUERY"


def test_search_index_lags_behind_writes(http, state, auth):
    clock = FakeClock()
    state.clock = clock.seconds
    state.search_index_delay = 0.3
    state.seed("Contacts", {"Last_Name": "Alt"})  # seeded records are long indexed
    http.post("/crm/v7/Contacts", headers=auth, json={"data": [{"Last_Name": "Frisch"}], "trigger": []})
    query = {"criteria": "(Last_Name:equals:Frisch)"}
    assert http.get("/crm/v7/Contacts/search", headers=auth, query_string=query).status_code == 204
    assert http.get("/crm/v7/Contacts/search", headers=auth, query_string={"criteria": "(Last_Name:equals:Alt)"}
                    ).status_code == 200
    clock.advance(0.29)
    assert http.get("/crm/v7/Contacts/search", headers=auth, query_string=query).status_code == 204
    clock.advance(0.02)
    assert http.get("/crm/v7/Contacts/search", headers=auth, query_string=query).status_code == 200


def test_get_records_by_page_number_reach_2000_then_only_by_page_token(http, state, auth):
    ids = [state.seed("Leads", {"Last_Name": f"L{i}"}) for i in range(2050)]
    listing = "/crm/v7/Leads"
    tenth = http.get(listing, headers=auth, query_string={"fields": "Last_Name", "page": 10, "per_page": 200})
    assert tenth.status_code == 200 and tenth.get_json()["info"]["more_records"] is True
    token = tenth.get_json()["info"]["next_page_token"]
    assert token and tenth.get_json()["info"]["page_token_expiry"]
    beyond = http.get(listing, headers=auth, query_string={"fields": "Last_Name", "page": 11, "per_page": 200})
    assert beyond.status_code == 400 and beyond.get_json()["code"] == "DISCRETE_PAGINATION_LIMIT_EXCEEDED"
    rest = http.get(listing, headers=auth, query_string={"fields": "Last_Name", "page_token": token})
    assert [r["id"] for r in rest.get_json()["data"]] == ids[2000:]
    assert rest.get_json()["info"]["more_records"] is False and rest.get_json()["info"]["next_page_token"] is None
    bad = http.get(listing, headers=auth, query_string={"fields": "Last_Name", "page_token": "erfunden"})
    assert bad.status_code == 400
    many = http.get(listing, headers=auth, query_string={"fields": ",".join(f"F{i}" for i in range(51))})
    assert many.status_code == 400 and many.get_json()["code"] == "LIMIT_EXCEEDED"


def test_get_records_if_modified_since(http, state, auth):
    clock = FakeClock()
    state.wall_clock = clock.seconds
    first = state.seed("Contacts", {"Last_Name": "Alt"})
    clock.advance(120)
    second = state.seed("Contacts", {"Last_Name": "Neu"})
    since = state.get("Contacts", first)["Modified_Time"]

    def listed(header: str) -> tuple[int, list[str]]:
        answer = http.get("/crm/v7/Contacts", headers={**auth, "If-Modified-Since": header},
                          query_string={"fields": "Last_Name"})
        return answer.status_code, [r["id"] for r in answer.get_json()["data"]] if answer.status_code == 200 else []

    assert listed(since) == (200, [second])
    assert listed(state.get("Contacts", second)["Modified_Time"]) == (304, [])
    assert http.get("/crm/v7/Contacts", headers={**auth, "If-Modified-Since": "gestern"},
                    query_string={"fields": "Last_Name"}).status_code == 400


# ---------------------------------------------------------------------- workflow rules
def test_form_webhook_fires_on_user_edit(http, state, receiver):
    erika = state.seed("Contacts", {"Last_Name": "Mustermann"})
    state.add_webhook("Contacts", f"{receiver.url}/webhooks/zoho/Contacts", style="form", token="S3CR3T")
    answer = http.patch(f"/_sim/records/Contacts/{erika}", json={"Phone": "+49 221 7654321"})
    assert answer.status_code == 200 and answer.get_json()["Phone"] == "+49 221 7654321"
    assert state.wait_idle()
    [got] = receiver.got
    assert got["path"] == "webhooks/zoho/Contacts" and got["args"] == {"token": "S3CR3T"}
    assert got["form"]["id"] == erika and got["form"]["module"] == "Contacts" and got["form"]["operation"] == "edit"
    assert got["form"]["modified_time"] == state.get("Contacts", erika)["Modified_Time"]
    [delivery] = state.deliveries
    assert delivery["status"] == 200 and delivery["ok"] and delivery["url"].endswith("?token=S3CR3T")


def test_json_webhook_fires_on_user_create(http, state, receiver):
    state.add_webhook("Contacts", f"{receiver.url}/hook", style="json", token="S3CR3T")
    answer = http.post("/_sim/records/Contacts", json={"First_Name": "Jana", "Last_Name": "Beispiel"})
    assert answer.status_code == 201
    new_id = answer.get_json()["id"]
    assert state.wait_idle()
    [got] = receiver.got
    assert got["headers"]["X-Webhook-Token"] == "S3CR3T"
    assert got["json"] == {"id": new_id, "module": "Contacts", "operation": "create",
                           "modified_time": answer.get_json()["Modified_Time"]}


def test_notify_webhook_carries_every_id_of_an_api_write(http, state, auth, receiver):
    state.add_webhook("Leads", f"{receiver.url}/notify", style="notify", token="TOKEN_FOR_VERIFICATION",
                      channel_id="1000000068001")
    answer = http.post("/crm/v7/Leads", headers=auth, json={"data": [{"Last_Name": "A"}, {"Last_Name": "B"}]})
    created = [r["details"]["id"] for r in answer.get_json()["data"]]
    assert state.wait_idle()
    [got] = receiver.got
    payload = got["json"]
    assert set(payload) == {"server_time", "query_params", "module", "resource_uri", "ids", "affected_fields",
                            "operation", "channel_id", "token"}
    assert payload["ids"] == created and payload["operation"] == "insert" and payload["module"] == "Leads"
    assert payload["resource_uri"] == "http://localhost/crm/v2/Leads" and payload["channel_id"] == "1000000068001"
    assert payload["token"] == "TOKEN_FOR_VERIFICATION" and isinstance(payload["server_time"], int)


@pytest.mark.parametrize("trigger, fires", [(None, True), (["workflow"], True), (["approval"], False), ([], False)])
def test_api_writes_fire_workflow_unless_trigger_excludes_it(http, state, auth, receiver, trigger, fires):
    erika = state.seed("Contacts", {"Last_Name": "Mustermann"})
    state.add_webhook("Contacts", f"{receiver.url}/hook", style="json")
    body = {"data": [{"id": erika, "Phone": "1"}]}
    if trigger is not None:
        body["trigger"] = trigger
    assert http.put("/crm/v7/Contacts", headers=auth, json=body).status_code == 200
    body["data"] = [{"Last_Name": "Neu"}]
    assert http.post("/crm/v7/Contacts/upsert", headers=auth, json=body).status_code == 200
    assert state.wait_idle()
    assert [g["json"]["operation"] for g in receiver.got] == (["edit", "create"] if fires else [])


def test_webhook_events_filter_and_seed_is_silent(http, state, receiver):
    state.add_webhook("Contacts", f"{receiver.url}/hook", style="json", events=("create",))
    record = state.seed("Contacts", {"Last_Name": "Still"})
    state.user_update("Contacts", record, {"Phone": "1"})
    state.user_create("Contacts", {"Last_Name": "Laut"})
    assert state.wait_idle()
    assert [g["json"]["operation"] for g in receiver.got] == ["create"]


def test_slow_receiver_never_blocks_the_api(http, state, receiver):
    receiver.delay = 0.5
    state.add_webhook("Contacts", f"{receiver.url}/hook", style="json")
    started = time.monotonic()
    assert http.post("/_sim/records/Contacts", json={"Last_Name": "Eilig"}).status_code == 201
    assert time.monotonic() - started < 0.3
    assert state.wait_idle()
    assert len(receiver.got) == 1


def test_failed_deliveries_are_listed(http, state, auth, receiver):
    assert http.get("/crm/v8/settings/automation/webhook_failures", headers=auth).status_code == 204
    receiver.status = 500
    state.add_webhook("Contacts", f"{receiver.url}/hook", style="form")
    state.add_webhook("Contacts", "http://127.0.0.1:9/unreachable", style="json")
    record = state.user_create("Contacts", {"Last_Name": "Pech"})
    assert state.wait_idle(timeout=10)
    failures = state.webhook_failures
    assert [(f["status"], f["error"] is not None) for f in failures] == [(500, False), (None, True)]
    listed = http.get("/crm/v8/settings/automation/webhook_failures", headers=auth).get_json()["webhook_failures"]
    assert [f["entity_details"] for f in listed] == [{"module": "Contacts", "name": "Pech", "id": record}] * 2
    unreachable, refused = listed  # newest first
    assert refused["failure_reason"] == "HTTP 500" and unreachable["failure_reason"].startswith("ConnectionError")
    assert set(refused) == {"webhook", "entity_details", "failure_time", "failure_reason", "id", "workflow_rule"}
    assert set(refused["webhook"]) == {"name", "id"} and refused["id"] != unreachable["id"]
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$", refused["failure_time"])
    assert http.get("/crm/v8/settings/automation/webhook_failures?module=Deals", headers=auth).status_code == 204


def test_watch_subscribes_a_notification_channel(http, state, auth, receiver):
    answer = http.post("/crm/v7/actions/watch", headers=auth, json={"watch": [
        {"channel_id": "1000000068002", "events": ["Contacts.create"], "notify_url": f"{receiver.url}/n",
         "token": "T"}]})
    assert answer.status_code == 201 and answer.get_json()["watch"][0]["status"] == "success"
    state.user_create("Contacts", {"Last_Name": "Neu"})
    assert state.wait_idle()
    assert receiver.got[0]["json"]["channel_id"] == "1000000068002"


def test_a_watch_on_deletes_notifies_each_deleted_id(http, state, auth, receiver):
    ids = [state.seed("Contacts", {"Last_Name": f"Weg {i}"}) for i in range(2)]
    answer = http.post("/crm/v7/actions/watch", headers=auth, json={"watch": [
        {"channel_id": "1000000068003", "events": ["Contacts.delete"], "notify_url": f"{receiver.url}/n",
         "token": "T"}]})
    assert answer.status_code == 201
    state.user_update("Contacts", ids[0], {"Mailing_City": "Köln"})          # no edit watch: nothing is sent
    assert http.delete("/crm/v7/Contacts", headers=auth, query_string={"ids": ",".join(ids)}).status_code == 200
    assert state.wait_idle()
    [got] = receiver.got
    assert got["json"]["operation"] == "delete" and got["json"]["ids"] == ids and got["json"]["token"] == "T"
    assert got["json"]["affected_fields"] == []
    # the sync's own deletes (wf_trigger=false) stay silent
    other = state.seed("Contacts", {"Last_Name": "Still"})
    http.delete("/crm/v7/Contacts", headers=auth, query_string={"ids": other, "wf_trigger": "false"})
    assert state.wait_idle() and len(receiver.got) == 1


def test_a_user_deleting_a_record_fires_delete_rules_and_lists_it_deleted(http, state, auth, receiver):
    record = state.seed("Deals", {"Deal_Name": "Storno"})
    state.add_webhook("Deals", f"{receiver.url}/hook", style="form", events=("delete",))
    assert http.delete(f"/_sim/records/Deals/{record}").status_code == 204
    assert http.delete(f"/_sim/records/Deals/{record}").status_code == 404
    assert state.wait_idle()
    [got] = receiver.got
    assert got["form"]["id"] == record and got["form"]["operation"] == "delete"
    [entry] = http.get("/crm/v7/Deals/deleted", headers=auth).get_json()["data"]
    assert entry["id"] == record and entry["display_name"] == "Storno" and entry["deleted_by"]["name"] == "Petra Schmidt"
    assert http.get("/crm/v7/Deals/deleted?type=permanent", headers=auth).status_code == 204


# ---------------------------------------------------------------------- faults
def test_faults_answer_zoho_error_bodies(http, state, auth):
    url = f"/crm/v7/Contacts/{MISSING_ID}"
    state.add_fault(500, count=2)
    assert [http.get(url, headers=auth).status_code for _ in range(3)] == [500, 500, 204]
    state.add_fault(500)
    assert http.get(url, headers=auth).get_json() == {
        "code": "INTERNAL_ERROR", "details": {},
        "message": "Internal Server Error occurred while processing this request", "status": "error"}
    state.add_fault(429, retry_after=7)
    limited = http.get(url, headers=auth)
    assert limited.status_code == 429 and "Retry-After" not in limited.headers  # Zoho documents no such header
    assert limited.get_json()["code"] == "TOO_MANY_REQUESTS" and limited.get_json()["details"] == {"retry_after": 7}
    state.add_fault(429, retry_after=3, retry_after_header=True)
    assert http.get(url, headers=auth).headers["Retry-After"] == "3"
    state.add_fault(429)
    assert "Retry-After" not in http.get(url, headers=auth).headers
    state.add_fault(401)
    assert http.get(url, headers=auth).get_json() == INVALID_TOKEN
    state.add_fault(503)
    assert http.get(url, headers=auth).status_code == 503


def test_faults_match_a_path_prefix_and_may_only_delay(http, state, auth):
    state.add_fault(500, path_prefix="/crm/v7/Deals")
    assert http.get(f"/crm/v7/Contacts/{MISSING_ID}", headers=auth).status_code == 204
    assert http.get(f"/crm/v7/Deals/{MISSING_ID}", headers=auth).status_code == 500
    state.add_fault(500, path_prefix="/oauth/")
    assert http.post("/oauth/v2/token", data=REFRESH).status_code == 500
    state.add_fault(None, delay=0.2)
    started = time.monotonic()
    assert http.get(f"/crm/v7/Contacts/{MISSING_ID}", headers=auth).status_code == 204
    assert time.monotonic() - started >= 0.2


def test_concurrency_limit_answers_429(state):
    state.max_concurrent = 1
    with ServerThread(create_zoho_app(state)) as server:
        token = requests.post(f"{server.url}/oauth/v2/token", data=REFRESH, timeout=5).json()["access_token"]
        headers = {"Authorization": f"Zoho-oauthtoken {token}"}
        state.add_fault(None, delay=0.5)
        slow = threading.Thread(target=requests.get, args=(f"{server.url}/crm/v7/Contacts/{MISSING_ID}",),
                                kwargs={"headers": headers, "timeout": 5})
        slow.start()
        wait_for(lambda: state._in_flight == 1, timeout=5, what="the slow call in flight")
        second = requests.get(f"{server.url}/crm/v7/Contacts/{MISSING_ID}", headers=headers, timeout=5)
        slow.join()
        assert second.status_code == 429 and second.json()["code"] == "TOO_MANY_REQUESTS"
        third = requests.get(f"{server.url}/crm/v7/Contacts/{MISSING_ID}", headers=headers, timeout=5)
        assert third.status_code == 204
        assert server.url == requests.post(f"{server.url}/oauth/v2/token", data=REFRESH, timeout=5).json()["api_domain"]


# ---------------------------------------------------------------------- admin API and demo data
def test_admin_api(http, state):
    assert http.post("/_sim/records/Contacts", json={"First_Name": "Ohne"}).status_code == 422
    assert http.post("/_sim/records/Contacts", data="nope", content_type="application/json").status_code == 400
    assert http.post("/_sim/records/Kontakte", json={"Last_Name": "X"}).status_code == 404
    assert http.patch(f"/_sim/records/Contacts/{MISSING_ID}", json={"Phone": "1"}).status_code == 404
    seeded = http.post("/_sim/seed", json={"module": "Leads", "records": [{"Last_Name": "A"}, {"Last_Name": "B"}]})
    assert seeded.status_code == 201 and len(seeded.get_json()["ids"]) == 2
    assert http.post("/_sim/seed", json={"module": "Leads"}).status_code == 400
    demo = http.post("/_sim/seed", json={"demo": True}).get_json()["ids"]
    assert http.get(f"/_sim/records/Contacts/{demo['Erika Mustermann']}").get_json()["Kundennummer"] == "5001234567"
    assert len(http.get("/_sim/records/Deals").get_json()["data"]) == 2
    assert http.post("/_sim/faults", json={"status": 500, "bogus": 1}).status_code == 400
    assert http.post("/_sim/faults", json={"status": 503, "count": 2}).status_code == 201
    assert http.post("/_sim/webhooks", json={"module": "Contacts", "url": "http://x/h", "style": "xml"}
                     ).status_code == 400
    assert http.post("/_sim/webhooks", json={"module": "Contacts", "url": "http://x/h"}).status_code == 201
    assert http.patch("/_sim/settings", json={"missing_record_style": "404", "token_lifetime": 60}).status_code == 200
    assert state.missing_record_style == "404" and state.token_lifetime == 60
    assert http.patch("/_sim/settings", json={"missing_record_style": "410"}).status_code == 400
    for bad in ({"max_concurrent": "x"}, {"max_concurrent": 0}, {"max_concurrent": 1.5}, {"token_lifetime": True},
                {"mint_window": -1}, {"webhook_timeout": "5"}, {"api_domain": 7}):
        refused = http.patch("/_sim/settings", json=bad)
        assert refused.status_code == 400 and next(iter(bad)) in refused.get_json()["error"]
    assert state.max_concurrent is None and state.token_lifetime == 60
    assert http.patch("/_sim/settings", json={"max_concurrent": 3}).status_code == 200 and state.max_concurrent == 3
    assert http.patch("/_sim/settings", json={"max_concurrent": None}).status_code == 200
    assert state.max_concurrent is None
    snapshot = http.get("/_sim/state").get_json()
    assert snapshot["modules"]["Leads"] == 2 and len(snapshot["faults"]) == 1 and len(snapshot["webhooks"]) == 1
    assert http.post("/_sim/reset").status_code == 200
    assert http.get("/_sim/state").get_json()["modules"] == {"Contacts": 0, "Accounts": 0, "Deals": 0, "Leads": 0}


def test_admin_api_changes_the_field_metadata(http, state, auth):
    changed = http.patch("/_sim/fields/Contacts/Kundennummer", json={"unique": False})
    assert changed.status_code == 200 and changed.get_json()["unique"] == {}
    assert state.unique_fields["Contacts"] == []
    added = http.put("/_sim/fields/Deals/Kanal", json={"data_type": "picklist", "pick_list_values": ["Online", "Büro"]})
    assert added.status_code == 201 and added.get_json()["custom_field"] is True
    assert http.post("/crm/v7/Deals", headers=auth, json={"data": [{"Deal_Name": "K", "Kanal": "Büro"}]}).status_code == 201
    assert http.delete("/_sim/fields/Deals/Kanal").status_code == 204
    assert http.delete("/_sim/fields/Deals/Kanal").status_code == 404
    assert http.patch("/_sim/fields/Deals/Kanal", json={"unique": True}).status_code == 404
    assert http.patch("/_sim/fields/Deals/Amount", json={"farbe": "rot"}).status_code == 400


def test_seed_demo(state):
    ids = seed_demo(state)
    assert set(ids) == {"Erika Mustermann", "Max Neumann", "Muster Bau GmbH", "Wohngebäude Mustermann",
                        "Haftpflicht Neumann"}
    assert all(re.fullmatch(r"\d{18,19}", i) for i in ids.values())
    assert state.unique_fields["Contacts"] == ["Kundennummer"] and state.unique_fields["Deals"] == ["Vertragsnummer"]
    erika, max_ = state.get("Contacts", ids["Erika Mustermann"]), state.get("Contacts", ids["Max Neumann"])
    assert (erika["Salutation"], erika["Date_of_Birth"], erika["Mailing_City"]) == ("Frau", "1964-08-12", "Köln")
    assert "Kundennummer" not in max_ and max_["Date_of_Birth"] == "1988-02-29" and max_["Mailing_City"] == "Hamburg"
    company = state.get("Accounts", ids["Muster Bau GmbH"])
    assert company["Rechtsform"] == "GmbH" and "Kundennummer" not in company
    liability = state.get("Deals", ids["Haftpflicht Neumann"])
    assert "Vertragsnummer" not in liability and liability["Contact_Name"]["id"] == ids["Max Neumann"]
    with pytest.raises(SimulatorInputError) as caught:
        state.user_create("Contacts", {"Last_Name": "Kopie", "Kundennummer": "5001234567"})
    assert caught.value.result["code"] == "DUPLICATE_DATA"
