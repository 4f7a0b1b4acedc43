"""The Sentry scrubber on nested events and breadcrumbs, and the functions without a DSN."""
from __future__ import annotations

import pytest
import sentry_sdk

from syncbridge.config import Settings
from syncbridge.monitoring import (
    EMAIL,
    FILTERED,
    breadcrumb,
    denied,
    init_sentry,
    message_scope,
    report_failed_message,
    scrub,
)

RECORD_ID = "4150868000000376008"
ADDRESS = "max.mustermann@example.com"


@pytest.fixture(autouse=True)
def no_sentry_client_left():
    """Leave the process without a Sentry client, as other tests expect."""
    yield
    sentry_sdk.get_client().close(timeout=1)
    sentry_sdk.get_global_scope().set_client(None)
    sentry_sdk.get_isolation_scope().clear()
    sentry_sdk.get_current_scope().clear()


@pytest.mark.parametrize("key", [
    "Vorname", "Nachname", "First_Name", "last_name", "FULL_NAME", "Account_Name", "Contact_Name", "Firma", "name",
    "Email", "Secondary_Email", "e-mail", "E_Mail_Adresse",
    "Geburtsdatum", "Date_of_Birth",
    "Strasse", "Street", "PLZ", "Zip", "Code", "Ort", "City", "Mailing_Street", "Mailing_Zip", "Billing_Code",
    "Billing_City", "Shipping_Street", "Other_Zip",
    "Telefon", "Phone", "Mobil", "Mobile", "Other_Phone", "BenutzernameSimplr",
    "token", "access_token", "refresh_token", "Authorization", "client_secret", "code", "password", "Passwort",
    "X-Webhook-Token", "x-upload-token", "X-ADMIN-TOKEN", "Cookie", "--refresh-token",
])
def test_personal_and_secret_keys_are_denied(key):
    assert denied(key)


@pytest.mark.parametrize("key", [
    "id", "ids", "record_id", "event_id", "delta_id", "message_id", "module", "queue", "routing_key", "attempt",
    "error_kind", "reason", "status", "operation", "Kundennummer", "Vertragsnummer", "Sparte", "Gesellschaft",
    "url", "method", "Content-Type", "User-Agent", "field", "level", "category",
])
def test_ids_and_facts_are_kept(key):
    assert not denied(key)


@pytest.mark.parametrize("text, expected", [
    (f"cannot publish for {ADDRESS}", f"cannot publish for {EMAIL}"),
    ("mailto Max.Mustermann+crm@example.co.uk now", f"mailto {EMAIL} now"),
    ("Email=max%40example.com&id=7", f"Email={FILTERED}&id=7"),
    ("cut short: max@exam", f"cut short: {EMAIL}"),
    ("id=7&token=wf-secret&code=1000.abc&x=1", f"id=7&token={FILTERED}&code={FILTERED}&x=1"),
    ("Authorization: Bearer eyJhbGciOi.J9.x", f"Authorization: {FILTERED} {FILTERED}"),
    ("sent Bearer eyJhbGciOi.J9.x to zoho", f"sent Bearer {FILTERED} to zoho"),
    ("header Zoho-oauthtoken 1000.4f2a.99b1", f"header Zoho-oauthtoken {FILTERED}"),
    ("Basic ZGV2LWFtZWlzZTpzZWNyZXQ=", f"Basic {FILTERED}"),
    ("{'First_Name': 'Maximiliane', 'id': '7'}", f"{{'First_Name': {FILTERED}, 'id': '7'}}"),
    ('{"Geburtsdatum": "1983-04-05", "Kundennummer": "K-100"}',
     f'{{"Geburtsdatum": {FILTERED}, "Kundennummer": "K-100"}}'),
    ('headers={"X-Webhook-Token":"wf-secret"}', f'headers={{"X-Webhook-Token":{FILTERED}}}'),
    ("https://accounts.zoho.eu/oauth/v2/token?refresh_token=1000.r&grant_type=refresh_token",
     f"https://accounts.zoho.eu/oauth/v2/token?refresh_token={FILTERED}&grant_type=refresh_token"),
    ("zoho 400 INVALID_DATA field=Email: invalid data", "zoho 400 INVALID_DATA field=Email: invalid data"),
    ("queued event e-1 module=Contacts record_id=7", "queued event e-1 module=Contacts record_id=7"),
])
def test_strings_are_scrubbed_wherever_they_are(text, expected):
    assert scrub({"message": text})["message"] == expected


