"""Fault injection on the real RabbitMQ and the simulators: what was acknowledged arrives, exactly once.

Each test prints its counts (sent, acknowledged, arrived, duplicates, dead-lettered):
run with ``-s`` to see them.
"""
from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from kombu import Connection

from tests.support.ameise import person
from tests.support.waiting import wait_for

pytestmark = pytest.mark.rabbitmq
TOKEN = "dev-zoho-webhook-token"


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


@pytest.fixture
def broker_restart(rabbitmq_url):
    """Stop and start the RabbitMQ application on demand; it is running again after the test whatever happens."""
    def restart(down_for: float = 2.0) -> None:
        rabbitmqctl("stop_app")
        time.sleep(down_for)
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup")

    yield restart
    rabbitmqctl("start_app")
    rabbitmqctl("await_startup")
    wait_for(lambda: _broker_answers(rabbitmq_url), timeout=60, interval=0.5, what="RabbitMQ back")


def _broker_answers(url: str) -> bool:
    try:
        with Connection(url, connect_timeout=2) as connection:
            connection.connect()
            return True
    except Exception:  # noqa: BLE001 - not up yet
        return False


def dead_letters(stack) -> int:
    with Connection(stack.settings.effective_broker_url) as connection:
        queue = stack.services.topology.dead_letters(connection.default_channel)
        return queue.queue_declare(passive=True).message_count


def test_webhooks_during_a_broker_restart_reach_ameise_exactly_once(make_stack, broker_restart):
    seeded, rate, at_least = 6000, 120, 300     # 50 s of webhooks: more than a restart takes on a busy machine
    stack = make_stack(seed=False, workers=2)
    state = stack.zoho_state
    ids = [state.seed("Contacts", {"First_Name": "Fall", "Last_Name": f"Test {i:04d}", "Email": f"f{i}@example.de"})
           for i in range(seeded)]
    url = f"{stack.receiver.url}/webhooks/zoho/Contacts"
    answers: dict[str, list[int]] = {}

    def send(record_id: str) -> int:
        try:
            status = requests.post(url, data={"id": record_id, "operation": "create", "token": TOKEN},
                                   timeout=30).status_code
        except requests.RequestException:
            status = 0   # no answer at all: the sender does not know, so it must send again
        answers[record_id].append(status)
        return status

    restart = threading.Thread(target=lambda: (time.sleep(1.0), broker_restart()))
    restart.start()
    # Webhooks at a steady rate from before the restart until the broker is back (at least ``at_least``):
    # the workers keep up with them, so the test waits for the restart, not for a backlog.
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        for index, record_id in enumerate(ids):
            if index >= at_least and not restart.is_alive():
                break
            time.sleep(max(0.0, started + index / rate - time.monotonic()))   # pacing the sender
            answers[record_id] = []
            pool.submit(send, record_id)
    restart.join()
    sent = list(answers)
    count = len(sent)
    first = Counter(a[0] for a in answers.values())
    # A sender that got no 202 knows the event is not queued and sends it again (Zoho Flow retries so).
    for _ in range(30):
        missing = [r for r, a in answers.items() if a[-1] != 202]
        if not missing:
            break
        time.sleep(1)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, missing))
    accepted = sum(1 for a in answers.values() if 202 in a)

    wait_for(lambda: all(state.get("Contacts", r).get("Kundennummer") for r in sent), timeout=240, interval=1,
             what="every record in Ameise")
    numbers = Counter(state.get("Contacts", r)["Kundennummer"] for r in sent)
    created = stack.ameise_state.creates["customers"]
    names = Counter(person(c)["Nachname"] for c in stack.ameise_state.customers.values())
    dead = dead_letters(stack)
    print(f"\nbroker restart: sent {count} webhooks, first answers {dict(first)}, acknowledged (202) {accepted}, "
          f"arrived {len(numbers)}, Ameise creates {created}, duplicates {sum(n - 1 for n in names.values())}, "
          f"dead-lettered {dead}")

    assert count < seeded, "the restart outlasted every seeded record: the test proved less than it should"
    assert first[503] + first[0] > 0, "the restart hit no webhook: the test proved nothing"
    assert accepted == count
    assert len(numbers) == count and all(n == 1 for n in numbers.values())
    assert created == count and all(n == 1 for n in names.values())
    assert dead == 0


