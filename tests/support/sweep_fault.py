"""The fault test of the catch-up sweep: webhooks lost while the receiver is away, then one sweep.

Used by tests/e2e/test_sweep.py (short) and bench/sweep.py (500 changes).
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import requests
from kombu import Connection

from simulators.stack import free_port
from syncbridge.bootstrap import sweep_dependencies
from syncbridge.handlers.sweep import run_sweep
from tests.support.ameise import contact, person
from tests.support.waiting import wait_for


class RecordingPublisher:
    """The stack's publisher, keeping the ids of what it published."""

    def __init__(self, publisher) -> None:
        self.publisher = publisher
        self.ids: list[str] = []

    def publish(self, *args, **kwargs):
        return self.publisher.publish(*args, **kwargs)

    def publish_many(self, exchange, messages, **kwargs):
        messages = list(messages)
        done = self.publisher.publish_many(exchange, messages, **kwargs)
        self.ids.extend(message_id for _, _, message_id in messages)
        return done


def dead_letters(stack) -> int:
    with Connection(stack.settings.effective_broker_url) as connection:
        queue = stack.services.topology.dead_letters(connection.default_channel)
        return queue.queue_declare(passive=True).message_count


def outage_then_sweep(stack, *, creates: int, edits: int, burst: bool, timeout: float = 50) -> dict:
    """Make ``creates`` + ``edits`` CRM changes while no webhook reaches the receiver, then sweep once.

    With ``burst`` the lost webhooks are sent again while the sweep runs (Zoho Flow
    retrying, an operator replaying them): the same records arrive twice.
    """
    state, store = stack.zoho_state, stack.services.store
    module = "Contacts"
    # Records that exist and are synced before the outage: the ones edited during it.
    base = [state.user_create(module, {"First_Name": "Alt", "Last_Name": f"Bestand {i:04d}",
                                       "Email": f"alt{i}@example.de"}) for i in range(edits)]
    wait_for(lambda: all(state.get(module, r).get("Kundennummer") for r in base), timeout=timeout, interval=0.2,
             what="the records before the outage in Ameise")
    deps = sweep_dependencies(stack.services)
    recorder = RecordingPublisher(deps.publisher)
    deps.publisher = recorder
    for name in stack.settings.zoho_modules:         # the previous sweep finished now
        deps.state.set_watermark(name, datetime.now(UTC))
    state.wait_idle(10)

    # The outage: every workflow webhook goes to a port nobody answers.
    hooks = state.webhooks()
    for hook in hooks:
        state.remove_webhook(hook["id"])
    dead_url = f"http://127.0.0.1:{free_port()}/webhooks/zoho/{module}"
    state.add_webhook(module, dead_url, token=stack.settings.zoho_webhook_token)
    created = [state.user_create(module, {"First_Name": "Neu", "Last_Name": f"Kunde {i:04d}",
                                          "Email": f"neu{i}@example.de"}) for i in range(creates)]
    for i, record_id in enumerate(base):
        state.user_update(module, record_id, {"Phone": f"+49 30 {5550000 + i}"})
    assert state.wait_idle(60), "the simulator's webhook deliveries did not finish"
    lost = len([d for d in state.deliveries if not d["ok"]])
    for hook in state.webhooks():                     # the receiver is back
        state.remove_webhook(hook["id"])
    for hook in hooks:
        state.add_webhook(hook["module"], hook["url"], style=hook["style"], token=stack.settings.zoho_webhook_token)

    writes_before = _writes(stack)
    burst_ids: list[str] = []
    changed = created + base

    def send_burst() -> None:
        url = f"{stack.receiver.url}/webhooks/zoho/{module}"

        def send(record_id: str) -> str:
            answer = requests.post(url, data={"id": record_id, "token": stack.settings.zoho_webhook_token},
                                   timeout=30)
            assert answer.status_code == 202, answer.text
            return answer.json()["event_id"]

        with ThreadPoolExecutor(4) as pool:
            burst_ids.extend(pool.map(send, changed))

    started = time.monotonic()
    sender = threading.Thread(target=send_burst) if burst else None
    if sender:
        sender.start()
    result = run_sweep(deps)
    if sender:
        sender.join(60)
    queued_in = time.monotonic() - started
    events = recorder.ids + burst_ids
    wait_for(lambda: all(store.was_processed(e) for e in events), timeout=timeout, interval=0.2,
             what="every queued event handled")
    took = time.monotonic() - started

    in_ameise = [r for r in created if state.get(module, r).get("Kundennummer")]
    edited = [r for i, r in enumerate(base)
              if contact(stack.ameise_state.customers[state.get(module, r)["Kundennummer"]], "telefon")
              == f"+49 30 {5550000 + i}"]
    names = Counter(person(c)["Nachname"] for c in stack.ameise_state.customers.values())
    writes = _writes(stack) - writes_before
    return {
        "changes": creates + edits, "creates": creates, "edits": edits, "webhooks_lost": lost,
        "sweep_queued": result.queued, "sweep_from_failures": sum(m.from_failures for m in result.modules),
        "sweep_calls": result.calls, "burst_events": len(burst_ids),
        "created_in_ameise": len(in_ameise), "edited_in_ameise": len(edited),
        "duplicates": sum(n - 1 for n in names.values()), "dead_lettered": dead_letters(stack),
        "ameise_writes": writes, "ameise_creates": stack.ameise_state.creates["customers"],
        "sweep_s": round(queued_in, 2), "all_in_ameise_s": round(took, 2),
    }


def _writes(stack) -> int:
    return stack.ameise_state.creates["customers"] + stack.ameise_state.updates["customers"]
