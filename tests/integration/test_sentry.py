"""Sentry against a local stand-in for the Sentry server: what arrives, and what never does."""
from __future__ import annotations

import gzip
import io
import json
import logging
import re
import threading
from datetime import UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest
import sentry_sdk

from producers.topology import build_topology
from syncbridge.adapters.zoho import ZohoRejected
from syncbridge.config import Settings
from syncbridge.monitoring import breadcrumb, init_sentry, message_scope, report_failed_message
from webhooks import create_app

RECORD_ID = "4150868000000376008"
WEBHOOK_TOKEN = "wf-secret-4711"
RELEASE = "syncbridge@2026.11.23"
QUEUE = "syncbridge.crm-to-ameise"
ROUTING_KEY = "crm.contacts.changed"
# Personal data and secrets: not one of them may reach the Sentry server, in any spelling.
ADDRESS = "maximiliane.mustermann@example.com"
FIRST_NAME = "Maximiliane"
LAST_NAME = "Mustermann-Quast"
BIRTH_DATE = "1983-04-05"
STREET = "Lindenallee 17"
PHONE = "+49 170 5550123"
BEARER = "eyJhbGciOiJIUzI1NiJ9.sb-bearer-77"
ZOHO_ACCESS_TOKEN = "1000.f00dcafe.b16b00b5"
ADMIN_TOKEN = "adm-secret-0815"
COOKIE_VALUE = "pref-cookie-4711"
CLIENT_IP = "203.0.113.58"
SECRETS = (ADDRESS, FIRST_NAME, LAST_NAME, BIRTH_DATE, STREET, PHONE, BEARER, ZOHO_ACCESS_TOKEN, ADMIN_TOKEN,
           WEBHOOK_TOKEN, COOKIE_VALUE, CLIENT_IP)


