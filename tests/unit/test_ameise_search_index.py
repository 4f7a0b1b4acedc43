"""The simulated Ameise's search by ``mail`` (an index) finds what a look at every customer finds."""
from __future__ import annotations

import random

from simulators.ameise import AmeiseState, NotFound, ValidationFailed
from simulators.ameise.state import search_hit

MAILS = ["a@x.de", "B@x.de", "b@X.de", "c@x.de"]


def every_customer_with(customers: dict[str, dict], mail: str) -> list[dict]:
    wanted = mail.strip().lower()
    return [search_hit(c) for _, c in sorted(customers.items())
            if any(e.get("Typ") == "email" and str(e.get("Value") or "").lower() == wanted
                   for e in c.get("Kontaktdaten") or [])]


def test_search_by_mail_follows_every_change_of_contact_data():
    rng = random.Random(13)
    state = AmeiseState()
    numbers: list[str] = []
    for _ in range(400):
        choice = rng.random()
        try:
            if choice < 0.3 or not numbers:
                contacts = [{"Kontext": rng.choice(["privat", "geschaeftlich"]), "Typ": rng.choice(["email", "telefon"]),
                             "Value": rng.choice(MAILS)} for _ in range(rng.randint(0, 2))]
                numbers.append(state.create_customer({"Person": {"Typ": "natuerlich", "Nachname": "X"},
                                                      "Kontaktdaten": contacts})["Id"])
            elif choice < 0.45:
                state.add_contact(rng.choice(numbers), {"Kontext": "privat", "Typ": rng.choice(["email", "fax"]),
                                                        "Value": rng.choice(MAILS)})
            elif choice < 0.6:
                number = rng.choice(numbers)
                contacts = state.contacts(number)
                if contacts:
                    state.update_contact(number, rng.choice(contacts)["Id"],
                                         {"Value": rng.choice(MAILS), "Typ": rng.choice(["email", "mobil"])})
            elif choice < 0.67:
                number = rng.choice(numbers)
                state.delete_customer(number)
            elif choice < 0.75:
                replaced = rng.choice(numbers) if rng.random() < 0.5 else None
                numbers.append(state.seed_customer({"Person": {"Typ": "natuerlich", "Nachname": "S"}, "Kontaktdaten": [
                    {"Kontext": "privat", "Typ": "email", "Value": rng.choice(MAILS)}]}, replaced))
            elif choice < 0.85:
                state.edit_customer(rng.choice(numbers), {"Kontaktdaten": [
                    {"Kontext": "privat", "Typ": "email", "Value": rng.choice(MAILS)}]})
            elif choice < 0.86:
                state.reset()
        except (ValidationFailed, NotFound):
            pass
        customers = state.customers
        numbers = sorted(set(numbers) & set(customers))
        for mail in MAILS:
            found = every_customer_with(customers, mail)
            assert state.search_customers({"mail": mail}) == found
            assert state.search_customers({"mail": f" {mail.upper()} "}, size=100) == found[:100]
