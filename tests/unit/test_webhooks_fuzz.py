"""Fuzzing the receiver's webhook and upload endpoints (Flask test client, in-memory broker).

Whatever a request holds: no 5xx, every error is a JSON object with ``error`` and
``message``, each answer comes in bounded time, and only an accepted request (202)
queued anything: exactly one message per accepted event.
"""
from __future__ import annotations

import json
import time
import zipfile
from io import BytesIO

import pytest
from hypothesis import HealthCheck, given, settings

from syncbridge.adapters.db import migrate
from syncbridge.bootstrap import web_app
from syncbridge.dailyup.intake import DropFolder
from tests.support.fuzz_strategies import upload_requests, webhook_requests
from tests.support.fuzzing import examples, outcome
from tests.support.webhooks import FLOW_TOKEN, FORMS_TOKEN, NOTIFY_TOKEN, WEBHOOK_TOKEN, make_settings, queued
from webhooks import create_app

FUZZ = settings(max_examples=examples(150), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MAX_SECONDS = 2.0


def check_answer(response, method: str) -> dict | None:
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400 and method != "HEAD":
        assert response.mimetype == "application/json", response.get_data(as_text=True)
        body = json.loads(response.get_data())
        assert isinstance(body, dict) and isinstance(body["error"], str) and isinstance(body["message"], str)
        assert "Traceback" not in body["message"]
    if response.status_code == 202:
        return response.get_json()
    return None


def _fuzz_webhooks(client, topology, request):
    started = time.monotonic()
    response = client.open(**request)
    assert time.monotonic() - started < MAX_SECONDS
    accepted = check_answer(response, request["method"])
    outcome(str(response.status_code))
    events = queued(topology)
    if accepted is None:
        assert events == []
    else:
        ids = accepted.get("event_ids") or [accepted["event_id"]]
        assert [event.event_id for event, _ in events] == ids
        for _, message in events:
            message.body.decode("utf-8")  # valid UTF-8, whatever was sent


@FUZZ
@given(request=webhook_requests())
def test_fuzzed_webhooks_without_a_token(namespace, publisher, topology, request):
    client = create_app(make_settings(namespace), publisher=publisher, checks={}).test_client()
    _fuzz_webhooks(client, topology, request)


@FUZZ
@given(request=webhook_requests(token=WEBHOOK_TOKEN, paths=("/webhooks/zoho/Contacts", "/webhooks/zoho/Deals")))
def test_fuzzed_workflow_webhooks_with_the_token(namespace, publisher, topology, request):
    client = create_app(make_settings(namespace), publisher=publisher, checks={}).test_client()
    _fuzz_webhooks(client, topology, request)


@FUZZ
@given(request=webhook_requests(token=NOTIFY_TOKEN, paths=("/webhooks/zoho/notify",)))
def test_fuzzed_notifications_with_the_token(namespace, publisher, topology, request):
    client = create_app(make_settings(namespace), publisher=publisher, checks={}).test_client()
    _fuzz_webhooks(client, topology, request)


@FUZZ
@given(request=webhook_requests(token=FORMS_TOKEN, paths=("/webhooks/forms/zoho-forms", "/webhooks/forms/zoho-flow",
                                                          "/webhooks/forms/typeform")))
def test_fuzzed_forms_with_a_token(namespace, publisher, topology, request):
    client = create_app(make_settings(namespace), publisher=publisher, checks={}).test_client()
    _fuzz_webhooks(client, topology, request)
    assert FLOW_TOKEN != FORMS_TOKEN  # a forms token never opens the flow source


def _zip() -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("kunden.csv", "Kundennummer;Name\n1;A\n")
    return buffer.getvalue()


ZIP = _zip()


@pytest.fixture(scope="module")
def upload_database(tmp_path_factory) -> str:
    """A migrated SQLite file shared by the examples: an upload only needs the database to be there."""
    url = f"sqlite:///{tmp_path_factory.mktemp('uploads')}/syncbridge.db"
    migrate.upgrade(url)
    return url


@FUZZ
@given(request=upload_requests(token="dev-dailyup-upload-token", zip_bytes=ZIP))
def test_fuzzed_uploads(namespace, publisher, tmp_path_factory, upload_database, request):
    folder = tmp_path_factory.mktemp("dailyup")
    app = web_app(make_settings(namespace, dailyup_dir=str(folder), dailyup_max_upload_bytes="4096",
                                database_url=upload_database), publisher=publisher, checks={})
    started = time.monotonic()
    response = app.test_client().open(**request)
    assert time.monotonic() - started < MAX_SECONDS
    accepted = check_answer(response, "POST")
    outcome(str(response.status_code))
    inbox = sorted(p.name for p in DropFolder.at(folder).inbox.iterdir()) if (folder / "inbox").exists() else []
    if accepted is None:
        assert inbox == []
    else:
        assert inbox == [accepted["file"]]
