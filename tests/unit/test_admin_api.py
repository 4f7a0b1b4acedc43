"""The admin API of the dead letters, on a SQLite file and kombu's in-process broker."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from producers.memory import MemoryPublisher
from producers.publisher import Publisher
from syncbridge.bootstrap import web_app
from syncbridge.config import Settings
from syncbridge.handlers.dead_letters import archive_dead_letter
from tests.support.dead_letters import KUNDENNUMMER, delta_body, ours
from tests.support.queues import MEMORY, RECORD_ID, ROUTING_KEY, event_body, take_all

ADMIN = {"X-Admin-Token": "dev-admin-token"}


@pytest.fixture
def http(database_url, topology):
    publisher = MemoryPublisher(topology, MEMORY)
    yield web_app(Settings.from_env({}, database_url=database_url), publisher=publisher).test_client()
    publisher.close()


@pytest.fixture
def archived(topology, letters):
    """Three dead letters: a rejected CRM event (two days old), an invalid delta (yesterday), an error (now)."""
    now = datetime.now(UTC)
    ns = topology.namespace
    return {
        "rejected": archive_dead_letter(letters, topology, ours(ROUTING_KEY, event_body(), at=now - timedelta(days=2),
                                                                namespace=ns)),
        "contract": archive_dead_letter(letters, topology, ours(
            "ameise.customer.changed", delta_body(schema_version=2), kind="contract", at=now - timedelta(days=1),
            namespace=ns)),
        "error": archive_dead_letter(letters, topology, ours("ameise.customer.changed", delta_body("5009999999"),
                                                             kind="error", at=now, namespace=ns)),
    }


def ids(response) -> list[int]:
    assert response.status_code == 200, response.get_json()
    return [letter["id"] for letter in response.get_json()["dead_letters"]]


# ---------------------------------------------------------------- authentication
@pytest.mark.parametrize("headers", [
    {}, {"X-Admin-Token": "wrong"}, {"X-Admin-Token": "dev-dailyup-upload-token"}, {"Authorization": "Basic x"},
], ids=["none", "wrong", "upload-secret", "basic"])
@pytest.mark.parametrize(("method", "path"), [
    ("get", "/admin/dead-letters"), ("get", "/admin/dead-letters/1"),
    ("post", "/admin/dead-letters/replay"), ("post", "/admin/dead-letters/discard"),
])
def test_every_route_needs_the_admin_secret_first(http, archived, letters, headers, method, path):
    before = letters.find()

    response = getattr(http, method)(path, headers=headers, json={"ids": [archived["rejected"]]})

    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert "X-Admin-Token" in response.get_json()["message"]
    assert letters.find() == before


def test_a_bearer_token_is_accepted(http, archived):
    response = http.get("/admin/dead-letters", headers={"Authorization": "Bearer dev-admin-token"})

    assert response.status_code == 200


# ---------------------------------------------------------------- list and show
def test_list_with_filters(http, archived):
    since = (datetime.now(UTC) - timedelta(days=1, minutes=1)).isoformat()

    assert ids(http.get("/admin/dead-letters", headers=ADMIN)) == [archived["error"], archived["contract"],
                                                                   archived["rejected"]]
    assert ids(http.get("/admin/dead-letters?queue=crm-to-ameise", headers=ADMIN)) == [archived["rejected"]]
    assert ids(http.get("/admin/dead-letters?kind=contract", headers=ADMIN)) == [archived["contract"]]
    assert ids(http.get(f"/admin/dead-letters?record={RECORD_ID}", headers=ADMIN)) == [archived["rejected"]]
    assert ids(http.get(f"/admin/dead-letters?record={KUNDENNUMMER}", headers=ADMIN)) == [archived["contract"]]
    assert ids(http.get("/admin/dead-letters", query_string={"since": since}, headers=ADMIN)) == [
        archived["error"], archived["contract"]]
    assert ids(http.get("/admin/dead-letters", query_string={"until": since}, headers=ADMIN)) == [archived["rejected"]]
    assert ids(http.get("/admin/dead-letters?state=replayed", headers=ADMIN)) == []
    limited = http.get("/admin/dead-letters?limit=1&queue=ameise-to-crm", headers=ADMIN).get_json()
    assert (limited["count"], limited["total"]) == (1, 2)
    [first] = limited["dead_letters"]
    assert (first["kind"], first["state"], first["routing_key"], first["reason"]) == (
        "error", "dead", "ameise.customer.changed", "error reason")
    assert "body" not in first and "headers" not in first                  # the list is a summary


@pytest.mark.parametrize(("query", "message"), [
    ("kind=nope", "kind must be one of"),
    ("queue=crm", "queue must be one of"),
    ("state=gone", "state must be one of"),
    ("since=yesterday", "since must be an ISO 8601"),
    ("since=2026-12-02&until=2026-12-01", "since must be before until"),
    ("limit=0", "limit must be a whole number from 1 to 1000"),
    ("limit=many", "limit must be a whole number"),
])
def test_a_bad_filter_is_a_400_saying_why(http, query, message):
    response = http.get(f"/admin/dead-letters?{query}", headers=ADMIN)

    assert response.status_code == 400
    assert response.is_json and response.get_json()["error"] == "bad_request"
    assert message in response.get_json()["message"]


def test_show_has_the_headers_and_the_body(http, archived):
    response = http.get(f"/admin/dead-letters/{archived['contract']}", headers=ADMIN)
    missing = http.get("/admin/dead-letters/999", headers=ADMIN)

    assert response.status_code == 200
    letter = response.get_json()
    assert letter["body"] == delta_body(schema_version=2)
    assert letter["headers"]["x-error-kind"] == "contract" and letter["content_type"] == "application/json"
    assert (letter["record"], letter["queue"], letter["first_error"]) == (KUNDENNUMMER, "ameise-to-crm", "first contract")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"


# ---------------------------------------------------------------- replay
def test_replay_dry_run_then_for_real(http, archived, topology, letters, store):
    selection = {"filter": {"queue": "crm-to-ameise"}}

    dry = http.post("/admin/dead-letters/replay", headers=ADMIN, json={**selection, "dry_run": True})
    assert dry.status_code == 200, dry.get_json()
    assert dry.get_json() == {"dry_run": True, "counts": {"would_replay": 1}, "results": [
        {"id": archived["rejected"], "status": "would_replay", "routing_key": ROUTING_KEY, "reason": None}]}
    assert take_all(topology.crm_to_ameise) == []

    real = http.post("/admin/dead-letters/replay", headers=ADMIN, json={**selection, "by": "dashboard:anna"})
    assert real.status_code == 200 and real.get_json()["counts"] == {"replayed": 1}
    [message] = take_all(topology.crm_to_ameise)
    assert message.headers["x-replayed-from"] == archived["rejected"]
    assert letters.get(archived["rejected"]).replayed_by == "dashboard:anna"
    [entry] = store.activities(action="dead_letter_replayed")
    assert entry.details["by"] == "dashboard:anna"

    again = http.post("/admin/dead-letters/replay", headers=ADMIN, json={"ids": [archived["rejected"]]})
    forced = http.post("/admin/dead-letters/replay", headers=ADMIN, json={"ids": [archived["rejected"]], "force": True})
    assert again.get_json()["results"][0]["status"] == "refused"
    assert forced.get_json()["results"][0]["status"] == "replayed"
    assert letters.get(archived["rejected"]).replayed_by == "admin-api"    # nobody named


def test_replay_of_an_invalid_message_is_refused_with_the_reason(http, archived, letters):
    response = http.post("/admin/dead-letters/replay", headers=ADMIN, json={"ids": [archived["contract"], 999]})

    assert response.status_code == 200
    refused, missing = response.get_json()["results"]
    assert refused["status"] == "refused" and "Unsupported schema version 2" in refused["reason"]
    assert missing == {"id": 999, "status": "not_found", "routing_key": None, "reason": "no such dead letter"}
    assert letters.get(archived["contract"]).state == "dead"


def test_replay_answers_503_when_the_broker_does_not_confirm(database_url, topology, archived, letters):
    unreachable = Publisher("amqp://guest:guest@127.0.0.1:1//", topology, confirm_timeout=0.5, connect_timeout=0.5)
    http = web_app(Settings.from_env({}, database_url=database_url), publisher=unreachable).test_client()

    response = http.post("/admin/dead-letters/replay", headers=ADMIN, json={"ids": [archived["rejected"]]})

    assert response.status_code == 503
    assert response.get_json()["counts"] == {"failed": 1}
    assert letters.get(archived["rejected"]).state == "dead"


@pytest.mark.parametrize("path", ["/admin/dead-letters", "/dailyup/imports"])
def test_no_request_migrates_the_database_an_outdated_one_answers_503_until_the_release_step(
        tmp_path, topology, path):
    from syncbridge.adapters.db import migrate

    url = f"sqlite:///{tmp_path}/fresh.db"
    publisher = MemoryPublisher(topology, MEMORY)
    http = web_app(Settings.from_env({}, database_url=url, dailyup_dir=str(tmp_path / "dailyup")),
                   publisher=publisher).test_client()
    try:
        refused = http.get(path, headers=ADMIN)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "30"
        assert "syncbridge db upgrade" in refused.get_json()["message"]
        assert migrate.current(url) is None                      # the request left the database as it was

        migrate.upgrade(url)                                     # the release step
        assert http.get(path, headers=ADMIN).status_code == 200  # the next request opens it
    finally:
        publisher.close()


# ---------------------------------------------------------------- discard
def test_discard_dry_run_then_for_real_with_a_note(http, archived, letters, store):
    body = {"filter": {"queue": "ameise-to-crm"}, "by": "anna", "note": "old test deliveries"}

    dry = http.post("/admin/dead-letters/discard", headers=ADMIN, json={**body, "dry_run": True})
    assert dry.get_json()["counts"] == {"would_discard": 2}
    assert {letter.state for letter in letters.find()} == {"dead"}

    real = http.post("/admin/dead-letters/discard", headers=ADMIN, json=body)
    assert real.status_code == 200 and real.get_json()["counts"] == {"discarded": 2}
    assert [(letter.state, letter.note) for letter in letters.find()] == [("discarded", "old test deliveries")] * 2 + [("dead", None)]
    assert {e.details["dead_letter_id"] for e in store.activities(action="dead_letter_discarded")} == {
        archived["contract"], archived["error"]}


# ---------------------------------------------------------------- bad requests
@pytest.mark.parametrize(("body", "message"), [
    ("not json", "Send a JSON object"),
    ([1, 2], "Send a JSON object"),
    ({}, "name the dead letters"),
    ({"filter": {}}, "name the dead letters"),
    ({"ids": [1], "filter": {"kind": "rejected"}}, "not both"),
    ({"ids": [1], "all": True}, "not both"),
    ({"ids": "1"}, "ids must be a list"),
    ({"ids": [0]}, "ids must be a list"),
    ({"ids": [True]}, "ids must be a list"),
    ({"filter": {"kind": "nope"}}, "kind must be one of"),
    ({"filter": {"colour": "red"}}, "unknown filter(s) colour"),
    ({"filter": {"record": 4150868000000376008}}, "filter record must be a string"),
    ({"filter": "kind=rejected"}, "filter must be an object"),
    ({"ids": [1], "dryrun": True}, "unknown field(s) dryrun"),
    ({"ids": [1], "dry_run": "yes"}, "dry_run must be true or false"),
    ({"ids": [1], "by": ""}, "by must name who acts"),
    ({"ids": [1], "note": 5}, "note must be a string"),
])
@pytest.mark.parametrize("action", ["replay", "discard"])
def test_a_bad_action_is_a_400_and_changes_nothing(http, archived, letters, store, action, body, message):
    if action == "replay" and "note" in body:
        message = "unknown field(s) note"                     # only a discard takes a note
    before = letters.find()
    data = body if isinstance(body, str) else json.dumps(body)

    response = http.post(f"/admin/dead-letters/{action}", headers=ADMIN, data=data, content_type="application/json")

    assert response.status_code == 400, response.get_json()
    assert response.is_json and response.get_json()["error"] == "bad_request"
    assert message in response.get_json()["message"]
    assert letters.find() == before and store.activities() == []


def test_status_tells_a_lost_connection_and_the_dead_letters(http, archived, store):
    store.tokens.set_status("ameise", "reconnect_needed", "refresh failed: ameise 400 invalid_grant")

    assert http.get("/admin/status").status_code == 401
    answer = http.get("/admin/status", headers=ADMIN).get_json()

    assert answer["connections"]["ameise"] == {"state": "reconnect_needed",
                                               "detail": "refresh failed: ameise 400 invalid_grant"}
    assert answer["connections"]["zoho"]["state"] == "not_connected"
    assert answer["dead_letters"] == len(archived)


# ---------------------------------------------------------------- hostile input
@pytest.fixture
def admin_http(database_url, topology, tmp_path):
    """The receiver with the admin API and the DailyUp routes on the SQLite file, the drop folder in tmp."""
    publisher = MemoryPublisher(topology, MEMORY)
    settings = Settings.from_env({}, database_url=database_url, dailyup_dir=str(tmp_path / "dailyup"))
    yield web_app(settings, publisher=publisher).test_client()
    publisher.close()


def assert_json_error(response, status: int, error: str, *fragments: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert response.is_json and body["error"] == error, body
    for fragment in fragments:
        assert fragment in body["message"], body


@pytest.mark.parametrize(("query", "fragment"), [
    ("limit=%C2%B2", "limit must be a whole number from 1 to 1000"),           # "²".isdigit(), int() fails
    ("limit=%EF%BC%95", "limit must be a whole number from 1 to 1000"),        # a full-width 5: not ASCII
    ("limit=+5", "limit must be a whole number"),                               # " 5"
    ("limit=%2B5", "limit must be a whole number"),
    ("limit=99999999999999999999999", "limit must be a whole number"),
    ("until=0001-01-01T00:00:00%2B14:00", "until must be an ISO 8601"),         # before UTC's first second
    ("since=9999-12-31T23:59:59-14:00", "since must be an ISO 8601"),           # after UTC's last
    ("record=a%00b", "record must not contain control characters"),
    ("kind=%1B%5B31m", "kind must not contain control characters"),
    ("queue=" + "q" * 70, "queue must be at most 64 characters"),
])
def test_hostile_list_parameters_are_a_400_saying_why(admin_http, archived, query, fragment):
    assert_json_error(admin_http.get(f"/admin/dead-letters?{query}", headers=ADMIN), 400, "bad_request", fragment)


@pytest.mark.parametrize("letter_id", ["9223372036854775808", "99999999999999999999999999", "%C2%B2", "%D9%A1"])
def test_a_dead_letter_id_out_of_range_or_not_ascii_is_not_found(admin_http, archived, letter_id):
    assert_json_error(admin_http.get(f"/admin/dead-letters/{letter_id}", headers=ADMIN), 404, "not_found")


def test_the_largest_id_is_looked_up_and_not_found(admin_http, archived):
    assert_json_error(admin_http.get("/admin/dead-letters/9223372036854775807", headers=ADMIN), 404, "not_found",
                      "No dead letter 9223372036854775807")


@pytest.mark.parametrize(("body", "fragment"), [
    ('{"ids": [9223372036854775808]}', "ids must be a list of dead-letter ids"),
    ('{"ids": [1e3]}', "ids must be a list of dead-letter ids"),
    ('{"ids": [' + ",".join(["1"] * 1001) + "]}", "at most 1000"),
    ('{"ids": [' + "9" * 5000 + "]}", "Send a JSON object"),                   # past Python's int digits limit
    ("[" * 20000 + "]" * 20000, "Send a JSON object"),                         # RecursionError in the parser
    ('{"filter": ' * 3000 + "{}" + "}" * 3000, "Send a JSON object"),
    ('{"ids": [1], "by": "anna\\u0000"}', "by must not contain control characters"),
    ('{"ids": [1], "by": "\\ud800"}', "by must not contain lone surrogates"),
    ('{"filter": {"record": "a\\u0000"}}', "filter record must not contain control characters"),
    ('{"filter": {"until": "0001-01-01T00:00:00+14:00"}}', "filter until must be an ISO 8601"),
    ('{"filter": {"kind": 7}}', "filter kind must be a string"),
    (b'{"ids": [1], "by": "\xff"}', "Send a JSON object"),                     # not UTF-8
])
@pytest.mark.parametrize("action", ["replay", "discard"])
def test_hostile_action_bodies_are_a_400_and_change_nothing(admin_http, archived, letters, store, action, body,
                                                            fragment):
    before = letters.find()

    response = admin_http.post(f"/admin/dead-letters/{action}", headers=ADMIN, data=body,
                               content_type="application/json")

    assert_json_error(response, 400, "bad_request", fragment)
    assert letters.find() == before and store.activities() == []


@pytest.mark.parametrize(("body", "fragment"), [
    ('{"filter": {"state": "dead"}, "note": "a\\u0000"}', "note must not contain control characters"),
    ('{"filter": {"state": "dead"}, "note": "' + "n" * 5000 + '"}', "note must be at most 4000 characters"),
])
def test_a_hostile_note_is_a_400(admin_http, archived, letters, body, fragment):
    response = admin_http.post("/admin/dead-letters/discard", headers=ADMIN, data=body,
                               content_type="application/json")

    assert_json_error(response, 400, "bad_request", fragment)
    assert {letter.state for letter in letters.find()} == {"dead"}


def test_a_note_may_have_several_lines(admin_http, archived, letters):
    response = admin_http.post("/admin/dead-letters/discard", headers=ADMIN,
                               json={"ids": [archived["error"]], "note": "first line\n\tsecond line"})

    assert response.status_code == 200 and response.get_json()["counts"] == {"discarded": 1}
    assert letters.get(archived["error"]).note == "first line\n\tsecond line"


@pytest.mark.parametrize(("path", "status", "error"), [
    ("/dailyup/imports/%C2%B2", 404, "not_found"),                  # "²".isdigit(), int() fails
    ("/dailyup/imports/9223372036854775808", 404, "not_found"),
    ("/dailyup/imports/99999999999999999999999999/kunden.csv", 404, "not_found"),
    ("/dailyup/imports?limit=%C2%B2", 400, "bad_request"),
    ("/dailyup/imports?limit=%EF%BC%95", 400, "bad_request"),
    ("/dailyup/imports?limit=0", 400, "bad_request"),
    ("/dailyup/imports?sha256=%00", 400, "bad_request"),
    ("/dailyup/imports?sha256=" + "g" * 64, 400, "bad_request"),
])
def test_hostile_dailyup_admin_requests(admin_http, path, status, error):
    assert_json_error(admin_http.get(path, headers=ADMIN), status, error)


def test_the_import_of_an_upper_case_sha256_is_found(admin_http):
    response = admin_http.get("/dailyup/imports?sha256=" + "A" * 64, headers=ADMIN)

    assert response.status_code == 200 and response.get_json() == {"imports": []}


DOWN = "postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=2"   # nothing listens on port 9


@pytest.mark.parametrize(("method", "path", "body"), [
    ("get", "/admin/status", None),
    ("get", "/admin/dead-letters", None),
    ("get", "/admin/dead-letters/1", None),
    ("post", "/admin/dead-letters/replay", {"ids": [1]}),
    ("post", "/admin/dead-letters/discard", {"ids": [1], "dry_run": True}),
    ("get", "/dailyup/imports", None),
    ("get", "/dailyup/imports/latest", None),
    ("get", "/dailyup/imports/1/kunden.csv", None),
])
def test_a_database_that_is_down_is_a_503_with_retry_after(topology, tmp_path, caplog, method, path, body):
    publisher = MemoryPublisher(topology, MEMORY)
    settings = Settings.from_env({}, database_url=DOWN, dailyup_dir=str(tmp_path / "dailyup"))
    http = web_app(settings, publisher=publisher).test_client()

    response = getattr(http, method)(path, headers=ADMIN, json=body)
    unauthenticated = getattr(http, method)(path, json=body)
    publisher.close()

    assert_json_error(response, 503, "unavailable", "database")
    assert int(response.headers["Retry-After"]) > 0
    assert "127.0.0.1" not in response.get_data(as_text=True)          # the driver's text stays in the log
    assert "database unavailable" in caplog.text
    assert unauthenticated.status_code == 401


@pytest.mark.parametrize("until", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_time_outside_utc_is_an_invalid_filter_for_the_cli_too(until):
    from syncbridge.handlers.dead_letters import InvalidFilter, parse_filter

    with pytest.raises(InvalidFilter, match="until must be an ISO 8601"):
        parse_filter(until=until)
