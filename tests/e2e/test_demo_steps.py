"""The three steps ``syncbridge run`` prints, as a newcomer takes them, on RabbitMQ with both simulators over HTTP.

Step 1 edits Erika in the CRM (syncbridge writes her to Ameise and marks its write
as an echo), step 2 creates Jana in the CRM, step 3 sets Erika's Mobil in Ameise
and delivers the DailyUp.  In either order, the Ameise edit must reach the CRM and
the CRM's own edits must not come back as changes.
"""
from __future__ import annotations

from datetime import date, timedelta

import requests

from simulators.stack import add_demo_failure
from tests.support.ameise import contact
from tests.support.dailyup_stack import UPLOAD, imports, inbox, wait_applied, wait_imported
from tests.support.waiting import wait_for

ERIKA = "5001234567"
PHONE = "+49 221 7654321"
MOBILE = "+49 170 1234567"


def step_1_edit_erika_in_the_crm(stack, erika: str) -> None:
    answer = requests.patch(f"{stack.zoho.url}/_sim/records/Contacts/{erika}", json={"Phone": PHONE}, timeout=5)
    assert answer.status_code == 200, answer.text
    wait_for(lambda: contact(stack.ameise_state.customers[ERIKA], "telefon") == PHONE, what="Erika's phone in Ameise")


def step_2_create_jana_in_the_crm(stack) -> None:
    answer = requests.post(f"{stack.zoho.url}/_sim/records/Contacts",
                           json={"First_Name": "Jana", "Last_Name": "Beispiel"}, timeout=5)
    assert answer.status_code in (200, 201), answer.text

    def jana():
        return next((r for r in stack.zoho_state.records("Contacts")
                     if r.get("Last_Name") == "Beispiel" and r.get("Kundennummer")), None)
    wait_for(jana, what="Jana's Kundennummer written back to the CRM")


def step_3_edit_erika_in_ameise_and_deliver(stack, count: int, day: date | None = None) -> dict:
    answer = requests.patch(f"{stack.ameise.url}/_sim/kunden/{ERIKA}", json={"Kontaktdaten": [{"Kontext": "privat", "Typ": "mobil", "Value": MOBILE}]}, timeout=5)
    assert answer.status_code == 200, answer.text
    return deliver(stack, count, day)


def deliver(stack, count: int, day: date | None = None) -> dict:
    """Ameise's DailyUp of ``day`` (today without one) uploaded as the banner shows; the import once published."""
    query = f"?date={day.isoformat()}" if day else ""
    zipped = requests.get(f"{stack.ameise.url}/_sim/dailyup{query}", timeout=5)
    name = zipped.headers["Content-Disposition"].split('"')[1]
    upload = requests.post(f"{stack.receiver.url}/dailyup/deliveries", headers=UPLOAD,
                           files={"file": (name, zipped.content)}, timeout=10)
    assert upload.status_code == 202, upload.text
    imported = wait_imported(stack, count)
    assert imported["state"] == "published", imported
    return imported


def erika_in_the_crm(stack, erika: str) -> dict:
    return stack.zoho_state.get("Contacts", erika)


def test_the_demo_steps_in_order_bring_the_ameise_edit_to_the_crm(make_stack):
    stack = make_stack()
    erika = stack.demo_ids["zoho"]["Erika Mustermann"]

    step_1_edit_erika_in_the_crm(stack, erika)
    step_2_create_jana_in_the_crm(stack)
    imported = step_3_edit_erika_in_ameise_and_deliver(stack, 1)

    wait_for(lambda: erika_in_the_crm(stack, erika).get("Mobile") == MOBILE, timeout=30,
             what="Erika's Mobil from Ameise in the CRM")
    assert imported["deltas"].get("customer.created", 0) >= 1, imported
    assert erika_in_the_crm(stack, erika)["Phone"] == PHONE

    # The identical delivery again is a duplicate and changes nothing.
    wait_applied(stack, imported)
    stack.zoho_state.wait_idle(5)
    credits = stack.zoho_state.credits_used
    zipped = requests.get(f"{stack.ameise.url}/_sim/dailyup", timeout=5)
    name = zipped.headers["Content-Disposition"].split('"')[1]
    again = requests.post(f"{stack.receiver.url}/dailyup/deliveries", headers=UPLOAD,
                          files={"file": (name, zipped.content)}, timeout=10)
    assert again.status_code == 202, again.text
    wait_for(lambda: not any(inbox(stack).iterdir()), timeout=30, what="the repeated delivery to be taken")
    assert [i["state"] for i in imports(stack)] == ["published"]
    stack.zoho_state.wait_idle(5)
    assert stack.zoho_state.credits_used == credits
    assert erika_in_the_crm(stack, erika).get("Mobile") == MOBILE


def test_the_demo_steps_in_reverse_order_keep_both_sides_edits(make_stack):
    stack = make_stack()
    erika = stack.demo_ids["zoho"]["Erika Mustermann"]

    step_3_edit_erika_in_ameise_and_deliver(stack, 1)
    wait_for(lambda: erika_in_the_crm(stack, erika).get("Mobile") == MOBILE, timeout=30,
             what="Erika's Mobil from Ameise in the CRM")
    step_2_create_jana_in_the_crm(stack)
    step_1_edit_erika_in_the_crm(stack, erika)

    # The next day's delivery carries the CRM's own edit of Erika: it does not come back as a change.
    second = deliver(stack, 2, date.today() + timedelta(days=1))

    assert second["deltas"].get("customer.changed", 0) == 0 and second["deltas"].get("suppressed", 0) >= 1, second
    stack.zoho_state.wait_idle(5)
    record = erika_in_the_crm(stack, erika)
    assert (record["Phone"], record["Mobile"]) == (PHONE, MOBILE)


def test_the_demo_failure_delivered_before_it_is_fixed_stays_one_crm_record(make_stack):
    stack = make_stack()
    paul = add_demo_failure(stack)      # as `syncbridge run` does: a contact whose PLZ Ameise refuses

    def made_in_ameise():
        return next((number for number, customer in stack.ameise_state.customers.items()
                     if customer["Person"]["Nachname"] == "Fehler"), None)
    # Ameise made the customer, then refused his address: the sync failed half-way, his number never reached the CRM.
    number = wait_for(made_in_ameise, what="Paul made in Ameise before his address was refused")
    wait_for(lambda: stack.services.store.activities(zoho_id=paul, result="error"), what="Paul's failed sync")
    assert not stack.zoho_state.get("Contacts", paul).get("Kundennummer")

    imported = deliver(stack, 1)        # the next DailyUp carries him as a new customer of Ameise
    wait_applied(stack, imported)

    fehler = [r for r in stack.zoho_state.records("Contacts") if r.get("Last_Name") == "Fehler"]
    assert [(r["id"], r.get("Kundennummer")) for r in fehler] == [(paul, number)]   # his own record got the number

    # The PLZ fixed in the CRM, his sync ends on the customer Ameise already has.
    answer = requests.patch(f"{stack.zoho.url}/_sim/records/Contacts/{paul}", json={"Mailing_Zip": "50667"}, timeout=5)
    assert answer.status_code == 200, answer.text
    wait_for(lambda: (stack.ameise_state.customers[number].get("Hauptwohnsitz") or {}).get("Postleitzahl") == "50667",
             what="Paul's address in Ameise")
    assert [n for n, c in stack.ameise_state.customers.items() if c["Person"]["Nachname"] == "Fehler"] == [number]
    assert len([r for r in stack.zoho_state.records("Contacts") if r.get("Last_Name") == "Fehler"]) == 1
