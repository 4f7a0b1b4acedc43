"""The webhook receiver through Flask's test client, publishing to kombu's in-process broker."""
from __future__ import annotations

import io
import json
import logging
import socket
import time
from datetime import datetime

import pytest
from flask import jsonify

from producers.memory import MemoryPublisher
from producers.publisher import Publisher
from producers.topology import build_topology
from syncbridge.bootstrap import web_app
from tests.support.webhooks import FLOW_TOKEN, FORMS_TOKEN, NOTIFY_TOKEN, WEBHOOK_TOKEN, make_settings, queued
from webhooks import access_log, create_app

RECORD_ID = "4150868000000376008"  # 19 digits: a float would turn it into 4150868000000375800
UNREACHABLE = "amqp://guest:guest@127.0.0.1:1//"






@pytest.fixture
def settings(namespace):
    return make_settings(namespace)


@pytest.fixture
def client(settings, publisher):
    app = create_app(settings, publisher=publisher, checks={"broker": publisher.ping, "database": lambda: None})
    return app.test_client()


def wf_headers(token: str = WEBHOOK_TOKEN) -> dict:
    return {"X-Webhook-Token": token}


def assert_queued_one(response, topology, *, source="zoho-workflow", module="Contacts",
                      record_id=RECORD_ID, operation=None, modified_time=None):
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["status"] == "queued"
    [(event, message)] = queued(topology)
    assert event.event_id == body["event_id"]
    assert event.source == source
    assert event.module == module
    assert event.record_id == record_id and isinstance(event.record_id, str)
    assert event.operation == operation
    assert event.modified_time == modified_time
    assert isinstance(event.received_at, datetime) and event.received_at.tzinfo is not None
    assert message.properties["message_id"] == event.event_id
    assert message.properties["delivery_mode"] == 2
    assert message.delivery_info["routing_key"] == f"crm.{module.lower()}.changed"
    return event


