"""The usual workflow webhook answered without Flask's dispatch (``webhooks.direct``): the same answers as Flask's."""
from __future__ import annotations

import io
import json
import logging
import time
from urllib.parse import quote_plus

import pytest
from flask import request_started
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder

from producers.publisher import Publisher
from tests.support.fuzzing import examples, outcome
from tests.support.webhooks import WEBHOOK_TOKEN, make_settings, queued
from webhooks import create_app
from webhooks.receiver import EXTENSION

RECORD_ID = "4150868000000376008"
UNREACHABLE = "amqp://guest:guest@127.0.0.1:1//"
BODY = {"id": RECORD_ID, "operation": "update", "modified_time": "2026-01-05T10:00:00+01:00"}
# The same body under a content type the direct path leaves to Flask.
THROUGH_FLASK = "application/json; charset=utf-8"
FUZZ = settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def app(namespace, publisher):
    return create_app(make_settings(namespace), publisher=publisher, checks={})


@pytest.fixture
def dispatched(app):
    """The requests Flask dispatched (its request_started signal), as a list that grows."""
    seen: list[str] = []

    def started(sender, **extra):
        from flask import request

        seen.append(request.path)

    with request_started.connected_to(started, app):
        yield seen


def post(app, body=BODY, *, content_type="application/json", token=WEBHOOK_TOKEN, path="/webhooks/zoho/Contacts"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return app.test_client().post(path, data=data, content_type=content_type, headers={"X-Webhook-Token": token})


def test_the_usual_webhook_is_answered_without_flask_as_flask_answers_it(app, topology, dispatched):
    direct = post(app)
    assert dispatched == []
    flask = post(app, content_type=THROUGH_FLASK)
    assert dispatched == ["/webhooks/zoho/Contacts"]

    for response in (direct, flask):
        assert response.status == "202 ACCEPTED"
        assert response.get_json()["status"] == "queued"
    assert sorted(direct.headers.items()) == sorted(flask.headers.items())
    assert len(direct.get_data()) == len(flask.get_data())
    events = [event for event, _ in queued(topology)]
    assert [event.event_id for event in events] == [direct.get_json()["event_id"], flask.get_json()["event_id"]]
    assert {(e.source, e.module, e.record_id, e.operation, e.modified_time) for e in events} == {
        ("zoho-workflow", "Contacts", RECORD_ID, "update", "2026-01-05T10:00:00+01:00")}


@pytest.mark.parametrize("path", ["/webhooks/zoho/contacts", "/webhooks/zoho/CONTACTS"])
def test_the_module_in_any_case_is_queued_under_its_configured_name(app, topology, dispatched, path):
    assert post(app, path=path).status_code == 202
    assert dispatched == []
    [(event, _)] = queued(topology)
    assert event.module == "Contacts"


@pytest.mark.parametrize("body, token, path, status", [
    ({"id": int(RECORD_ID)}, WEBHOOK_TOKEN, "/webhooks/zoho/Contacts", 400),      # the contract refuses it
    ({"id": RECORD_ID, "module": "Deals"}, WEBHOOK_TOKEN, "/webhooks/zoho/Contacts", 400),
    ({"id": RECORD_ID}, WEBHOOK_TOKEN, "/webhooks/zoho/Leads", 400),              # not synced
    ('{"id": "41', WEBHOOK_TOKEN, "/webhooks/zoho/Contacts", 400),                # not JSON
    ([RECORD_ID], WEBHOOK_TOKEN, "/webhooks/zoho/Contacts", 400),                 # not an object
    ({"id": RECORD_ID}, "wrong", "/webhooks/zoho/Contacts", 401),
    ({"id": RECORD_ID, "token": WEBHOOK_TOKEN}, "wrong", "/webhooks/zoho/Contacts", 202),   # the body's token
    ({"id": RECORD_ID}, WEBHOOK_TOKEN, "/webhooks/zoho/Contacts/", 404),
    ({"id": RECORD_ID}, WEBHOOK_TOKEN, "/webhooks/zoho/notify", 401),             # the Notification API's route
])
def test_anything_not_plainly_fine_is_answered_by_flask(app, topology, dispatched, body, token, path, status):
    response = post(app, body, token=token, path=path)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert dispatched == [path]
    assert len(queued(topology)) == (1 if status == 202 else 0)


def test_a_body_that_cannot_be_read_is_answered_by_flask_with_the_same_error(app, topology, dispatched):
    answers = []
    for content_type in ("application/json", THROUGH_FLASK):
        environ = EnvironBuilder(path="/webhooks/zoho/Contacts", method="POST", data=b'{"id": "1"}',
                                 content_type=content_type, headers={"X-Webhook-Token": WEBHOOK_TOKEN}).get_environ()
        environ["CONTENT_LENGTH"] = "400"   # the sender closed its side after 11 bytes
        environ["wsgi.input"] = io.BytesIO(b'{"id": "1"}')
        status = []
        body = b"".join(app(environ, lambda line, headers, exc_info=None: status.append(line)))
        answers.append((status[0], json.loads(body)))
    assert answers[0] == answers[1]
    assert answers[0][0].startswith("400 ") and answers[0][1]["error"] == "incomplete_body"
    assert len(dispatched) == 2
    assert queued(topology) == []


@pytest.mark.parametrize("length", ["²", "1e3", "-5", " 30"])
def test_a_content_length_that_is_no_number_of_digits_is_left_to_flask(app, topology, dispatched, length):
    data = json.dumps(BODY).encode()
    environ = EnvironBuilder(path="/webhooks/zoho/Contacts", method="POST", data=data, content_type="application/json",
                             headers={"X-Webhook-Token": WEBHOOK_TOKEN}).get_environ()
    environ["CONTENT_LENGTH"] = length
    status = []
    b"".join(app(environ, lambda line, headers, exc_info=None: status.append(line)))
    assert dispatched == ["/webhooks/zoho/Contacts"]
    assert not status[0].startswith("5")


class ExplodingPublisher:
    """A publisher with a bug: it fails with something that is not a broker outage."""

    def __init__(self, topology):
        self.topology = topology
        self.calls = 0

    def publish(self, *args, **kwargs):
        self.calls += 1
        raise RuntimeError("internal detail that must stay in the logs")

    def ping(self):
        pass

    def close(self):
        pass


def test_an_unexpected_error_is_the_routes_500_and_nothing_is_published_twice(namespace, topology, caplog):
    publisher = ExplodingPublisher(topology)
    app = create_app(make_settings(namespace), publisher=publisher, checks={})
    with caplog.at_level(logging.ERROR):
        response = post(app)
    assert response.status_code == 500
    assert response.get_json() == {"error": "internal_error",
                                   "message": "The request could not be processed; the error was logged."}
    assert publisher.calls == 1
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.getMessage() == "unhandled error while answering a request"
    assert "internal detail" in caplog.text and "internal detail" not in response.get_data(as_text=True)


def test_broker_down_is_503_at_once_as_from_flask(namespace, topology):
    down = Publisher(UNREACHABLE, topology, connect_timeout=1)
    app = create_app(make_settings(namespace), publisher=down, checks={})
    started = time.monotonic()
    direct = post(app)
    assert time.monotonic() - started < 2
    flask = post(app, content_type=THROUGH_FLASK)
    for response in (direct, flask):
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
    assert direct.get_json() == flask.get_json() == {
        "error": "unavailable", "message": "The event could not be queued; try again later."}
    assert sorted(direct.headers.items()) == sorted(flask.headers.items())


def test_in_debug_mode_flask_answers(app, dispatched):
    app.debug = True
    assert post(app).status_code == 202
    assert dispatched == ["/webhooks/zoho/Contacts"]


@pytest.mark.parametrize("body", [
    b'{"id": "1", "operation": "\\ud800"}',                       # an escaped lone surrogate
    b'{"id": "1", "operation": "\xed\xa0\x80"}',                   # a surrogate's UTF-8 bytes
    '{"id": "1", "operation": "\\ud800"}'.encode("utf-16"),        # escaped, in UTF-16
])
def test_a_lone_surrogate_is_400_whatever_its_spelling(app, topology, body):
    response = post(app, body)
    assert response.status_code == 400
    assert response.get_json()["error"] == "malformed_body"
    assert queued(topology) == []


@pytest.mark.parametrize("path", [
    "/webhooks/zoho/Contacts", "/webhooks/zoho/contacts", "/webhooks/zoho/Leads", "/webhooks/zoho/notify",
    "/webhooks/zoho/Notify", "/webhooks/zoho/", "/webhooks/zoho/Contacts/", "/webhooks/zoho/Contacts/1",
    "/webhooks/zoho//Contacts", "/webhooks/zoho", "/webhooks/dailyup", "/webhooks/zoho/Kontakte",
    "/webhooks/zoho/Contäcts", "/api/webhooks/zoho/Contacts",
])
def test_the_direct_path_takes_only_what_flask_routes_to_the_workflow_webhook(app, path):
    from webhooks.direct import DirectWorkflow

    direct = DirectWorkflow(app, app.wsgi_app, app.extensions[EXTENSION])
    environ = EnvironBuilder(path=path, method="POST", data=json.dumps(BODY), content_type="application/json",
                             headers={"X-Webhook-Token": WEBHOOK_TOKEN}).get_environ()
    synced = direct._synced_module(environ)
    try:
        endpoint, values = app.url_map.bind("localhost").match(path, method="POST")
    except Exception:  # noqa: BLE001 - not found, redirect or method not allowed: not the workflow route
        endpoint, values = None, {}
    if synced is not None:
        assert endpoint == "webhooks.zoho_workflow" and values["module"] == path.rsplit("/", 1)[1]
    else:
        assert endpoint != "webhooks.zoho_workflow" or app.extensions[EXTENSION].module_named(values["module"]) is None


# ---------------------------------------------------------------- the form style (Zoho's default)
FORM = "application/x-www-form-urlencoded"
FORM_THROUGH_FLASK = "application/x-www-form-urlencoded; charset=UTF-8"
FORM_BODY = f"id={RECORD_ID}&operation=update&modified_time=2026-01-05T10%3A00%3A00%2B01%3A00"


def post_form(app, body, *, content_type=FORM, query="", headers=None):
    path = "/webhooks/zoho/Contacts" + (f"?{query}" if query else "")
    return app.test_client().post(path, data=body, content_type=content_type, headers=headers or {})


@pytest.mark.parametrize("body, query, headers", [
    (f"{FORM_BODY}&token={WEBHOOK_TOKEN}", "", {}),                       # the secret as a custom parameter
    (FORM_BODY, f"token={WEBHOOK_TOKEN}", {}),                            # ... in the URL
    (FORM_BODY, "", {"X-Webhook-Token": WEBHOOK_TOKEN}),                  # ... in the header
    (f"{FORM_BODY}&token=wrong", f"token={WEBHOOK_TOKEN}", {}),           # the body's field over the query's
], ids=["body", "query", "header", "query-and-body"])
def test_the_form_style_webhook_is_answered_without_flask_as_flask_answers_it(app, topology, dispatched, body, query,
                                                                             headers):
    direct = post_form(app, body, query=query, headers=headers)
    assert dispatched == []
    flask = post_form(app, body, query=query, headers=headers, content_type=FORM_THROUGH_FLASK)
    assert dispatched == ["/webhooks/zoho/Contacts"]

    for response in (direct, flask):
        assert response.status == "202 ACCEPTED", response.get_data(as_text=True)
        assert response.get_json()["status"] == "queued"
    assert sorted(direct.headers.items()) == sorted(flask.headers.items())
    events = [event for event, _ in queued(topology)]
    assert [event.event_id for event in events] == [direct.get_json()["event_id"], flask.get_json()["event_id"]]
    assert {(e.source, e.module, e.record_id, e.operation, e.modified_time) for e in events} == {
        ("zoho-workflow", "Contacts", RECORD_ID, "update", "2026-01-05T10:00:00+01:00")}


@pytest.mark.parametrize("body, query, status, direct", [
    (f"id=1&id=2&token={WEBHOOK_TOKEN}", "", 202, True),                  # a name twice: its first value
    (f"token={WEBHOOK_TOKEN}", "id=7", 202, True),                         # the id in the URL
    (f"id=8&token={WEBHOOK_TOKEN}", "id=7", 202, True),                    # the body's over the URL's
    (f'{{"id": "9", "token": "{WEBHOOK_TOKEN}"}}', "", 202, True),         # raw JSON under the form type
    (f"id=1&module=Deals&token={WEBHOOK_TOKEN}", "", 400, False),          # the payload names another module
    (f"id=abc&token={WEBHOOK_TOKEN}", "", 400, False),                     # the contract refuses it
    (f"operation=update&token={WEBHOOK_TOKEN}", "", 400, False),           # no id
    (f'[1, 2]&token={WEBHOOK_TOKEN}', "", 400, False),                     # not an object ...
    ('{"id": "41', f"token={WEBHOOK_TOKEN}", 400, False),                  # ... not JSON
    ("id=1&token=wrong", "", 401, False),
    ("id=1", "", 401, False),
    ("id=1&token=" + WEBHOOK_TOKEN + "&operation=%ED%A0%80", "", 202, True),   # undecodable escapes kept as text
    (b"id=1&token=" + WEBHOOK_TOKEN.encode() + b"&operation=\xff", "", 401, False),   # not UTF-8: no fields read
])
def test_a_form_is_answered_as_flask_answers_it_and_directly_only_when_plainly_fine(app, topology, dispatched, body,
                                                                                   query, status, direct):
    answers = []
    for content_type in (FORM, FORM_THROUGH_FLASK):
        response = post_form(app, body, query=query, content_type=content_type)
        answers.append((response.status_code, {k: v for k, v in response.get_json().items() if k != "event_id"},
                        response.get_json().get("event_id")))
    assert answers[0][:2] == answers[1][:2] and answers[0][0] == status, answers
    assert dispatched == ([] if direct else ["/webhooks/zoho/Contacts"]) + ["/webhooks/zoho/Contacts"]
    events = [event for event, _ in queued(topology)]
    assert [e.event_id for e in events] == ([answers[0][2], answers[1][2]] if status == 202 else [])
    assert len({(e.module, e.record_id, e.operation) for e in events}) == (1 if status == 202 else 0)


_NAMES = st.sampled_from(["id", "token", "module", "operation", "modified_time", "Id", "x", ""])
_VALUES = st.one_of(
    st.sampled_from([RECORD_ID, " 4150868000000376008 ", WEBHOOK_TOKEN, "wrong", "Contacts", "contacts", "Deals",
                     "update", "", "2026-01-05T10:00:00+01:00", "41", "abc"]),
    st.text(alphabet="a%2B+=&;é\x00 4", max_size=6),
)


@st.composite
def _encoded_pairs(draw) -> str:
    """``name=value`` pairs joined by ``&``, some percent-encoded, some raw, some odd."""
    pairs = draw(st.lists(st.tuples(_NAMES, _VALUES, st.booleans()), max_size=6))
    return "&".join(f"{quote_plus(name)}={quote_plus(value)}" if encoded else f"{name}={value}"
                    for name, value, encoded in pairs)


@FUZZ
@given(query=st.one_of(st.just(""), _encoded_pairs()),
       body=st.one_of(_encoded_pairs(), st.binary(max_size=24),
                      _encoded_pairs().map(lambda rest: f"id={RECORD_ID}&token={WEBHOOK_TOKEN}&{rest}"),
                      _encoded_pairs().map(lambda rest: f"{rest}&id={RECORD_ID}&token={WEBHOOK_TOKEN}")),
       header=st.sampled_from([None, WEBHOOK_TOKEN, "wrong"]))
def test_any_form_gets_the_answer_flask_gives(namespace, publisher, topology, query, body, header):
    app = create_app(make_settings(namespace), publisher=publisher, checks={})
    headers = {"X-Webhook-Token": header} if header else {}
    answers = []
    for content_type in (FORM, FORM_THROUGH_FLASK):
        response = post_form(app, body, query=query, content_type=content_type, headers=headers)
        assert response.status_code < 500, response.get_data(as_text=True)
        answer = response.get_json()
        answers.append((response.status_code, {k: v for k, v in answer.items() if k != "event_id"}))
    assert answers[0] == answers[1]
    outcome(str(answers[0][0]))
    events = [event for event, _ in queued(topology)]
    assert len(events) == (2 if answers[0][0] == 202 else 0)
    assert len({(e.module, e.record_id, e.operation, e.modified_time) for e in events}) <= 1