class SentryStandIn:
    """An HTTP server on 127.0.0.1 that accepts Sentry envelopes (gzip or plain) and keeps them."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict, bytes]] = []
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with stand_in._lock:
                    stand_in.requests.append((self.path, dict(self.headers), body))
                known = re.fullmatch(r"/api/\d+/envelope/", self.path) is not None
                self.send_response(200 if known else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format, *args):  # noqa: A002 - http.server's signature
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.server.server_address[1]}/1"

    def raw(self) -> bytes:
        """Every envelope received, decompressed, as one byte string."""
        with self._lock:
            return b"\n".join(body for _, _, body in self.requests)

    def items(self, kind: str) -> list[dict]:
        """The payloads of every envelope item of ``kind`` ("event", "sessions", ...)."""
        with self._lock:
            bodies = [body for _, _, body in self.requests]
        return [payload for body in bodies for header, payload in parse_envelope(body) if header["type"] == kind]

    def events(self) -> list[dict]:
        return self.items("event")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def parse_envelope(body: bytes) -> list[tuple[dict, dict]]:
    """The items of one envelope (https://develop.sentry.dev/sdk/envelopes/): header line, then header + payload."""
    stream = io.BytesIO(body)
    json.loads(stream.readline())  # the envelope header
    items = []
    while line := stream.readline():
        if not line.strip():
            continue
        header = json.loads(line)
        if "length" in header:
            payload = stream.read(header["length"])
            stream.readline()
        else:
            payload = stream.readline()
        items.append((header, json.loads(payload)))
    return items


@pytest.fixture
def sentry_server():
    server = SentryStandIn()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def no_sentry_client_left():
    """Flush and remove the client after each test: the next test starts from an uninitialised SDK."""
    yield
    sentry_sdk.flush(timeout=5)
    sentry_sdk.get_client().close(timeout=5)
    sentry_sdk.get_global_scope().set_client(None)
    sentry_sdk.get_isolation_scope().clear()
    sentry_sdk.get_current_scope().clear()


def settings_for(dsn: str = "") -> Settings:
    return Settings.from_env({}, sentry_dsn=dsn, release=RELEASE, namespace="sentrytest",
                             zoho_webhook_token=WEBHOOK_TOKEN, zoho_modules="Contacts=person")


def assert_nothing_personal(raw: bytes) -> None:
    text = raw.decode("utf-8")
    for secret in SECRETS:
        for spelling in {secret, quote(secret), quote(secret, safe=""), json.dumps(secret)[1:-1]}:
            assert spelling not in text, f"{secret!r} reached the Sentry server"


def broker_error() -> str:
    """What the broker library says when it fails: with an address in it."""
    return f"cannot deliver for {ADDRESS}"


class BrokenPublisher:
    """A publisher with a bug: publishing fails with something that is not a broker outage."""

    def __init__(self, topology):
        self.topology = topology

    def publish(self, *args, **kwargs):
        raise RuntimeError(broker_error())

    def ping(self):
        pass

    def close(self):
        pass


def post_personal_webhook(app):
    """A workflow webhook carrying the secret twice, other tokens, and personal fields in query and body."""
    query = f"token={WEBHOOK_TOKEN}&Email={quote(ADDRESS)}&Last_Name={quote(LAST_NAME)}"
    body = {"id": RECORD_ID, "First_Name": FIRST_NAME, "Last_Name": LAST_NAME, "Email": ADDRESS,
            "Date_of_Birth": BIRTH_DATE, "Mailing_Street": STREET, "Phone": PHONE}
    headers = {"X-Webhook-Token": WEBHOOK_TOKEN, "Authorization": f"Bearer {BEARER}", "X-Admin-Token": ADMIN_TOKEN,
               "Cookie": f"broker_pref={COOKIE_VALUE}"}
    return app.test_client().post(f"/webhooks/zoho/Contacts?{query}", json=body, headers=headers,
                                  environ_base={"REMOTE_ADDR": CLIENT_IP})


# ------------------------------------------------------------------ the receiver
def test_error_in_a_route_arrives_once_with_release_and_without_personal_data(sentry_server):
    app = create_app(settings_for(sentry_server.dsn), publisher=BrokenPublisher(build_topology("sentrytest")),
                     checks={})

    response = post_personal_webhook(app)
    sentry_sdk.flush(timeout=5)

    assert response.status_code == 500
    assert response.get_json() == {"error": "internal_error",
                                   "message": "The request could not be processed; the error was logged."}
    [event] = sentry_server.events()
    assert (event["release"], event["environment"]) == (RELEASE, "development")
    assert event["tags"]["component"] == "web"
    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert exception["value"] == "cannot deliver for [email]"
    request = event["request"]
    assert request["url"] == "http://localhost/webhooks/zoho/Contacts"
    assert request["query_string"] == "token=[Filtered]&Email=[Filtered]&Last_Name=[Filtered]"
    assert request["headers"]["X-Webhook-Token"] == "[Filtered]"
    assert request["headers"]["X-Admin-Token"] == "[Filtered]"
    assert not request.get("data")  # bodies are never sent
    assert not request.get("cookies") and "Cookie" not in request["headers"]
    assert "ip_address" not in event.get("user", {}) and CLIENT_IP not in json.dumps(event)
    assert all(frame.get("vars") is None for frame in exception["stacktrace"]["frames"])
    path, headers, _ = sentry_server.requests[0]
    assert path == "/api/1/envelope/" and "sentry_key=public" in headers["X-Sentry-Auth"]
    assert_nothing_personal(sentry_server.raw())


# ------------------------------------------------------------------ the workers
def test_failed_message_arrives_tagged_with_breadcrumbs_and_scrubbed(sentry_server, caplog):
    caplog.set_level(logging.INFO)
    assert init_sentry(settings_for(sentry_server.dsn), "worker:crm-to-ameise") is True

    with message_scope():
        breadcrumb("message received", "CrmRecordChanged", record_id=RECORD_ID, module="Contacts", Email=ADDRESS)
        logging.getLogger("syncbridge.adapters.zoho").info(
            "GET https://www.zohoapis.eu/crm/v7/Contacts/%s?access_token=%s", RECORD_ID, ZOHO_ACCESS_TOKEN)
        breadcrumb("zoho call", "upsert Contacts", record={"First_Name": FIRST_NAME, "Geburtsdatum": BIRTH_DATE,
                                                         "Kundennummer": "K-100"},
                   headers={"Authorization": f"Zoho-oauthtoken {ZOHO_ACCESS_TOKEN}"})
        exc = ZohoRejected(f"Email: {ADDRESS} is not valid", status=400, code="INVALID_DATA", field="Email")
        try:
            raise exc
        except ZohoRejected:
            # The consumer's own error line: part of this failure, not an event of its own.
            logging.getLogger("consumers.crm_to_ameise").exception("Contacts/%s rejected", RECORD_ID)
        report_failed_message(exc, queue=QUEUE, routing_key=ROUTING_KEY, record_id=RECORD_ID, attempt=3,
                              kind="rejected", reason=exc.describe(), message_id="evt-1")
    sentry_sdk.flush(timeout=5)

    [event] = sentry_server.events()
    assert event["tags"] == {"component": "worker:crm-to-ameise", "queue": QUEUE, "routing_key": ROUTING_KEY,
                             "record_id": RECORD_ID, "attempt": "3", "error_kind": "rejected"}
    assert event["fingerprint"] == ["failed-message", QUEUE, "rejected", "ZohoRejected", "INVALID_DATA", "Email"]
    assert (event["release"], event["environment"], event["level"]) == (RELEASE, "development", "error")
    [exception] = event["exception"]["values"]
    assert (exception["type"], exception["value"]) == ("ZohoRejected", "Email: [Filtered] is not valid")
    assert event["contexts"]["failed_message"] == {
        "queue": QUEUE, "routing_key": ROUTING_KEY, "record_id": RECORD_ID, "attempt": 3, "error_kind": "rejected",
        "reason": "zoho 400 INVALID_DATA field=Email: Email: [Filtered] is not valid", "message_id": "evt-1"}
    crumbs = {crumb["category"]: crumb for crumb in event["breadcrumbs"]["values"]}
    assert crumbs["message received"]["data"] == {"record_id": RECORD_ID, "module": "Contacts", "Email": "[Filtered]"}
    assert crumbs["zoho call"]["data"] == {"record": {"First_Name": "[Filtered]", "Geburtsdatum": "[Filtered]",
                                                      "Kundennummer": "K-100"},
                                           "headers": {"Authorization": "[Filtered]"}}
    assert crumbs["syncbridge.adapters.zoho"]["message"] == (
        f"GET https://www.zohoapis.eu/crm/v7/Contacts/{RECORD_ID}?access_token=[Filtered]")
    assert_nothing_personal(sentry_server.raw())


def test_same_cause_groups_together_and_each_message_keeps_its_own_breadcrumbs(sentry_server):
    init_sentry(settings_for(sentry_server.dsn), "worker:ameise-to-crm")

    def fail(record_id: str, code: str, reason: str | None = None) -> None:
        with message_scope():
            breadcrumb("message received", "AmeiseRecordChanged", record_id=record_id)
            exc = None if reason else ZohoRejected("refused", status=400, code=code, field="Last_Name")
            report_failed_message(exc, queue="syncbridge.ameise-to-crm", routing_key="ameise.customer.changed",
                                  record_id=record_id, attempt=1, kind="rejected",
                                  reason=reason or exc.describe())

    fail("K-100", "INVALID_DATA")
    fail("K-200", "INVALID_DATA")
    fail("K-300", "MANDATORY_NOT_FOUND")
    fail("K-400", "", reason="zoho record 'K-400' refused: 3 fields too long")
    fail("K-500", "", reason="zoho record 'K-500' refused: 12 fields too long")
    sentry_sdk.flush(timeout=5)

    events = {event["tags"]["record_id"]: event for event in sentry_server.events()}
    assert sorted(events) == ["K-100", "K-200", "K-300", "K-400", "K-500"]
    assert events["K-100"]["fingerprint"] == events["K-200"]["fingerprint"]
    assert events["K-100"]["fingerprint"] != events["K-300"]["fingerprint"]
    assert events["K-400"]["fingerprint"] == events["K-500"]["fingerprint"]
    assert events["K-400"]["message"] == "rejected message on syncbridge.ameise-to-crm: " \
                                         "zoho record 'K-400' refused: 3 fields too long"
    for record_id, event in events.items():
        crumbs = [c for c in event["breadcrumbs"]["values"] if c.get("category") == "message received"]
        assert [c["data"]["record_id"] for c in crumbs] == [record_id]


# ------------------------------------------------------------------ without a DSN
def test_without_a_dsn_nothing_is_sent_and_nothing_breaks(sentry_server, monkeypatch):
    # Even Sentry's own environment variable must not switch reporting on behind the settings' back.
    monkeypatch.setenv("SENTRY_DSN", sentry_server.dsn)
    settings = settings_for("")
    app = create_app(settings, publisher=BrokenPublisher(build_topology("sentrytest")), checks={})

    response = post_personal_webhook(app)
    assert init_sentry(settings, "worker:crm-to-ameise") is False
    with message_scope():
        breadcrumb("message received", "CrmRecordChanged", record_id=RECORD_ID)
        report_failed_message(RuntimeError(broker_error()), queue=QUEUE, routing_key=ROUTING_KEY,
                              record_id=RECORD_ID, attempt=1, kind="error", reason="RuntimeError")
    sentry_sdk.flush(timeout=2)

    assert response.status_code == 500 and response.get_json()["error"] == "internal_error"
    assert not sentry_sdk.get_client().is_active()
    assert sentry_server.requests == []


def test_a_message_the_consumer_dead_letters_is_one_tagged_event(sentry_server):
    import uuid
    from datetime import datetime

    from kombu import Connection

    from consumers.crm_to_ameise import CrmToAmeiseConsumer
    from contracts.events import CrmRecordChangedSchema
    from producers.memory import MemoryPublisher
    from simulators.fakes.store import MemoryStore
    from syncbridge.messages import CrmRecordChanged

    assert init_sentry(settings_for(sentry_server.dsn), "worker:crm-to-ameise") is True
    topology = build_topology(f"sentry-{uuid.uuid4().hex[:8]}")
    publisher = MemoryPublisher(topology)
    body = CrmRecordChangedSchema().dump(CrmRecordChanged(
        event_id="evt-7", source="zoho-workflow", module="Contacts", record_id=RECORD_ID,
        received_at=datetime.now(UTC)))
    publisher.publish(topology.events, ROUTING_KEY, body, message_id="evt-7")

    def handle(command):
        raise ZohoRejected(f"Email: {ADDRESS} is not valid", status=400, code="INVALID_DATA", field="Email")

    consumer = CrmToAmeiseConsumer(Connection("memory://localhost/"), topology, handle, publisher, MemoryStore())
    with consumer.Consumer() as (connection, _, _):
        connection.drain_events(timeout=2)
    publisher.close()
    sentry_sdk.flush(timeout=5)

    [event] = sentry_server.events()
    assert event["tags"]["queue"] == topology.crm_to_ameise.name and event["tags"]["record_id"] == RECORD_ID
    assert (event["tags"]["routing_key"], event["tags"]["attempt"], event["tags"]["error_kind"]) == (
        ROUTING_KEY, "1", "rejected")
    assert "message received" in {crumb["category"] for crumb in event["breadcrumbs"]["values"]}
    assert_nothing_personal(sentry_server.raw())


def test_a_lost_connection_is_reported_once_until_it_works_again(sentry_server):
    from syncbridge.monitoring import connection_works, report_reconnect_needed

    assert init_sentry(settings_for(sentry_server.dsn), "worker:crm-to-ameise") is True
    detail = f"ameise 400 invalid_grant: refresh failed for {ADDRESS}"

    for _ in range(3):                      # every waiting message meets it: one event
        report_reconnect_needed("ameise", detail)
    connection_works("ameise")
    report_reconnect_needed("ameise", detail)   # lost again later: reported again
    sentry_sdk.flush(timeout=5)

    events = sentry_server.events()
    assert len(events) == 2
    assert events[0]["tags"]["connection"] == "ameise" and events[0]["fingerprint"] == ["reconnect-needed", "ameise"]
    assert "needs a reconnect" in events[0]["message"] or "needs a reconnect" in str(events[0].get("logentry"))
    assert_nothing_personal(sentry_server.raw())
    connection_works("ameise")