def assert_error(response, status: int, error: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and 'File "' not in text
    body = response.get_json()
    if error is not None:
        assert body["error"] == error, body
    return body


# ------------------------------------------------------------------ workflow webhooks
def test_workflow_form_body(client, topology):
    response = client.post(
        f"/webhooks/zoho/Contacts?token={WEBHOOK_TOKEN}",
        data={"id": RECORD_ID, "operation": "edit", "modified_time": "2024-06-11T12:00:00+02:00",
              "module": "Contacts", "Owner_Name": "custom parameter, ignored"},
    )
    assert_queued_one(response, topology, operation="edit", modified_time="2024-06-11T12:00:00+02:00")


def test_workflow_post_with_only_a_query_string(client, topology):
    response = client.post(f"/webhooks/zoho/Accounts?id={RECORD_ID}&token={WEBHOOK_TOKEN}")
    assert_queued_one(response, topology, module="Accounts")


def test_workflow_raw_json_body(client, topology):
    response = client.post("/webhooks/zoho/Deals", json={"id": RECORD_ID, "module": "Deals"}, headers=wf_headers())
    assert_queued_one(response, topology, module="Deals")


def test_workflow_raw_json_sent_as_form_content_type(client, topology):
    response = client.post("/webhooks/zoho/Contacts", data=json.dumps({"id": RECORD_ID, "operation": "edit"}),
                           content_type="application/x-www-form-urlencoded", headers=wf_headers())
    assert_queued_one(response, topology, operation="edit")


def test_workflow_json_without_content_type(client, topology):
    response = client.post("/webhooks/zoho/Contacts", data=json.dumps({"id": RECORD_ID}), content_type="",
                           headers=wf_headers())
    assert_queued_one(response, topology)


def test_workflow_token_as_json_field(client, topology):
    response = client.post("/webhooks/zoho/Deals", json={"id": RECORD_ID, "token": WEBHOOK_TOKEN})
    assert_queued_one(response, topology, module="Deals")


def test_workflow_get_with_query_parameters(client, topology):
    response = client.get(f"/webhooks/zoho/Contacts?id={RECORD_ID}&operation=create&token={WEBHOOK_TOKEN}")
    assert_queued_one(response, topology, operation="create")


def test_workflow_module_in_url_is_matched_to_its_configured_spelling(client, topology):
    response = client.post("/webhooks/zoho/accounts", data={"id": RECORD_ID}, headers=wf_headers())
    assert_queued_one(response, topology, module="Accounts")


def test_blank_optional_fields_are_absent(client, topology):
    response = client.post("/webhooks/zoho/Contacts", data={"id": RECORD_ID, "operation": "", "module": ""},
                           headers=wf_headers())
    assert_queued_one(response, topology, operation=None)


def test_json_int_id_is_refused(client, topology):
    response = client.post("/webhooks/zoho/Contacts", json={"id": int(RECORD_ID)}, headers=wf_headers())
    body = assert_error(response, 400, "invalid_payload")
    assert "id" in body["fields"]
    assert queued(topology) == []


@pytest.mark.parametrize("record_id", ["", "abc", "12 34", "${Contacts.Contact Id}"])
def test_non_digit_id_is_refused(client, topology, record_id):
    response = client.post("/webhooks/zoho/Contacts", data={"id": record_id}, headers=wf_headers())
    assert "id" in assert_error(response, 400, "invalid_payload")["fields"]
    assert queued(topology) == []


def test_module_not_synced(client, topology):
    response = client.post("/webhooks/zoho/Leads", data={"id": RECORD_ID}, headers=wf_headers())
    body = assert_error(response, 400, "invalid_payload")
    assert "module" in body["fields"]
    assert queued(topology) == []


def test_module_not_synced_and_bad_id_are_reported_together(client):
    response = client.post("/webhooks/zoho/Leads", data={"id": "x"}, headers=wf_headers())
    assert set(assert_error(response, 400, "invalid_payload")["fields"]) == {"module", "id"}


def test_payload_module_contradicting_the_url(client, topology):
    response = client.post("/webhooks/zoho/Contacts", data={"id": RECORD_ID, "module": "Deals"}, headers=wf_headers())
    assert "module" in assert_error(response, 400, "invalid_payload")["fields"]
    assert queued(topology) == []


def test_head_queues_nothing(client, topology):
    response = client.head(f"/webhooks/zoho/Contacts?id={RECORD_ID}&token={WEBHOOK_TOKEN}")
    assert response.status_code == 405
    assert queued(topology) == []


# ------------------------------------------------------------------ authentication
@pytest.mark.parametrize("headers, query", [
    ({}, ""),
    (wf_headers("wrong"), ""),
    ({}, "?token=wrong"),
    (wf_headers(NOTIFY_TOKEN), ""),      # another source's secret
    (wf_headers("tökén"), ""),           # non-ASCII must not crash the comparison
])
def test_workflow_without_valid_token_is_401(client, topology, headers, query):
    response = client.post(f"/webhooks/zoho/Contacts{query}", data={"id": RECORD_ID}, headers=headers)
    assert_error(response, 401, "unauthorized")
    assert queued(topology) == []


def test_401_comes_before_contract_validation(client):
    assert_error(client.post("/webhooks/zoho/Contacts", data={"id": "not-an-id"}), 401, "unauthorized")
    assert_error(client.post("/webhooks/zoho/Leads", json={"nothing": 1}), 401, "unauthorized")
    assert_error(client.post("/webhooks/zoho/Contacts", data="{broken", content_type="application/json"),
                 401, "unauthorized")


def test_token_is_never_logged(client, topology, caplog):
    caplog.set_level(logging.DEBUG)
    response = client.post(f"/webhooks/zoho/Contacts?token={WEBHOOK_TOKEN}", data={"id": RECORD_ID})
    event = assert_queued_one(response, topology)
    client.post("/webhooks/zoho/Contacts?token=wrong-secret-attempt", data={"id": RECORD_ID})
    assert WEBHOOK_TOKEN not in caplog.text
    assert "wrong-secret-attempt" not in caplog.text
    [line] = [r.getMessage() for r in caplog.records if event.event_id in r.getMessage()]
    assert "Contacts" in line and RECORD_ID in line and "zoho-workflow" in line


def test_under_a_server_whose_access_line_carries_it_the_event_is_not_logged_again(client, topology, caplog):
    caplog.set_level(logging.DEBUG)
    app, seen = client.application, []
    wsgi_app = app.wsgi_app

    def carried(environ, start_response):   # what gunicorn's JsonGeventWorker does
        environ[access_log.CARRIED] = True
        seen.append(environ)
        return wsgi_app(environ, start_response)

    app.wsgi_app = carried
    response = client.post("/webhooks/zoho/Contacts", json={"id": RECORD_ID}, headers=wf_headers())
    event = assert_queued_one(response, topology)
    assert seen[0][access_log.QUEUED] == (
        f"queued event {event.event_id} module=Contacts record_id={RECORD_ID} source=zoho-workflow")
    assert not [r for r in caplog.records if event.event_id in r.getMessage()]


def test_the_202_answer_is_what_jsonify_writes(client, topology):
    response = client.post("/webhooks/zoho/Contacts", json={"id": RECORD_ID}, headers=wf_headers())
    event = assert_queued_one(response, topology)
    with client.application.app_context():
        expected = jsonify({"event_id": event.event_id, "status": "queued"})
    assert response.get_data() == expected.get_data()
    assert response.headers["Content-Type"] == expected.headers["Content-Type"]
    assert response.headers["Content-Length"] == expected.headers["Content-Length"]


# ------------------------------------------------------------------ notification API
def notification(**overrides) -> dict:
    body = {
        "server_time": 1718117126473, "query_params": {}, "module": "Contacts",
        "resource_uri": "https://www.zohoapis.com/crm/v2/Contacts",
        "ids": ["5725767000003000064", "5725767000003000065", "5725767000003000066"],
        "affected_fields": [], "operation": "update", "channel_id": "1000000068001", "token": NOTIFY_TOKEN,
    }
    body.update(overrides)
    return body


def test_notification_with_several_ids(client, topology):
    response = client.post("/webhooks/zoho/notify", json=notification())
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["status"] == "queued"
    events = [event for event, _ in queued(topology)]
    assert [e.event_id for e in events] == body["event_ids"]
    assert [e.record_id for e in events] == ["5725767000003000064", "5725767000003000065", "5725767000003000066"]
    assert {(e.source, e.module, e.operation) for e in events} == {("zoho-notify", "Contacts", "update")}


def test_notification_numeric_channel_id_is_accepted(client, topology):
    response = client.post("/webhooks/zoho/notify", json=notification(channel_id=1000000068001, ids=[RECORD_ID]))
    assert response.status_code == 202
    assert len(queued(topology)) == 1


@pytest.mark.parametrize("token", [None, "wrong", WEBHOOK_TOKEN])
def test_notification_wrong_token_is_401(client, topology, token):
    response = client.post("/webhooks/zoho/notify", json=notification(token=token))
    assert_error(response, 401, "unauthorized")
    assert queued(topology) == []


@pytest.mark.parametrize("overrides, field", [
    ({"module": "Leads"}, "module"),
    ({"ids": []}, "ids"),
    ({"ids": [5725767000003000064]}, "ids"),
    ({"ids": "5725767000003000064"}, "ids"),
    ({"module": None}, "module"),
])
def test_notification_invalid(client, topology, overrides, field):
    response = client.post("/webhooks/zoho/notify", json=notification(**overrides))
    assert field in assert_error(response, 400, "invalid_payload")["fields"]
    assert queued(topology) == []


def test_notify_is_not_a_module(client, topology):
    # A workflow token does not open the notification route, and GET there is not a module lookup.
    response = client.post("/webhooks/zoho/notify", data={"id": RECORD_ID}, headers=wf_headers())
    assert_error(response, 401)
    response = client.get(f"/webhooks/zoho/notify?id={RECORD_ID}&token={WEBHOOK_TOKEN}")
    assert_error(response, 405, "method_not_allowed")
    assert queued(topology) == []


# ------------------------------------------------------------------ Zoho Forms / Flow
FORMS_BODIES = {
    "json": dict(json={"id": RECORD_ID, "operation": "create"}),
    "form": dict(data={"record_id": RECORD_ID, "operation": "create"}),
    "multipart": dict(data={"id": RECORD_ID, "operation": "create",
                            "attachment": (io.BytesIO(b"%PDF-1.4"), "scan.pdf")},
                      content_type="multipart/form-data"),
    "text-json": dict(data=json.dumps({"record_id": RECORD_ID, "operation": "create"}), content_type="text/plain"),
    "text-pairs": dict(data=f"id={RECORD_ID}&operation=create", content_type="text/plain; charset=utf-8"),
    "text-lines": dict(data=f"id={RECORD_ID}\noperation=create\n", content_type="text/plain"),
}


@pytest.mark.parametrize("shape", FORMS_BODIES)
def test_forms_body_shapes(client, topology, shape):
    response = client.post("/webhooks/forms/zoho-forms", headers=wf_headers(FORMS_TOKEN), **FORMS_BODIES[shape])
    assert_queued_one(response, topology, source="forms:zoho-forms", module="Contacts", operation="create")


def test_forms_module_and_token_in_the_body(client, topology):
    response = client.post("/webhooks/forms/zoho-flow", json={"record_id": RECORD_ID, "module": "Deals",
                                                              "token": FLOW_TOKEN})
    assert_queued_one(response, topology, source="forms:zoho-flow", module="Deals")


def test_forms_default_module_comes_from_settings(namespace, publisher, topology):
    app = create_app(make_settings(namespace, forms_default_module="Accounts"), publisher=publisher, checks={})
    response = app.test_client().post("/webhooks/forms/zoho-flow", data={"id": RECORD_ID},
                                      headers=wf_headers(FLOW_TOKEN))
    assert_queued_one(response, topology, source="forms:zoho-flow", module="Accounts")


def test_forms_token_is_per_source(client, topology):
    response = client.post("/webhooks/forms/zoho-flow", json={"id": RECORD_ID}, headers=wf_headers(FORMS_TOKEN))
    assert_error(response, 401, "unauthorized")
    assert queued(topology) == []


def test_forms_unknown_and_known_sources_answer_alike_without_a_valid_token(client, topology):
    # Source names cannot be enumerated: without a valid token both are 401, with the same body.
    for headers in ({}, wf_headers("guess"), wf_headers(FORMS_TOKEN)):
        unknown = assert_error(client.post("/webhooks/forms/typeform", json={"id": RECORD_ID}, headers=headers),
                               401, "unauthorized")
        if headers.get("X-Webhook-Token") == FORMS_TOKEN:
            continue  # valid for zoho-forms, so only the unknown source refuses it
        known = assert_error(client.post("/webhooks/forms/zoho-forms", json={"id": RECORD_ID}, headers=headers),
                             401, "unauthorized")
        assert unknown == known
    assert queued(topology) == []


@pytest.mark.parametrize("body, field", [
    ({}, "id"),
    ({"id": RECORD_ID, "record_id": "1"}, "record_id"),
    ({"record_id": 4150868000000376008}, "record_id"),
    ({"id": RECORD_ID, "module": "Leads"}, "module"),
])
def test_forms_invalid(client, topology, body, field):
    response = client.post("/webhooks/forms/zoho-forms", json=body, headers=wf_headers(FORMS_TOKEN))
    assert field in assert_error(response, 400, "invalid_payload")["fields"]
    assert queued(topology) == []


def test_forms_text_that_is_neither_json_nor_pairs(client):
    response = client.post("/webhooks/forms/zoho-flow", data="just some words", content_type="text/plain",
                           headers=wf_headers(FLOW_TOKEN))
    assert_error(response, 400, "malformed_body")


# ------------------------------------------------------------------ HTTP-level errors
def test_malformed_json(client, topology):
    response = client.post("/webhooks/zoho/Contacts", data='{"id": "41', content_type="application/json",
                           headers=wf_headers())
    assert_error(response, 400, "malformed_body")
    assert queued(topology) == []


def test_json_that_is_not_an_object(client):
    response = client.post("/webhooks/zoho/Contacts", json=[RECORD_ID], headers=wf_headers())
    assert_error(response, 400)


def test_body_over_the_limit_is_413(namespace, publisher, topology):
    app = create_app(make_settings(namespace, max_body_bytes="100"), publisher=publisher, checks={})
    client = app.test_client()
    big = {"id": RECORD_ID, "padding": "x" * 500}
    assert_error(client.post("/webhooks/zoho/Contacts", json=big, headers=wf_headers()), 413, "payload_too_large")
    assert_error(client.post("/webhooks/zoho/Contacts", data=big, headers=wf_headers()), 413, "payload_too_large")
    assert queued(topology) == []
    # Under the limit the same app accepts.
    assert client.post("/webhooks/zoho/Contacts", json={"id": RECORD_ID}, headers=wf_headers()).status_code == 202


def test_unsupported_content_type_is_415(client, topology):
    response = client.post("/webhooks/zoho/Contacts", data=f"<id>{RECORD_ID}</id>", content_type="application/xml",
                           headers=wf_headers())
    assert_error(response, 415, "unsupported_media_type")
    assert queued(topology) == []


@pytest.mark.parametrize("method, path", [
    ("delete", "/webhooks/zoho/Contacts"),
    ("put", "/webhooks/zoho/notify"),
    ("get", "/webhooks/forms/zoho-forms"),
    ("post", "/healthz"),
])
def test_wrong_method_is_405(client, method, path):
    response = getattr(client, method)(path, headers=wf_headers())
    assert_error(response, 405, "method_not_allowed")
    assert response.headers.get("Allow")


def test_unknown_path_is_404_json(client):
    assert_error(client.get("/nowhere"), 404, "not_found")


class ExplodingPublisher:
    """A publisher with a bug: it fails with something that is not a broker outage."""

    def __init__(self, topology):
        self.topology = topology

    def publish(self, *args, **kwargs):
        raise RuntimeError("internal detail that must stay in the logs")

    def ping(self):
        pass

    def close(self):
        pass


def test_unexpected_exception_is_500_json_without_traceback(settings, topology, caplog):
    app = create_app(settings, publisher=ExplodingPublisher(topology), checks={})
    response = app.test_client().post("/webhooks/zoho/Contacts", data={"id": RECORD_ID}, headers=wf_headers())
    assert_error(response, 500, "internal_error")
    assert "internal detail" not in response.get_data(as_text=True)
    assert "internal detail" in caplog.text  # logged server-side, with its traceback
    assert queued(topology) == []


def test_broker_down_is_503_with_retry_after(settings, topology):
    down = Publisher(UNREACHABLE, topology, connect_timeout=1)
    app = create_app(settings, publisher=down, checks={"broker": down.ping})
    client = app.test_client()
    started = time.monotonic()
    response = client.post("/webhooks/zoho/Contacts", data={"id": RECORD_ID}, headers=wf_headers())
    assert time.monotonic() - started < 2
    assert_error(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) > 0

    response = client.post("/webhooks/zoho/notify", json=notification())
    assert_error(response, 503)
    assert "Retry-After" in response.headers


# ------------------------------------------------------------------ health
def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_ready(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"broker": "ok", "database": "ok"}}


