"""`syncbridge link` against the Zoho simulator over HTTP and a DailyUp snapshot on SQLite."""
from __future__ import annotations

import csv
import io
import os
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import insert

from simulators.server import ServerThread
from simulators.zoho import ZohoState, create_zoho_app
from syncbridge.adapters.db import migrate
from syncbridge.adapters.db.linking import SNAPSHOT
from syncbridge.adapters.db.sql import SqlStore
from syncbridge.cli import main
from tests.support.returns import company, contract, person


@pytest.fixture
def zoho_state() -> ZohoState:
    return ZohoState()


@pytest.fixture
def env(zoho_state, tmp_path, monkeypatch) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith("SYNCBRIDGE_"):
            monkeypatch.delenv(name)
    with ServerThread(create_zoho_app(zoho_state)) as zoho:
        url = f"sqlite:///{tmp_path / 'syncbridge.db'}"
        migrate.upgrade(url)
        yield {"SYNCBRIDGE_DATABASE_URL": url, "SYNCBRIDGE_ZOHO_ACCOUNTS_URL": zoho.url}


def cli(env: dict[str, str], *args: str):
    result = CliRunner().invoke(main, list(args), env=env, prog_name="syncbridge")
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def deliver(env: dict[str, str], rows: dict[tuple[str, str], dict]) -> None:
    store = SqlStore.from_url(env["SYNCBRIDGE_DATABASE_URL"])
    with store.engine.begin() as conn:
        conn.execute(insert(SNAPSHOT), [{"table": table, "key": key, "hash": "h", "data": data, "deleted": False,
                                         "import_id": None, "updated_at": datetime.now(UTC)}
                                        for (table, key), data in rows.items()])
    store.engine.dispose()


@pytest.fixture
def portfolio(env, zoho_state) -> dict[str, str]:
    ids = {
        "erika": zoho_state.seed("Contacts", {"First_Name": "Erika", "Last_Name": "Mustermann",
                                              "Email": "kunde5001@example.de", "Date_of_Birth": "1964-08-12"}),
        "twin_a": zoho_state.seed("Contacts", {"First_Name": "Juergen", "Last_Name": "SCHAEFER",
                                               "Date_of_Birth": "1964-08-12"}),
        "twin_b": zoho_state.seed("Contacts", {"First_Name": "Juergen", "Last_Name": "SCHAEFER",
                                               "Date_of_Birth": "1964-08-12", "Mailing_Zip": "80331"}),
        "bau": zoho_state.seed("Accounts", {"Account_Name": "Muster Bau 5003", "Billing_Code": "01147"}),
        "stranger": zoho_state.seed("Contacts", {"First_Name": "Zoe", "Last_Name": "Zett"}),
    }
    deliver(env, {("kunden", "5001"): person("5001", Nachname="Mustermann"),
                  ("kunden", "5002"): person("5002", Vorname="Jürgen", Nachname="Schäfer"),
                  ("kunden", "5003"): company("5003"), ("kunden", "5004"): person("5004", Nachname="Neu", Email=None),
                  ("vertraege", "V1"): contract("V1", "5001")})
    return ids


def test_help_names_every_step(env):
    result = cli(env, "link", "--help")
    assert result.exit_code == 0
    for command in ("propose", "list", "accept", "reject", "report"):
        assert command in result.output


def test_report_is_a_dry_run_in_csv_and_xlsx(env, portfolio, zoho_state, tmp_path):
    result = cli(env, "link", "report", "--csv", str(tmp_path / "r.csv"), "--xlsx", str(tmp_path / "r.xlsx"))
    assert result.exit_code == 0, result.output
    assert "certain 2" in result.output and "ambiguous 1" in result.output
    text = (tmp_path / "r.csv").read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert sorted({r["category"] for r in rows}) == ["ambiguous", "certain", "unmatched_ameise", "unmatched_crm"]
    assert {r["kundennummer_or_vertragsnummer"] for r in rows if r["category"] == "unmatched_ameise"} == {"5004", "V1"}
    assert {r["zoho_id"] for r in rows if r["category"] == "unmatched_crm"} == {portfolio["stranger"]}
    sheet = load_workbook(tmp_path / "r.xlsx").active
    assert sheet.max_row == len(rows) + 1
    # nothing written: no link, no proposal, the CRM untouched
    assert cli(env, "link", "list").exit_code == 1
    assert not any(r.get("Kundennummer") for r in zoho_state.records("Contacts"))


def test_propose_accept_certain_then_decide_the_ambiguous_pair(env, portfolio, zoho_state):
    proposed = cli(env, "link", "propose", "--by", "anna")
    assert proposed.exit_code == 0, proposed.output
    assert "certain 2" in proposed.output and "ambiguous 1" in proposed.output
    assert "CRM Contacts" in proposed.output     # progress

    listed = cli(env, "link", "list", "--status", "ambiguous")
    lines = [line for line in listed.output.splitlines() if "ambiguous" in line]
    assert len(lines) == 2 and all("5002" in line for line in lines)
    ambiguous_ids = [int(line.split()[0]) for line in lines]

    accepted = cli(env, "link", "accept", "--certain", "--by", "anna")
    assert accepted.exit_code == 0 and "accepted 2 certain proposals" in accepted.output
    numbers = {r["id"]: r.get("Kundennummer") for r in zoho_state.records("Contacts")}
    numbers.update({r["id"]: r.get("Kundennummer") for r in zoho_state.records("Accounts")})
    assert (numbers[portfolio["erika"]], numbers[portfolio["bau"]]) == ("5001", "5003")
    assert numbers[portfolio["twin_a"]] is None

    assert cli(env, "link", "reject", str(ambiguous_ids[0])).exit_code == 0
    assert cli(env, "link", "accept", str(ambiguous_ids[1])).exit_code == 0
    assert {r["id"]: r.get("Kundennummer") for r in zoho_state.records("Contacts")}[portfolio["twin_b"]] == "5002"
    store = SqlStore.from_url(env["SYNCBRIDGE_DATABASE_URL"])
    assert store.find_link("customer", ameise_id="5002").zoho_id == portfolio["twin_b"]
    store.engine.dispose()

    again = cli(env, "link", "accept", str(ambiguous_ids[1]))
    assert again.exit_code == 1 and "is accepted, not open" in again.output
    missing = cli(env, "link", "accept")
    assert missing.exit_code == 2 and "give proposal IDS or --certain" in missing.output


def test_an_unreachable_crm_is_one_error_line(env, portfolio):
    result = cli({**env, "SYNCBRIDGE_ZOHO_ACCOUNTS_URL": "http://127.0.0.1:1"}, "link", "propose")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == "Error: zoho: token request to http://127.0.0.1:1 failed: ConnectionError"