def test_event_is_scrubbed_at_every_depth():
    event = {
        "level": "error",
        "server_name": "web-1",
        "sdk": {"name": "sentry.python.flask", "packages": [{"name": "pypi:sentry-sdk"}]},
        "request": {
            "url": "http://localhost/webhooks/zoho/Contacts",
            "query_string": f"id={RECORD_ID}&token=wf-secret&Last_Name=Mustermann",
            "headers": {"X-Webhook-Token": "wf-secret", "X-Upload-Token": "up", "X-Admin-Token": "adm",
                        "Authorization": "Bearer abc.def", "Content-Type": "application/json"},
            "data": {"id": RECORD_ID, "data": [{"First_Name": "Maximiliane", "Owner": {"name": "Anna Admin",
                                                                                       "email": "anna@example.com",
                                                                                       "id": "99"},
                                                "Mailing_Street": "Lindenallee 17", "Billing_Code": "50667",
                                                "Stage": "Abgeschlossen"}]},
        },
        "extra": {"record": {"Vorname": "Maximiliane", "Geburtsdatum": "1983-04-05", "Kundennummer": "K-100"},
                  "note": f"write to {ADDRESS}"},
        "contexts": {
            "runtime": {"name": "CPython", "version": "3.11"},
            "failed_message": {"record_id": RECORD_ID, "reason": f"Email: {ADDRESS} is not valid"},
            "oauth": {"tokens": {"access_token": "1000.a", "refresh_token": "1000.r", "expires_in": 3600}},
        },
        "exception": {"values": [{"type": "RuntimeError", "value": f"no for {ADDRESS}", "stacktrace": {"frames": [
            {"filename": "webhooks/routes.py", "function": "_publish", "lineno": 205,
             "vars": {"body": {"id": RECORD_ID, "Telefon": "+49 170 5550123"}, "client_secret": "s3cret"}},
        ]}}]},
        "breadcrumbs": {"values": [
            {"category": "zoho call", "message": "GET Contacts", "data": {"record_id": RECORD_ID, "Phone": "0221"}},
        ]},
        "logentry": {"message": "publishing %s", "params": [f"{{'Email': '{ADDRESS}'}}"]},
    }

    scrubbed = scrub(event)

    assert scrubbed["server_name"] == "web-1" and scrubbed["sdk"] == event["sdk"]
    request = scrubbed["request"]
    assert request["query_string"] == f"id={RECORD_ID}&token={FILTERED}&Last_Name={FILTERED}"
    assert request["headers"] == {"X-Webhook-Token": FILTERED, "X-Upload-Token": FILTERED, "X-Admin-Token": FILTERED,
                                  "Authorization": FILTERED, "Content-Type": "application/json"}
    assert request["data"] == {"id": RECORD_ID, "data": [{"First_Name": FILTERED,
                                                          "Owner": {"name": FILTERED, "email": FILTERED, "id": "99"},
                                                          "Mailing_Street": FILTERED, "Billing_Code": FILTERED,
                                                          "Stage": "Abgeschlossen"}]}
    assert scrubbed["extra"] == {"record": {"Vorname": FILTERED, "Geburtsdatum": FILTERED, "Kundennummer": "K-100"},
                                 "note": f"write to {EMAIL}"}
    assert scrubbed["contexts"] == {
        "runtime": {"name": "CPython", "version": "3.11"},
        "failed_message": {"record_id": RECORD_ID, "reason": f"Email: {FILTERED} is not valid"},
        "oauth": {"tokens": FILTERED},
    }
    [exception] = scrubbed["exception"]["values"]
    assert exception["value"] == f"no for {EMAIL}"
    [frame] = exception["stacktrace"]["frames"]
    assert frame["vars"] == {"body": {"id": RECORD_ID, "Telefon": FILTERED}, "client_secret": FILTERED}
    assert frame["filename"] == "webhooks/routes.py" and frame["lineno"] == 205
    assert scrubbed["breadcrumbs"]["values"][0]["data"] == {"record_id": RECORD_ID, "Phone": FILTERED}
    assert scrubbed["logentry"]["params"] == [f"{{'Email': {FILTERED}}}"]
    assert scrubbed["level"] == "error"


def test_breadcrumb_is_scrubbed_including_objects_sentry_would_repr():
    class Record:
        def __repr__(self) -> str:
            return f"Record(id=7, Email={ADDRESS})"

    crumb = {"category": "message received", "message": f"from {ADDRESS}", "level": "info",
             "data": {"record_id": RECORD_ID, "record": Record(), "payload": b"token=abc&id=7",
                      "nested": [{"X-Webhook-Token": "wf"}, ("Ort", {"City": "Köln"})]}}

    scrubbed = scrub(crumb, {})

    assert scrubbed == {"category": "message received", "message": f"from {EMAIL}", "level": "info",
                        "data": {"record_id": RECORD_ID, "record": f"Record(id=7, Email={FILTERED})",
                                 "payload": f"token={FILTERED}&id=7",
                                 "nested": [{"X-Webhook-Token": FILTERED}, ["Ort", {"City": FILTERED}]]}}
    assert crumb["data"]["nested"][0] == {"X-Webhook-Token": "wf"}  # the original is left alone


def test_without_a_dsn_nothing_starts_and_every_function_is_a_no_op():
    settings = Settings.from_env({})

    assert init_sentry(settings, "worker:crm-to-ameise") is False
    assert not sentry_sdk.get_client().is_active()
    with message_scope():
        breadcrumb("message received", "CrmRecordChanged", record_id=RECORD_ID)
        report_failed_message(RuntimeError("boom"), queue="syncbridge.crm-to-ameise",
                              routing_key="crm.contacts.changed", record_id=RECORD_ID, attempt=1, kind="error",
                              reason="RuntimeError: boom")
        report_failed_message(None, queue="q", routing_key="k", record_id=None, attempt=1, kind="rejected", reason="x")
    assert not sentry_sdk.get_client().is_active()


def test_sentry_is_started_without_personal_data_options():
    # Port 9 (discard): nothing is captured here, so nothing is sent.
    settings = Settings.from_env({}, sentry_dsn="http://public@127.0.0.1:9/1", release="syncbridge@1.2.3",
                                 env="development")

    assert init_sentry(settings, "worker:dailyup") is True

    client = sentry_sdk.get_client()
    options = client.options
    assert client.should_send_default_pii() is False
    assert options["include_local_variables"] is False
    assert options["max_request_body_size"] == "never"
    assert (options["release"], options["environment"]) == ("syncbridge@1.2.3", "development")
