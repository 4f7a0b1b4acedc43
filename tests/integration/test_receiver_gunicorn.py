"""The receiver as the Procfile runs it (gunicorn, gevent workers) on RabbitMQ, fed hostile bytes over raw sockets."""
from __future__ import annotations

import json
import os
import socket
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from kombu import Connection

from producers.topology import build_topology
from tests.support.fuzz_strategies import raw_requests
from tests.support.fuzzing import examples, outcome
from tests.support.gunicorn import BODY_READ_TIMEOUT, TOKEN, Web, drain, parse
from tests.support.waiting import wait_for

pytestmark = pytest.mark.rabbitmq







@pytest.fixture(scope="module")
def web(rabbitmq_url, tmp_path_factory):
    namespace = f"sbtest-gw-{os.getpid()}-{int(time.time() * 1000) % 100000}"
    server = Web(rabbitmq_url, namespace, tmp_path_factory.mktemp("web") / "web.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        topology = build_topology(namespace)
        with Connection(rabbitmq_url, connect_timeout=3) as conn:
            channel = conn.channel()
            for queue in topology.queues:
                channel.queue_delete(queue.name)
            for exchange in topology.exchanges:
                channel.exchange_delete(exchange.name)




def exchange(port: int, data: bytes, *, close_write: bool = True, timeout: float = 10) -> bytes:
    """Send ``data`` on a fresh connection (then close our side), return all the server sent back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server may answer and close before it read everything
        if close_write:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer




def assert_json_error(answer: bytes, status: int | None = None) -> dict:
    assert answer, "no answer"
    code, headers, body = parse(answer)
    if status is not None:
        assert code == status, answer
    assert 400 <= code < 500, answer
    assert headers["content-type"].startswith("application/json"), answer
    error = json.loads(body)
    assert set(error) >= {"error", "message"}, error
    return error


def post(path: str, body: bytes, *extra: bytes, length: int | None = None, token: str = TOKEN) -> bytes:
    headers = [b"POST " + path.encode() + b" HTTP/1.1", b"Host: test", b"Content-Type: application/json",
               b"X-Webhook-Token: " + token.encode(), *extra]
    if length is not None:
        headers.append(b"Content-Length: %d" % length)
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


# ------------------------------------------------------------------ the body as sent
def test_invalid_chunk_size_is_400_json_and_queues_nothing(web, rabbitmq_url):
    for chunked in (b"ZZ\r\nabc\r\n0\r\n\r\n", b"-1\r\nabc\r\n0\r\n\r\n", b"4\r\n{\"id\r\n1;" + b"x" * 5000 + b"\r\n"):
        answer = exchange(web.port, post("/webhooks/zoho/Contacts", chunked, b"Transfer-Encoding: chunked"))
        assert_json_error(answer, 400)
    assert drain(rabbitmq_url, web.namespace) == []


def test_body_shorter_than_its_content_length_is_400_and_queues_nothing(web, rabbitmq_url):
    whole = b'{"id":"4150868000000376008","operation":"edit"}'
    answer = exchange(web.port, post("/webhooks/zoho/Contacts", whole[:20], length=len(whole)))
    error = assert_json_error(answer, 400)
    assert error["error"] == "incomplete_body"
    # The same body sent whole is queued, with its record id intact.
    answer = exchange(web.port, post("/webhooks/zoho/Contacts", whole, length=len(whole)))
    assert parse(answer)[0] == 202, answer
    [payload] = drain(rabbitmq_url, web.namespace)
    assert payload["record_id"] == "4150868000000376008"


def test_slow_body_gets_408_json_after_the_body_read_timeout(web):
    started = time.monotonic()
    answer = exchange(web.port, post("/webhooks/zoho/Contacts", b'{"id"', length=100), close_write=False,
                      timeout=BODY_READ_TIMEOUT + 10)
    elapsed = time.monotonic() - started
    assert assert_json_error(answer, 408)["error"] == "body_timeout"
    assert BODY_READ_TIMEOUT - 0.2 <= elapsed < BODY_READ_TIMEOUT + 5


def test_slow_headers_are_closed_after_the_keepalive_time(web):
    started = time.monotonic()
    answer = exchange(web.port, b"POST /webhooks/zoho/Contacts HTTP/1.1\r\nHost: test\r\nX-Slow: 1",
                      close_write=False, timeout=15)
    assert answer == b""  # closed without an answer: no request was complete
    assert time.monotonic() - started < 5


# ------------------------------------------------------------------ errors gunicorn answers itself
SERVER_ERRORS = [
    ("bad request line", b"GET /healthz?token=%s HTTP/1.1 junk\r\n\r\n" % TOKEN.encode(), 400),
    ("bad method", b"G\x01T /healthz?token=%s HTTP/1.1\r\n\r\n" % TOKEN.encode(), 400),
    ("bad version", b"GET /healthz HTTP/9.x\r\n\r\n", 400),
    ("request line too long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
    ("too many headers", b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
     431),
    ("header too long", b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    ("bad header name", b"GET /healthz HTTP/1.1\r\nBad Header: 1\r\n\r\n", 400),
    ("unmeetable expect", b"POST /webhooks/zoho/Contacts HTTP/1.1\r\nExpect: 100-wibble\r\nContent-Length: 2\r\n\r\n{}",
     417),
    ("unknown transfer coding", b"POST /webhooks/zoho/Contacts HTTP/1.1\r\nTransfer-Encoding: bogus\r\n\r\n0\r\n\r\n",
     400),
    ("content-length and chunked", b"POST /webhooks/zoho/Contacts HTTP/1.1\r\nContent-Length: 3\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("two content lengths", b"POST /webhooks/zoho/Contacts HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n{}}",
     400),
]


@pytest.mark.parametrize("name, data, status", SERVER_ERRORS, ids=[case[0] for case in SERVER_ERRORS])
def test_errors_of_the_server_itself_are_json(web, name, data, status):
    answer = exchange(web.port, data)
    assert_json_error(answer, status)
    assert b"<html" not in answer.lower()


def test_flask_redirects_and_404_405_are_json(web):
    for method, path in (("POST", "//webhooks/zoho/Contacts"), ("GET", "/webhooks//zoho/Contacts"),
                         ("GET", "/nowhere"), ("DELETE", "/webhooks/zoho/Contacts"), ("GET", "/healthz/")):
        response = requests.request(method, web.url + path, allow_redirects=False, timeout=10)
        assert response.status_code in (401, 404, 405), (path, response.status_code, response.text)
        assert response.headers["Content-Type"].startswith("application/json") and response.json()["error"]


def test_no_log_line_carries_a_query_string_or_token(web):
    marker = "sekret-in-the-query"
    for data in (b"GET /webhooks/zoho/Contacts?token=%s\r\n\r\n" % marker.encode(),
                 b"GET  /webhooks/zoho/Contacts?id=1&token=%s HTTP/1.1\r\n\r\n" % marker.encode(),
                 b"GET /webhooks/zoho/Contacts?token=%s&id=1 HTTP/1.1\r\n" % marker.encode()
                 + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n"):
        assert_json_error(exchange(web.port, data))
    requests.post(f"{web.url}/webhooks/zoho/Contacts?token={marker}&id=12", timeout=10)
    wait_for(lambda: web.output().count("Invalid request") >= 3, timeout=10, interval=0.1, what="the warnings")
    output = web.output()
    assert marker not in output
    assert "/webhooks/zoho/Contacts?<query removed>" in output, output


def test_a_queued_event_is_one_log_line_the_access_line(web, rabbitmq_url):
    response = requests.post(f"{web.url}/webhooks/zoho/Contacts", json={"id": "4150868000000376008"},
                             headers={"X-Webhook-Token": TOKEN}, timeout=10)
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    wait_for(lambda: event_id in web.output(), timeout=10, interval=0.1, what="the access line")
    [line] = [line for line in web.output().splitlines() if event_id in line]
    assert '"POST /webhooks/zoho/Contacts HTTP/1.1" 202 ' in line
    assert line.endswith(f"queued event {event_id} module=Contacts record_id=4150868000000376008 source=zoho-workflow")
    assert event_id in [payload["event_id"] for payload in drain(rabbitmq_url, web.namespace)]


# ------------------------------------------------------------------ raw-socket fuzzing
@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=raw_requests())
def test_fuzzed_raw_requests_get_json_or_a_closed_connection(web, data):
    started = time.monotonic()
    answer = exchange(web.port, data, timeout=BODY_READ_TIMEOUT + 10)
    assert time.monotonic() - started < BODY_READ_TIMEOUT + 5
    if not answer:
        outcome("closed")
        return  # nothing complete was sent, nothing answered: the connection was closed
    code, headers, body = parse(answer)
    outcome(str(code))
    assert code < 500, answer
    if code >= 400:
        assert headers.get("content-type", "").startswith("application/json"), answer
        if not data.startswith(b"HEAD "):   # an answer to HEAD has headers only
            assert "error" in json.loads(body)
