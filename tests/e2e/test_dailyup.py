"""Ameise -> CRM end to end: DailyUp delivery -> drop folder / upload -> import -> RabbitMQ -> Zoho simulator."""
from __future__ import annotations

import csv
import io
import shutil
from datetime import date, timedelta

import pytest
import requests

from syncbridge.dailyup.generate import csv_bytes, expected_delta, write_delivery, write_zip
from syncbridge.dailyup.reader import open_delivery
from syncbridge.deliveries import COLUMNS
from tests.support.ameise import contact
from tests.support.dailyup_stack import ADMIN, UPLOAD, imports, inbox, wait_applied, wait_imported
from tests.support.waiting import wait_for

CUSTOMERS = 300
CUSTOMER_MODULES = ("Contacts", "Accounts")


@pytest.fixture
def stack(make_stack):
    return make_stack(seed=False)










def zoho_by_key(stack, module: str, field: str) -> dict[str, dict]:
    return {r[field]: r for r in stack.zoho_state.records(module) if r.get(field)}


def customers_in_zoho(stack) -> dict[str, dict]:
    found = {}
    for module in CUSTOMER_MODULES:
        found.update(zoho_by_key(stack, module, "Kundennummer"))
    return found


def delivered_rows(path, table: str, file_name: str | None = None) -> dict[str, dict]:
    with open_delivery(path, file_name=file_name) as delivery:
        return {row.key: row.data for row in delivery.rows(table)}


def test_first_delivery_fills_the_crm_and_the_next_one_brings_exactly_its_changes(stack, tmp_path):
    first = write_delivery(tmp_path, customers=CUSTOMERS, generation=0)
    shutil.copy(first, inbox(stack))              # as an FTP upload: the worker waits until the file settles
    imp = wait_imported(stack, 1)
    kunden = delivered_rows(first, "kunden")

    assert imp["state"] == "published", imp
    assert imp["deltas"]["customer.created"] == CUSTOMERS
    wait_for(lambda: len(customers_in_zoho(stack)) == CUSTOMERS, timeout=60, what="every customer in Zoho")
    contracts = imp["deltas"]["contract.created"]
    wait_for(lambda: len(zoho_by_key(stack, "Deals", "Vertragsnummer")) == contracts, timeout=60,
             what="every contract in Zoho")
    in_zoho = customers_in_zoho(stack)
    for key, row in list(kunden.items())[:50]:
        record = in_zoho[key]
        if row["Personentyp"] == "natuerlich":
            assert record["Last_Name"] == row["Nachname"] and record.get("Phone") == row.get("Telefon")
        else:
            assert record["Account_Name"] == row["Firma"]
    deal = next(iter(zoho_by_key(stack, "Deals", "Vertragsnummer").values()))
    assert deal["Sparte_Text"] and deal["Deal_Name"].endswith(deal["Vertragsnummer"])
    lookup = deal.get("Contact_Name") or deal.get("Account_Name")
    assert lookup and lookup["id"] in {r["id"] for r in in_zoho.values()}
    credits_after_first = stack.zoho_state.credits_used

    second = write_delivery(tmp_path, customers=CUSTOMERS, generation=1)
    answer = requests.post(f"{stack.receiver.url}/dailyup/deliveries", headers=UPLOAD,
                           files={"file": (second.name, second.read_bytes(), "application/zip")}, timeout=10)
    assert answer.status_code == 202, answer.text
    imp2 = wait_imported(stack, 2)
    expected = expected_delta(CUSTOMERS, 1)

    assert imp2["state"] == "published", imp2
    for entity in ("customer", "contract"):
        for change in ("created", "changed", "deleted"):
            assert imp2["deltas"].get(f"{entity}.{change}", 0) == len(expected[entity][change]), (entity, change)
    new_rows = delivered_rows(second, "kunden")
    wait_for(lambda: all(k in customers_in_zoho(stack) for k in expected["customer"]["created"]), timeout=30,
             what="new customers in Zoho")
    wait_for(lambda: all(customers_in_zoho(stack)[k].get("Ameise_Status") == "geloescht"
                         for k in expected["customer"]["deleted"]), timeout=30, what="deleted customers marked")
    for key in expected["customer"]["changed"]:
        row = new_rows[key]
        wait_for(lambda: customers_in_zoho(stack)[key].get("Phone") == row.get("Telefon")
                 and customers_in_zoho(stack)[key].get("Email") == row.get("Email"), timeout=30,
                 what=f"changed customer {key}")
    wait_for(lambda: all(zoho_by_key(stack, "Deals", "Vertragsnummer")[k].get("Ameise_Status") == "geloescht"
                         for k in expected["contract"]["deleted"]), timeout=30, what="deleted contracts marked")
    # A new contract follows its customer: it may wait for a retry until the customer is in the CRM.
    wait_for(lambda: all(k in zoho_by_key(stack, "Deals", "Vertragsnummer") for k in expected["contract"]["created"]),
             timeout=60, what="new contracts in Zoho")
    # Nothing was ever hard-deleted, and the second day cost only its changes.
    assert len(customers_in_zoho(stack)) == CUSTOMERS + len(expected["customer"]["created"])
    changes = sum(len(v) for e in expected.values() for v in e.values())
    stack.zoho_state.wait_idle(5)
    assert stack.zoho_state.credits_used - credits_after_first <= changes  # batched: never more than 1 per record

    # The same file again changes nothing and costs nothing.
    credits = stack.zoho_state.credits_used
    again = requests.post(f"{stack.receiver.url}/dailyup/deliveries?name={second.name}",
                          headers={**UPLOAD, "Content-Type": "application/zip"}, data=second.read_bytes(), timeout=10)
    assert again.status_code == 202
    wait_for(lambda: not any(inbox(stack).iterdir()), timeout=30, what="the repeated delivery to be taken")
    assert len(imports(stack)) == 2
    assert stack.zoho_state.credits_used == credits


