"""The receiver as the Procfile starts it, on RabbitMQ: slow clients cannot starve it, and its publisher works under gevent.

The probe: 200 connections send their headers and a few bytes of body, then wait.
Meanwhile /healthz and a real webhook must answer promptly; the slow ones get a
408 JSON answer (or are closed) once the body-read timeout has passed.  Loopback only.
"""
from __future__ import annotations

import json
import selectors
import socket
import subprocess
import time

import pytest
import requests

from tests.support.gunicorn import TOKEN, Web, drain, parse
from tests.support.net import close_connections_named
from tests.support.waiting import wait_for

pytestmark = pytest.mark.rabbitmq

SLOW_CLIENTS = 200
BODY_READ_TIMEOUT = 4.0
RECORD_ID = "4150868000000376008"


@pytest.fixture
def web(rabbitmq_url, namespace, tmp_path):
    server = Web(rabbitmq_url, namespace, tmp_path / "web.log", WEB_CONCURRENCY="2",
                 SYNCBRIDGE_BODY_READ_TIMEOUT=str(BODY_READ_TIMEOUT))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def open_slow_client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"POST /webhooks/zoho/Contacts HTTP/1.1\r\nHost: probe\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 200\r\n\r\n{\"id\":")
    sock.setblocking(False)
    return sock


def answers_of(socks: list[socket.socket], deadline: float) -> dict[socket.socket, bytes]:
    """Read from every socket until each was closed by the server or ``deadline`` passed."""
    received = {sock: b"" for sock in socks}
    selector = selectors.DefaultSelector()
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ)
    open_ = set(socks)
    while open_ and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=max(0.0, min(0.5, deadline - time.monotonic()))):
            sock = key.fileobj
            try:
                chunk = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionResetError:
                chunk = b""
            if chunk:
                received[sock] += chunk
            else:
                selector.unregister(sock)
                open_.discard(sock)
    selector.close()
    return received


def test_slow_clients_cannot_starve_the_receiver(web, rabbitmq_url):
    slow = [open_slow_client(web.port) for _ in range(SLOW_CLIENTS)]
    opened = time.monotonic()
    try:
        # While every slow client waits, the receiver answers others at once.
        for _ in range(3):
            started = time.monotonic()
            assert requests.get(f"{web.url}/healthz", timeout=2).json() == {"status": "ok"}
            assert time.monotonic() - started < 1.0
        started = time.monotonic()
        response = requests.post(f"{web.url}/webhooks/zoho/Contacts", params={"token": TOKEN},
                                 data={"id": RECORD_ID, "operation": "edit"}, timeout=3)
        assert response.status_code == 202, response.text
        assert time.monotonic() - started < 2.0
        assert time.monotonic() - opened < BODY_READ_TIMEOUT  # all of this while the slow ones still wait

        # Each slow client is answered 408 (JSON) after the body-read timeout, or closed.
        answers = answers_of(slow, deadline=opened + BODY_READ_TIMEOUT + 10)
        finished = time.monotonic()
        timed_out = 0
        for answer in answers.values():
            if answer:
                status, headers, body = parse(answer)
                assert status == 408 and headers["content-type"] == "application/json", answer
                assert json.loads(body)["error"] == "body_timeout"
                timed_out += 1
        assert timed_out >= SLOW_CLIENTS * 0.9, f"only {timed_out} of {SLOW_CLIENTS} got a 408"
        assert finished - opened >= BODY_READ_TIMEOUT - 0.5  # not before their time
    finally:
        for sock in slow:
            sock.close()

    [event] = drain(rabbitmq_url, web.namespace)
    assert event["record_id"] == RECORD_ID and event["event_id"] == response.json()["event_id"]
    assert requests.get(f"{web.url}/healthz", timeout=2).status_code == 200


def test_publisher_confirms_reconnects_and_closes_under_gevent(web, rabbitmq_url):
    def webhook(record_id: str) -> str:
        response = requests.post(f"{web.url}/webhooks/zoho/Deals", json={"id": record_id},
                                 headers={"X-Webhook-Token": TOKEN}, timeout=10)
        assert response.status_code == 202, response.text
        return response.json()["event_id"]

    # Both workers publish with confirms (requests are spread over them; a few rounds reach both).
    first = [webhook(str(5_725_767_000_003_000_000 + n)) for n in range(6)]
    # The broker drops every publisher connection: the next publish reconnects and succeeds.
    close_connections_named(f"syncbridge-publisher {web.namespace}")
    second = [webhook(str(5_725_767_000_004_000_000 + n)) for n in range(6)]
    # A Notification API call: its events go out as one confirmed batch (publish_many under gevent).
    notified = requests.post(f"{web.url}/webhooks/zoho/notify", timeout=10, json={
        "ids": [str(4_000_000_000 + n) for n in range(1_500)], "module": "Contacts", "operation": "update",
        "token": "dev-zoho-notify-token", "channel_id": "1"})
    assert notified.status_code == 202, notified.text
    events = drain(rabbitmq_url, web.namespace)
    assert [event["event_id"] for event in events] == first + second + notified.json()["event_ids"]

    # SIGTERM: the workers' exit hook closes their broker connections; gunicorn exits cleanly.
    web.stop()
    assert web.process.returncode == 0
    output = web.output()
    assert "Traceback" not in output and "MonkeyPatchWarning" not in output, output

    def publisher_connections() -> list[str]:
        listing = subprocess.run(["rabbitmqctl", "list_connections", "-q", "--no-table-headers", "client_properties"],
                                 capture_output=True, text=True, check=True, timeout=30)
        return [line for line in listing.stdout.splitlines() if f"syncbridge-publisher {web.namespace}" in line]
    wait_for(lambda: publisher_connections() == [], timeout=15, interval=0.5, what="the publisher connections to close")