def test_readyz_not_ready_names_each_failure(settings, topology):
    down = Publisher(UNREACHABLE, topology, connect_timeout=1)

    def database():
        raise ConnectionError("database is locked\nsecond line that is not shown")

    app = create_app(settings, publisher=down, checks={"broker": down.ping, "database": database})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not_ready"
    assert body["checks"] == {"broker": "unavailable", "database": "unavailable"}
    assert "Traceback" not in response.get_data(as_text=True)
    # Liveness does not depend on the broker.
    assert app.test_client().get("/healthz").status_code == 200


# ------------------------------------------------------------------ wiring
def test_create_app_does_no_io(settings, topology, monkeypatch):
    publisher = Publisher(UNREACHABLE, topology)
    connects, checked = [], []

    def connect(sock, address):
        connects.append(address)
        raise ConnectionRefusedError(f"create_app must not connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect)
    app = create_app(settings, publisher=publisher, checks={"broker": lambda: checked.append("broker")})
    assert app is not None
    assert connects == [] and checked == []


def test_create_app_defaults_build_a_publisher_from_settings(namespace):
    app = web_app(make_settings(namespace))  # empty broker URL: the in-process broker
    response = app.test_client().post("/webhooks/zoho/Contacts", data={"id": RECORD_ID}, headers=wf_headers())
    assert_queued_one(response, build_topology(namespace))


@pytest.mark.parametrize("database_url", ["postgresql+psycopg://syncbridge@127.0.0.1:1/none", "nosuchdriver://x"],
                         ids=["unreachable", "malformed"])
def test_the_receiver_queues_events_without_its_database_and_readyz_says_why(namespace, publisher, database_url):
    app = web_app(make_settings(namespace, database_url=database_url), publisher=publisher)
    client = app.test_client()

    assert client.post("/webhooks/zoho/Contacts", data={"id": RECORD_ID}, headers=wf_headers()).status_code == 202
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert_error(ready, 503)
    assert ready.get_json()["status"] == "not_ready"
    assert ready.get_json()["checks"]["broker"] == "ok" and ready.get_json()["checks"]["database"] != "ok"
    assert "127.0.0.1:1" not in ready.get_data(as_text=True)      # no connection details to a caller


# ------------------------------------------------------------------ hostile input
WEBHOOK_PATHS = [
    ("/webhooks/zoho/Contacts", WEBHOOK_TOKEN),
    ("/webhooks/zoho/notify", NOTIFY_TOKEN),
    ("/webhooks/forms/zoho-forms", FORMS_TOKEN),
]
DEEP = b"[" * 32_000


@pytest.mark.parametrize("path, token", WEBHOOK_PATHS)
@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/x-www-form-urlencoded", None])
@pytest.mark.parametrize("with_token", [False, True])
def test_deeply_nested_json_is_400_or_401(client, topology, path, token, content_type, with_token):
    headers = wf_headers(token) if with_token else {}
    body = DEEP if content_type != "application/x-www-form-urlencoded" else b"{" + b'"a":' * 1 + DEEP
    response = client.post(path, data=body, content_type=content_type, headers=headers)
    assert_error(response, 400 if with_token else 401)
    assert queued(topology) == []


@pytest.mark.parametrize("charset", ["punycode", "idna", "rot13", "zlib", "unicode_escape", "utf-7", "nonsense"])
@pytest.mark.parametrize("body", [b"id=12&operation=edit", b"caf\xc3\xa9=\xff\xfe", b"\\ud800=1"])
def test_text_body_in_an_odd_charset_is_never_a_500(client, topology, charset, body):
    for headers, status in (({}, 401), (wf_headers(), (202, 400, 415))):
        response = client.post("/webhooks/zoho/Contacts", data=body,
                               content_type=f"text/plain; charset={charset}", headers=headers)
        assert response.status_code < 500, response.get_data(as_text=True)
        if response.status_code != 202:
            assert_error(response, response.status_code)
    for _, message in queued(topology):
        json.dumps(message.payload).encode("utf-8")  # whatever was queued is valid Unicode


def test_punycode_charset_is_415_with_token_and_401_without(client, topology):
    body = b"id=12&operation=edit"
    assert_error(client.post("/webhooks/zoho/Contacts", data=body, content_type="text/plain; charset=punycode"), 401)
    assert_error(client.post("/webhooks/zoho/Contacts", data=body, content_type="text/plain; charset=punycode",
                             headers=wf_headers()), 415, "unsupported_media_type")
    assert queued(topology) == []


@pytest.mark.parametrize("path, token", WEBHOOK_PATHS)
def test_lone_surrogate_token_is_401(client, topology, path, token):
    for body in ('{"id":"1","token":"\\ud800"}', '{"id":"1","token":"\\udc80x"}'):
        response = client.post(path, data=body, content_type="application/json")
        assert_error(response, 401, "unauthorized")
    response = client.post(path, data='{"id":"1"}', content_type="application/json",
                           query_string="token=%ED%A0%80")  # a surrogate's UTF-8 bytes in the query
    assert_error(response, 401, "unauthorized")
    assert queued(topology) == []


@pytest.mark.parametrize("body", [
    f'{{"id":"{RECORD_ID}","operation":"\\udc80"}}',
    f'{{"id":"{RECORD_ID}","operation":"edit","modified_time":"\\ud800"}}',
    f'{{"id":"{RECORD_ID}","\\ud800":"x"}}',
])
def test_lone_surrogate_in_a_field_with_a_valid_token_is_400(client, topology, body):
    response = client.post("/webhooks/zoho/Contacts", data=body, content_type="application/json",
                           headers=wf_headers())
    assert_error(response, 400, "malformed_body")
    assert queued(topology) == []


def test_lone_surrogate_in_a_notification_is_400(client, topology):
    body = (f'{{"ids":["{RECORD_ID}"],"module":"Contacts","operation":"\\udc80","token":"{NOTIFY_TOKEN}",'
            '"channel_id":"1"}')
    # The token in the header: the body is refused for what it is.
    assert_error(client.post("/webhooks/zoho/notify", data=body, content_type="application/json",
                             headers=wf_headers(NOTIFY_TOKEN)), 400, "malformed_body")
    # The token only in the unreadable body: no token was presented.
    assert_error(client.post("/webhooks/zoho/notify", data=body, content_type="application/json"),
                 401, "unauthorized")
    assert queued(topology) == []


@pytest.mark.parametrize("path", ["//webhooks/zoho/Contacts", "/webhooks//zoho/Contacts", "/healthz/",
                                  "/webhooks/zoho/Contacts/", "//healthz", "/dailyup//deliveries"])
def test_odd_slashes_get_json_not_a_redirect_page(client, topology, path):
    response = client.post(path, data={"id": RECORD_ID}, headers=wf_headers())
    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code)
    assert queued(topology) == []


