"""A direction whose preflight check fails stays paused: its messages wait in RabbitMQ until the set-up is fixed."""
from __future__ import annotations

import requests
from kombu import Connection

from simulators.zoho import ZohoState
from tests.support.ameise import contact
from tests.support.waiting import wait_for


class CountingZoho(ZohoState):
    """The simulated CRM, counting how often its field metadata is read (each check reads every synced module)."""

    def __init__(self) -> None:
        super().__init__()
        self.field_reads = 0

    def fields(self, module: str):
        self.field_reads += 1
        return super().fields(module)


def waiting_in(stack, queue_of) -> int:
    with Connection(stack.settings.broker_url) as connection:
        return queue_of(stack.services.topology)(connection.default_channel).queue_declare(passive=True).message_count


def preflight_log(stack, direction: str) -> list[str]:
    return [e.result for e in stack.services.store.activities(direction="system", action="preflight")
            if e.details.get("direction") == direction]


def test_a_failing_check_keeps_crm_to_ameise_paused_until_the_field_exists(make_stack):
    zoho = CountingZoho()
    zoho.drop_field("Contacts", "Geschlecht")           # the mapping reads it: the CRM -> Ameise set-up is broken
    stack = make_stack(zoho_state=zoho, preflight_interval="0.2")
    wait_for(lambda: preflight_log(stack, "crm_to_ameise") == ["error"], what="the failing check in the log")
    erika = stack.demo_ids["zoho"]["Erika Mustermann"]

    requests.patch(f"{stack.zoho.url}/_sim/records/Contacts/{erika}", json={"Phone": "+49 221 1112233"}, timeout=5)

    queued = wait_for(lambda: waiting_in(stack, lambda t: t.crm_to_ameise) == 1, what="the event waiting in the queue")
    assert queued
    # Several checks later it still waits: nothing was consumed, nothing dead-lettered, Ameise untouched.
    reads = zoho.field_reads
    wait_for(lambda: zoho.field_reads >= reads + 3 * len(stack.settings.zoho_modules), what="three more checks")
    assert waiting_in(stack, lambda t: t.crm_to_ameise) == 1
    assert waiting_in(stack, lambda t: t.dead_letters) == 0
    assert contact(stack.ameise_state.customers["5001234567"], "telefon") != "+49 221 1112233"
    [entry] = [e for e in stack.services.store.activities(direction="system", action="preflight")
               if e.details["direction"] == "crm_to_ameise"]
    assert entry.error.startswith("CRM -> Ameise paused: preflight failing: Contacts.Geschlecht")

    zoho.add_field("Contacts", "Geschlecht", "text", length=20)

    wait_for(lambda: contact(stack.ameise_state.customers["5001234567"], "telefon") == "+49 221 1112233",
             what="the waiting event synced once the check passes")
    assert waiting_in(stack, lambda t: t.crm_to_ameise) == 0
    assert waiting_in(stack, lambda t: t.dead_letters) == 0
    assert preflight_log(stack, "crm_to_ameise") == ["ok", "error"]
    # The return path's check never failed: it started at once.
    assert preflight_log(stack, "ameise_to_crm") == ["ok"]

