"""`syncbridge check` against the HTTP simulators of Zoho CRM and Ameise, and `syncbridge status` after a worker's check."""
from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from simulators.ameise import AmeiseState, create_ameise_app
from simulators.server import ServerThread
from simulators.stack import AMEISE_API_PATH
from simulators.zoho import ZohoState, create_zoho_app
from syncbridge.adapters.db import migrate
from syncbridge.adapters.db.sql import SqlStore
from syncbridge.cli import main
from syncbridge.handlers.preflight import Finding, PreflightReport, record_preflight

UNREACHABLE = "http://127.0.0.1:1"


@pytest.fixture
def zoho_state() -> ZohoState:
    return ZohoState()


@pytest.fixture
def systems(zoho_state):
    with ServerThread(create_zoho_app(zoho_state)) as zoho, ServerThread(create_ameise_app(AmeiseState())) as ameise:
        yield zoho.url, ameise.url


@pytest.fixture
def env(systems, tmp_path, monkeypatch) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith("SYNCBRIDGE_"):
            monkeypatch.delenv(name)
    zoho, ameise = systems
    environ = {"SYNCBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'syncbridge.db'}",
               "SYNCBRIDGE_ZOHO_ACCOUNTS_URL": zoho, "SYNCBRIDGE_AMEISE_AUTH_URL": ameise,
               "SYNCBRIDGE_AMEISE_API_URL": ameise + AMEISE_API_PATH, "SYNCBRIDGE_AMEISE_VERMITTLER": "A1B2C3"}
    migrate.upgrade(environ["SYNCBRIDGE_DATABASE_URL"])
    return environ


def cli(env: dict[str, str], *args: str, **more: str):
    return CliRunner().invoke(main, list(args), env={**env, **more}, prog_name="syncbridge")


@pytest.fixture
def connected(env) -> dict[str, str]:
    result = cli(env, "connect", "ameise", "--auto-consent")
    assert result.exit_code == 0, result.output
    return env


def assert_no_traceback(result) -> None:
    assert isinstance(result.exception, SystemExit) or result.exception is None, repr(result.exception)
    assert "Traceback" not in result.output


def test_a_complete_set_up_passes(connected):
    result = cli(connected, "check")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1] == "0 blocking, 1 warning: CRM -> Ameise ready, Ameise -> CRM ready"
    assert not any(line.startswith("BLOCKING") for line in lines)
    assert any(line.startswith("NOTE") and "cannot be verified before a first write" in line for line in lines)


def test_a_non_unique_kundennummer_is_one_line_with_what_to_do_and_exits_1(connected, zoho_state):
    zoho_state.set_field("Accounts", "Kundennummer", unique=False)

    result = cli(connected, "check")

    assert result.exit_code == 1, result.output
    assert_no_traceback(result)
    [line] = [line for line in result.output.splitlines() if line.startswith("BLOCKING")]
    assert line.startswith("BLOCKING [Ameise -> CRM] Accounts.Kundennummer: ")
    assert "-> tick 'Do not allow duplicate values' for Kundennummer in Accounts" in line
    assert result.output.splitlines()[-1].endswith("CRM -> Ameise ready, Ameise -> CRM PAUSED")


def test_json_for_scripts(connected, zoho_state):
    zoho_state.drop_field("Contacts", "Geschlecht")

    result = cli(connected, "check", "--json")

    assert result.exit_code == 1
    outcome = json.loads(result.output)
    assert outcome["ok"] is False
    assert outcome["directions"] == {"crm_to_ameise": "paused", "ameise_to_crm": "ready"}
    [blocking] = [f for f in outcome["findings"] if f["severity"] == "blocking"]
    assert blocking["subject"] == "Contacts.Geschlecht" and blocking["directions"] == ["crm_to_ameise"]


def test_one_direction_only(connected, zoho_state):
    zoho_state.drop_field("Contacts", "Geschlecht")

    result = cli(connected, "check", "--direction", "ameise_to_crm")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "all checks passed: Ameise -> CRM ready"


def test_ameise_not_connected(env):
    result = cli(env, "check")

    assert result.exit_code == 1
    [line] = [line for line in result.output.splitlines() if line.startswith("BLOCKING")]
    assert line.startswith("BLOCKING [CRM -> Ameise] Ameise: ") and "syncbridge connect ameise" in line


def test_unreachable_systems_are_clear_lines_not_tracebacks(connected):
    result = cli(connected, "check", SYNCBRIDGE_ZOHO_ACCOUNTS_URL=UNREACHABLE,
                 SYNCBRIDGE_AMEISE_API_URL=UNREACHABLE + AMEISE_API_PATH)

    assert result.exit_code == 1
    assert_no_traceback(result)
    blocking = [line for line in result.output.splitlines() if line.startswith("BLOCKING")]
    assert len(blocking) == 2, result.output
    assert blocking[0].startswith("BLOCKING [CRM -> Ameise, Ameise -> CRM] Zoho CRM: cannot be reached")
    assert blocking[1].startswith("BLOCKING [CRM -> Ameise] Ameise: cannot be reached")


def test_an_outdated_database_is_one_error_line(env, tmp_path):
    result = cli(env, "check", SYNCBRIDGE_DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")

    assert result.exit_code == 1
    assert result.output.strip().startswith("Error: ") and len(result.output.strip().splitlines()) == 1


def test_status_says_a_direction_is_paused_by_its_failing_check(env):
    store = SqlStore.from_url(env["SYNCBRIDGE_DATABASE_URL"])
    failing = PreflightReport((Finding("blocking", ("crm_to_ameise",), "Contacts.Geschlecht", "the field does not exist",
                                       "create it"),))
    record_preflight(store, "crm_to_ameise", failing)
    record_preflight(store, "ameise_to_crm", failing)      # blocks the other direction only: passes

    result = cli(env, "status")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("preflight    CRM -> Ameise paused: preflight failing: Contacts.Geschlecht: the field "
                               "does not exist (since ") for line in lines), result.output
    assert any(line.startswith("preflight    Ameise -> CRM passed (") for line in lines), result.output


def test_status_before_any_worker_checked(env):
    result = cli(env, "status")

    assert "preflight    CRM -> Ameise not checked yet" in result.output


def test_the_recorded_state_is_what_a_worker_found(env):
    # record_preflight writes the line `syncbridge status` shows (the worker side is tested in the e2e suite).
    store = SqlStore.from_url(env["SYNCBRIDGE_DATABASE_URL"])
    report = PreflightReport((Finding("blocking", ("ameise_to_crm",), "Deals.Stage", "the picklist lacks values",
                                      "add them"),))
    record_preflight(store, "ameise_to_crm", report)

    result = cli(env, "status")

    assert "preflight    Ameise -> CRM paused: preflight failing: Deals.Stage: the picklist lacks values" in result.output