def test_messy_deliveries_give_clear_errors_and_lose_nothing(stack, tmp_path):
    good = write_delivery(tmp_path, customers=40, generation=0)
    shutil.copy(good, inbox(stack))
    contracts = wait_imported(stack, 1)["deltas"]["contract.created"]
    wait_for(lambda: len(customers_in_zoho(stack)) == 40, timeout=60, what="first delivery in Zoho")
    wait_for(lambda: len(zoho_by_key(stack, "Deals", "Vertragsnummer")) == contracts, timeout=60,
             what="first delivery's contracts in Zoho")
    credits = stack.zoho_state.credits_used

    # A truncated ZIP: rejected as a whole, nothing changes.
    data = write_delivery(tmp_path, customers=40, generation=1).read_bytes()
    truncated = requests.post(f"{stack.receiver.url}/dailyup/deliveries", headers=UPLOAD,
                              files={"file": ("DailyUp_100200_20261103.zip", data[: len(data) // 2])}, timeout=10)
    assert truncated.status_code == 202
    rejected = wait_imported(stack, 2)
    assert rejected["state"] == "rejected" and "ZIP" in rejected["message"], rejected

    # CP1252 with an embedded line break, a duplicate key, a bad date and an unknown column.
    with open_delivery(good) as delivery:
        rows = [dict(r.data) for r in delivery.rows("kunden")]
        contracts = [dict(r.data) for r in delivery.rows("vertraege")]
    first, second = rows[0], rows[1]
    messy = [dict(r) for r in rows]
    messy[0] = {**first, "Strasse": "Große Straße 1\nHinterhaus; 2. OG", "Telefon": "+49 30 111"}
    messy[1] = {**second, "Geburtsdatum": "31.02.1980", "Telefon": "+49 30 222"}
    messy.append({**messy[2], "Telefon": "+49 30 333"})                              # duplicate key
    header = [*COLUMNS["kunden"], "Bemerkung"]

    def german(row):
        out = {c: row.get(c) or "" for c in header}
        for column in ("Geburtsdatum", "LetzterLogin", "GeaendertAm"):
            value = row.get(column)
            if value and value[4:5] == "-":
                out[column] = f"{value[8:10]}.{value[5:7]}.{value[:4]}"
        out["Bemerkung"] = "neu"
        return out

    contract_rows = [{c: (r.get(c) or "") for c in COLUMNS["vertraege"]} for r in contracts]
    for row in contract_rows:
        for column in ("Beginn", "Ablauf", "GeaendertAm"):
            if row[column]:
                row[column] = f"{row[column][8:10]}.{row[column][5:7]}.{row[column][:4]}"
        for column in ("BeitragBrutto", "BeitragNetto"):
            row[column] = row[column].replace(".", ",")
    path = write_zip(tmp_path / "DailyUp_100200_20261104.zip", {
        "kunden.csv": csv_bytes(header, [german(r) for r in messy], encoding="cp1252"),
        "vertraege.csv": csv_bytes(COLUMNS["vertraege"], contract_rows, encoding="cp1252"),
    })
    answer = requests.post(f"{stack.receiver.url}/dailyup/deliveries", headers=UPLOAD,
                           files={"file": (path.name, path.read_bytes())}, timeout=10)
    assert answer.status_code == 202
    imp = wait_imported(stack, 3)

    assert imp["state"] == "published", imp
    assert imp["encodings"]["kunden"] == "cp1252" and imp["extra_columns"]["kunden"] == ["Bemerkung"]
    assert imp["errors"] == 2
    detail = requests.get(f"{stack.receiver.url}/dailyup/imports/{imp['id']}", headers=ADMIN, timeout=5).json()
    errors = {(e["column"], e["key"]) for e in detail["row_errors"]}
    assert ("Geburtsdatum", second["Kundennummer"]) in errors
    assert any("duplicate" in e["message"] and e["key"] == rows[2]["Kundennummer"] for e in detail["row_errors"])
    assert imp["deltas"] == {"customer.changed": 1}, imp["deltas"]
    wait_for(lambda: customers_in_zoho(stack)[first["Kundennummer"]].get("Phone") == "+49 30 111", timeout=30,
             what="the valid change")
    in_zoho = customers_in_zoho(stack)
    street_field = "Mailing_Street" if first["Personentyp"] == "natuerlich" else "Billing_Street"
    assert in_zoho[first["Kundennummer"]][street_field] == "Große Straße 1\nHinterhaus; 2. OG"
    # The row with the error and the duplicate kept what they had: not changed, not deleted.
    assert in_zoho[second["Kundennummer"]].get("Phone") == second.get("Telefon")
    assert in_zoho[rows[2]["Kundennummer"]].get("Phone") == rows[2].get("Telefon")
    assert not any(r.get("Ameise_Status") == "geloescht" for r in in_zoho.values())
    assert stack.zoho_state.credits_used - credits == 1

    # Each table can be downloaded as CSV a spreadsheet opens.
    csv_answer = requests.get(f"{stack.receiver.url}/dailyup/imports/{imp['id']}/kunden.csv", headers=ADMIN, timeout=10)
    assert csv_answer.status_code == 200 and csv_answer.headers["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(csv_answer.content.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert table[0][:2] == ["Kundennummer", "Vermittlernummer"] and table[0][-1] == "Bemerkung"
    assert len(table) == 1 + 40 - 1                                            # the invalid row is not in it
    errors_csv = requests.get(f"{stack.receiver.url}/dailyup/imports/{imp['id']}/errors.csv", headers=ADMIN, timeout=10)
    assert errors_csv.status_code == 200 and "Geburtsdatum" in errors_csv.content.decode("utf-8-sig")
    assert requests.get(f"{stack.receiver.url}/dailyup/imports/{imp['id']}/kunden.csv", timeout=5).status_code == 401


def test_changes_made_by_the_crm_do_not_come_back_but_changes_in_ameise_do(make_stack):
    stack = make_stack()          # seeded: Erika is in Zoho and Ameise
    erika = stack.demo_ids["zoho"]["Erika Mustermann"]

    def deliver_from_ameise(count: int) -> dict:
        """Ameise's delivery of day ``count`` (one day after the other)."""
        day = date(2026, 11, 22) + timedelta(days=count)
        answer = requests.get(f"{stack.ameise.url}/_sim/dailyup?date={day}", timeout=5)
        name = answer.headers["Content-Disposition"].split('"')[1]
        upload = requests.post(f"{stack.receiver.url}/dailyup/deliveries", headers=UPLOAD,
                               files={"file": (name, answer.content)}, timeout=10)
        assert upload.status_code == 202, upload.text
        return wait_imported(stack, count)

    first = deliver_from_ameise(1)
    assert first["state"] == "published"
    wait_for(lambda: stack.zoho_state.get("Contacts", erika).get("Salutation") == "Frau", timeout=30,
             what="the first delivery in Zoho")
    wait_applied(stack, first)   # every delta of it, so no late upsert is counted below

    # A user edits Erika in the CRM: the change goes to Ameise ...
    requests.patch(f"{stack.zoho.url}/_sim/records/Contacts/{erika}", json={"Phone": "+49 221 7654321"}, timeout=5)
    wait_for(lambda: contact(stack.ameise_state.customers["5001234567"], "telefon") == "+49 221 7654321",
             what="the CRM change in Ameise")
    stack.zoho_state.wait_idle(5)
    credits = stack.zoho_state.credits_used
    # ... and the next DailyUp, which carries it, does not send it back to the CRM.
    second = deliver_from_ameise(2)
    assert second["deltas"].get("customer.changed", 0) == 0 and second["deltas"].get("suppressed", 0) >= 1, second
    assert stack.zoho_state.credits_used == credits

    # A change made in Ameise itself does reach the CRM.
    requests.patch(f"{stack.ameise.url}/_sim/kunden/5001234567", json={"Kontaktdaten": [{"Kontext": "privat", "Typ": "mobil", "Value": "+49 170 1234567"}]}, timeout=5)
    third = deliver_from_ameise(3)
    assert third["deltas"].get("customer.changed") == 1, third
    wait_for(lambda: stack.zoho_state.get("Contacts", erika).get("Mobile") == "+49 170 1234567", timeout=30,
             what="the Ameise change in the CRM")