def test_zoho_and_ameise_failing_for_a_while_lose_nothing_and_dead_letter_nothing(make_stack):
    count = 60
    stack = make_stack(seed=False, workers=2, retry_delays="1,2,3,5,8", http_timeout="1")
    zoho, ameise = stack.zoho_state, stack.ameise_state
    ids = [zoho.seed("Contacts", {"First_Name": "Stö", "Last_Name": f"Rung {i:03d}"}) for i in range(count)]
    # Both systems fail for a while: errors, rate limits with Retry-After, and answers that take too long.
    zoho.add_fault(500, count=15, path_prefix="/crm/v7/Contacts/")
    zoho.add_fault(429, count=10, path_prefix="/crm/v7/Contacts/", retry_after=1)
    zoho.add_fault(None, count=4, path_prefix="/crm/v7/Contacts/", delay=1.5)   # read timeouts on GET
    ameise.add_fault(503, count=15, path_prefix="kunden")
    ameise.add_fault(429, count=10, path_prefix="kunden", retry_after=2)

    url = f"{stack.receiver.url}/webhooks/zoho/Contacts"
    statuses = Counter(requests.post(url, data={"id": r, "token": TOKEN}, timeout=10).status_code for r in ids)

    wait_for(lambda: all(zoho.get("Contacts", r).get("Kundennummer") for r in ids), timeout=120, interval=0.5,
             what="every record in Ameise after the outage")
    retries = stack.services.store.activities(action="retry", limit=1000)
    names = Counter(person(c)["Nachname"] for c in ameise.customers.values())
    dead = dead_letters(stack)
    print(f"\noutage: sent {count}, acknowledged {statuses[202]}, arrived {len(names)}, retries {len(retries)}, "
          f"duplicates {sum(n - 1 for n in names.values())}, dead-lettered {dead}")

    assert statuses == {202: count}
    assert len(retries) >= 30                       # the outage was met, and waited out
    assert len(names) == count and all(n == 1 for n in names.values())
    assert dead == 0


def test_access_tokens_expiring_mid_stream_are_refreshed_and_nothing_is_lost(make_stack):
    count = 100
    stack = make_stack(seed=False, workers=2, token_refresh_margin="0")
    zoho, ameise = stack.zoho_state, stack.ameise_state
    ids = [zoho.seed("Contacts", {"First_Name": "Token", "Last_Name": f"Lauf {i:03d}"}) for i in range(count)]
    url = f"{stack.receiver.url}/webhooks/zoho/Contacts"
    stop = threading.Event()

    def expire():
        # Both servers invalidate every access token three times while the events flow, as expiries
        # would. (More often would meet Zoho's limit of 10 token refreshes per 10 minutes, which
        # the service then waits out as a 60 s retry: right, but longer than this test.)
        for _ in range(3):
            if stop.wait(0.4):
                return
            zoho.expire_access_tokens()
            ameise.expire_access_tokens()

    expiring = threading.Thread(target=expire, daemon=True)
    expiring.start()
    try:
        statuses = Counter(requests.post(url, data={"id": r, "token": TOKEN}, timeout=10).status_code for r in ids)
        wait_for(lambda: all(zoho.get("Contacts", r).get("Kundennummer") for r in ids), timeout=120, interval=0.5,
                 what="every record in Ameise")
    finally:
        stop.set()
        expiring.join()
    names = Counter(person(c)["Nachname"] for c in ameise.customers.values())
    dead = dead_letters(stack)
    print(f"\ntokens: sent {count}, acknowledged {statuses[202]}, arrived {len(names)}, "
          f"duplicates {sum(n - 1 for n in names.values())}, dead-lettered {dead}")

    assert statuses == {202: count}
    assert len(names) == count and all(n == 1 for n in names.values())
    assert dead == 0
    assert zoho.tokens_minted() >= 2                   # the expiries met the stream and were refreshed
    assert stack.services.store.tokens.status("ameise")[0] == "active"