class CountingPublisher(MemoryPublisher):
    """The in-memory publisher, counting how it is asked to publish."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.single, self.batches = 0, []

    def publish(self, *args, **kwargs):
        self.single += 1
        return super().publish(*args, **kwargs)

    def publish_many(self, exchange, messages, **kwargs):
        messages = list(messages)
        self.batches.append(len(messages))
        self.single -= len(messages)  # the in-memory broker publishes a batch one by one
        return super().publish_many(exchange, messages, **kwargs)


def test_notification_with_many_ids_is_published_as_one_batch(namespace, topology):
    publisher = CountingPublisher(topology)
    app = create_app(make_settings(namespace, max_body_bytes="400000"), publisher=publisher, checks={})
    ids = [str(5_000_000_000 + n) for n in range(9_500)]
    body = {"ids": ids, "module": "Contacts", "operation": "update", "token": NOTIFY_TOKEN, "channel_id": "7"}
    response = app.test_client().post("/webhooks/zoho/notify", json=body)
    assert response.status_code == 202, response.get_json()
    assert publisher.batches == [9_500] and publisher.single == 0
    events = queued(topology)
    assert [event.record_id for event, _ in events] == ids
    assert [event.event_id for event, _ in events] == response.get_json()["event_ids"]


def test_body_read_timeout_must_be_positive(namespace):
    from syncbridge.config import ConfigError

    assert make_settings(namespace).body_read_timeout == 10
    with pytest.raises(ConfigError, match="SYNCBRIDGE_BODY_READ_TIMEOUT"):
        make_settings(namespace, body_read_timeout="0")


@pytest.mark.parametrize("line, kept", [
    ("Invalid HTTP request line: 'GET /webhooks/zoho/Contacts?token=s3cret HTTP/1.1'", "/webhooks/zoho/Contacts?"),
    ("Invalid HTTP Version: 'b/x?id=1&token=s3cret HTTP/1.1'", "/x?"),
    ("Error handling request POST /webhooks/forms/zoho-flow?a=1&token=s3cret", "/webhooks/forms/zoho-flow?"),
    ("upstream said token=s3cret&x=1", "token=<removed>"),
])
def test_server_log_lines_lose_query_strings_and_tokens(line, kept):
    from webhooks.gunicorn_worker import scrub

    assert "s3cret" not in scrub(line) and kept in scrub(line)
