"""The ``syncbridge`` command, through click's CliRunner, on a fresh SQLite file per test."""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import click
import pytest

from syncbridge.adapters.db import migrate
from syncbridge.adapters.db.sql import SqlStore
from syncbridge.cli import main
from syncbridge.config import Settings
from syncbridge.ports import ActivityEntry
from tests.support.cli import cli, fresh_sqlite_environment

UNREACHABLE_AUTH = "http://127.0.0.1:1"


@pytest.fixture
def database_url(monkeypatch, tmp_path) -> str:
    """A fresh SQLite URL; every other SYNCBRIDGE_* variable of the calling shell is cleared."""
    return fresh_sqlite_environment(monkeypatch, tmp_path)


def assert_clear_failure(result, *expected: str) -> str:
    """The command failed with one ``Error: ...`` line naming ``expected``, and no traceback."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}:\n{result.output}"
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: "), result.output
    for text in expected:
        assert text in lines[0]
    return lines[0]


def every_command(group: click.Group = main, path: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from every_command(command, (*path, name))


COMMANDS = list(every_command())


# ---------------------------------------------------------------- help and settings
def test_main_help_lists_every_command(database_url):
    result = cli("--help")

    assert result.exit_code == 0, result.output
    assert "Keep Zoho CRM and Ameise" in result.output
    for name in main.commands:
        assert f"  {name} " in result.output
    assert "syncbridge settings" in result.output  # the epilog points at the settings


def test_version(database_url):
    result = cli("--version")

    assert result.exit_code == 0
    assert result.output.startswith("syncbridge, version ")


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(path) for path, _ in COMMANDS])
def test_help_of_every_command(database_url, tmp_path, path, command):
    result = cli(*path, "--help")

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: syncbridge {' '.join(path)}")
    summary = (command.help or "").strip().splitlines()[0]
    assert len(summary) > 15 and " ".join(summary.split()) in " ".join(result.output.split())
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.opts[0] in result.output
            assert param.help, f"{param.opts[0]} of `{' '.join(path)}` has no help"
    assert not (tmp_path / "x.db").exists()  # asking for help touches no database


def test_settings_lists_every_variable_with_its_help_and_default(database_url):
    result = cli("settings")

    assert result.exit_code == 0, result.output
    described = Settings.describe()
    assert len(described) > 20
    for setting in described:
        assert f"{setting.env}\n    {setting.help}\n    default: {setting.default or '(empty)'}" in result.output


# ---------------------------------------------------------------- database
def test_db_current_on_an_empty_database_is_not_up_to_date(database_url):
    result = cli("db", "current")

    assert result.exit_code == 0, result.output
    assert "(empty database)" in result.output
    assert "NOT up to date" in result.output and "syncbridge db upgrade" in result.output


def test_db_upgrade_brings_the_database_up_to_date(database_url):
    upgraded = cli("db", "upgrade")
    current = cli("db", "current")

    assert upgraded.exit_code == 0, upgraded.output
    revision = migrate.current(database_url)
    assert revision
    assert upgraded.output.strip() == f"database at revision {revision}"
    assert current.exit_code == 0, current.output
    assert current.output.strip() == f"{revision} (up to date)"


def test_db_upgrade_twice_is_harmless(database_url):
    assert cli("db", "upgrade").exit_code == 0
    again = cli("db", "upgrade")

    assert again.exit_code == 0, again.output
    assert migrate.is_up_to_date(database_url)


# ---------------------------------------------------------------- status
def test_status_before_upgrade_says_so_and_does_not_migrate(database_url):
    result = cli("status")

    assert result.exit_code == 0, result.output
    assert f"database     {database_url} (needs `syncbridge db upgrade`)" in result.output
    assert "broker       in-process (memory://)" in result.output
    assert "not connected" not in result.output  # connections are only read from an up-to-date database
    assert migrate.current(database_url) is None


def test_status_after_upgrade_shows_the_connections(database_url):
    assert cli("db", "upgrade").exit_code == 0
    result = cli("status")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"database     {database_url} (up to date)" in lines
    assert "zoho         not connected" in lines
    assert "ameise       not connected" in lines


def test_status_names_the_broker_without_its_password(database_url):
    result = cli("status", SYNCBRIDGE_BROKER_URL="amqp://sync:s3cret@mq.invalid:5672/prod")

    assert "broker       mq.invalid:5672/prod unreachable: " in result.output
    assert "s3cret" not in result.output


# ---------------------------------------------------------------- activity
AT = [datetime(2024, 6, 11, hour, 0, tzinfo=UTC) for hour in (9, 10, 11)]


@pytest.fixture
def activity_log(database_url):
    """Three entries written through the SQL store: created (ok), retry and failed (errors)."""
    migrate.upgrade(database_url)
    store = SqlStore.from_url(database_url)
    store.log(ActivityEntry("crm_to_ameise", "created", "ok", entity="customer", zoho_module="Contacts",
                            zoho_id="1001", ameise_id="5001234567", event_id="ev-1", at=AT[0]))
    store.log(ActivityEntry("crm_to_ameise", "retry", "error", zoho_module="Contacts", zoho_id="1002",
                            event_id="ev-2", error="ameise 503: Service Unavailable", at=AT[1]))
    store.log(ActivityEntry("crm_to_ameise", "failed", "error", zoho_module="Deals", zoho_id="1002",
                            event_id="ev-3", error="ameise 422 field=Nachname: Nachname fehlt", at=AT[2]))
    return store


def test_activity_lists_every_entry_newest_first(activity_log):
    result = cli("activity")

    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("2024-06-11 11:00:00 crm_to_ameise")
    assert "failed" in lines[0] and "Deals/1002 <-> -" in lines[0] and "Nachname fehlt" in lines[0]
    assert "retry" in lines[1] and "ameise 503: Service Unavailable" in lines[1]
    assert lines[2].startswith("2024-06-11 09:00:00") and "Contacts/1001 <-> 5001234567" in lines[2]


def test_activity_links_synced_records_into_the_ameise_portal(activity_log):
    default = cli("activity", "--zoho-id", "1001")
    app = cli("activity", "--zoho-id", "1001", SYNCBRIDGE_AMEISE_PORTAL_URL="https://ameise.app/")

    assert default.output.strip().endswith("  https://www.maklerinfo.biz/maklerportal/?show=kunde&kunde=5001234567")
    assert app.output.strip().endswith("  https://ameise.app/maklerportal/?show=kunde&kunde=5001234567")
    assert "maklerportal" not in cli("activity", "--result", "error").output   # nothing to link to


def test_activity_filters_by_result(activity_log):
    result = cli("activity", "--result", "error")

    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    assert all(" error " in line for line in lines)
    assert "5001234567" not in result.output


def test_activity_filters_by_zoho_id(activity_log):
    result = cli("activity", "--zoho-id", "1001")

    assert result.exit_code == 0, result.output
    [line] = result.output.strip().splitlines()
    assert "created" in line and "Contacts/1001 <-> 5001234567" in line


def test_activity_as_json_lines(activity_log):
    result = cli("activity", "--json", "--zoho-id", "1002")

    assert result.exit_code == 0, result.output
    entries = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [(e["action"], e["event_id"]) for e in entries] == [("failed", "ev-3"), ("retry", "ev-2")]
    assert entries[0]["error"] == "ameise 422 field=Nachname: Nachname fehlt"
    assert entries[0]["zoho_module"] == "Deals" and entries[0]["result"] == "error"
    assert datetime.fromisoformat(entries[0]["at"]) == AT[2]


def test_activity_filters_combine_with_action_since_and_limit(activity_log):
    since = cli("activity", "--json", "--since", "2024-06-11 10:00:00")
    action = cli("activity", "--json", "--action", "retry")
    limit = cli("activity", "--json", "--limit", "1")

    assert [json.loads(line)["event_id"] for line in since.output.strip().splitlines()] == ["ev-3", "ev-2"]
    assert [json.loads(line)["event_id"] for line in action.output.strip().splitlines()] == ["ev-2"]
    assert [json.loads(line)["event_id"] for line in limit.output.strip().splitlines()] == ["ev-3"]


@pytest.mark.parametrize("filters", [("--zoho-id", "9999"), ("--result", "ok", "--zoho-id", "1002"), ("--json", "--action", "deleted")])
def test_activity_says_when_nothing_matches(activity_log, filters):
    result = cli("activity", *filters)

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.strip() == "no activity matches"


def test_activity_on_an_empty_log_says_nothing_matches(database_url):
    migrate.upgrade(database_url)
    result = cli("activity")

    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "no activity matches"


# ---------------------------------------------------------------- processes that need RabbitMQ
@pytest.mark.parametrize("args", [("worker", "crm-to-ameise"), ("worker", "ameise-to-crm"), ("worker", "dailyup"),
                                  ("web",)], ids=["crm-to-ameise", "ameise-to-crm", "dailyup", "web"])
def test_processes_refuse_the_in_process_broker(database_url, args):
    result = cli(*args)

    assert_clear_failure(result, "SYNCBRIDGE_BROKER_URL", "syncbridge run")


def test_worker_refuses_an_unknown_name(database_url):
    result = cli("worker", "zoho-to-nowhere")

    assert result.exit_code == 2
    assert "'crm-to-ameise'" in result.output and "'dailyup'" in result.output
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- malformed settings
@pytest.mark.parametrize(
    "args",
    [("status",), ("db", "current"), ("db", "upgrade"), ("activity",), ("worker", "crm-to-ameise"), ("web",),
     ("connect", "ameise", "--code", "x")],
    ids=lambda args: " ".join(args),
)
def test_a_malformed_setting_is_one_clear_line(database_url, args):
    result = cli(*args, SYNCBRIDGE_MAX_BODY_BYTES="lots")

    assert_clear_failure(result, "SYNCBRIDGE_MAX_BODY_BYTES", "'lots'")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SYNCBRIDGE_ENV", "staging"), ("SYNCBRIDGE_PUBLISH_TIMEOUT", "0"), ("SYNCBRIDGE_ZOHO_MODULES", "Contacts=robot"),
     ("SYNCBRIDGE_ALLOW_HTTP_OAUTH", "maybe"), ("SYNCBRIDGE_PREFETCH_COUNT", "-1")],
)
def test_every_kind_of_malformed_setting_is_one_clear_line(database_url, variable, value):
    result = cli("status", **{variable: value})

    assert_clear_failure(result, variable)


def test_production_without_its_secrets_is_one_clear_line(database_url):
    result = cli("status", SYNCBRIDGE_ENV="production")

    line = assert_clear_failure(result, "production mode needs")
    assert "SYNCBRIDGE_BROKER_URL" in line and "SYNCBRIDGE_AMEISE_CLIENT_SECRET" in line


# ---------------------------------------------------------------- connect
def test_connect_ameise_against_an_unreachable_auth_server(database_url):
    assert cli("db", "upgrade").exit_code == 0
    result = cli("connect", "ameise", "--code", "x", SYNCBRIDGE_AMEISE_AUTH_URL=UNREACHABLE_AUTH,
                 SYNCBRIDGE_HTTP_TIMEOUT="2")

    line = assert_clear_failure(result, "connecting Ameise failed")
    assert "could not be reached" in line
    assert "connected for employee" not in result.output


def test_connect_ameise_with_a_redirect_url_fails_the_same_way(database_url):
    redirect = "http://127.0.0.1:8000/connect/ameise/callback?code=abc&state=1234"
    assert cli("db", "upgrade").exit_code == 0
    result = cli("connect", "ameise", "--code", redirect, SYNCBRIDGE_AMEISE_AUTH_URL=UNREACHABLE_AUTH,
                 SYNCBRIDGE_HTTP_TIMEOUT="2")

    assert_clear_failure(result, "connecting Ameise failed")


# ---------------------------------------------------------------- database errors
def test_activity_before_upgrade_is_one_clear_line(database_url):
    result = cli("activity")

    assert_clear_failure(result, "syncbridge db upgrade")


@pytest.mark.parametrize("args", [("db", "current"), ("db", "upgrade"), ("activity",)], ids=lambda args: " ".join(args))
def test_an_unreachable_database_is_one_clear_line(database_url, tmp_path, args):
    result = cli(*args, SYNCBRIDGE_DATABASE_URL=f"sqlite:///{tmp_path}/missing-dir/x.db")

    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    assert "Error: " in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------- dailyup
@pytest.fixture
def dailyup_env(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNCBRIDGE_DAILYUP_DIR", str(tmp_path / "dailyup"))
    assert cli("db", "upgrade").exit_code == 0
    return tmp_path


def test_dailyup_generate_import_status_diff_and_export(dailyup_env):
    tmp_path = dailyup_env
    first = cli("dailyup", "generate", str(tmp_path / "out"), "--customers", "25").output.strip()
    second = cli("dailyup", "generate", str(tmp_path / "out"), "--customers", "25", "--generation", "1").output.strip()

    imported = cli("dailyup", "import", first)
    assert imported.exit_code == 0, imported.output
    assert "customer.created 25" in imported.output
    assert "the deltas stay in the outbox" in imported.output   # no broker: nothing is lost in memory://

    diff = cli("dailyup", "diff", second, "--json")
    assert diff.exit_code == 0, diff.output
    figures = json.loads(diff.output.strip().splitlines()[-1])
    assert figures["state"] != "rejected" and sum(figures["deltas"].values()) > 0

    status = cli("dailyup", "status")
    assert status.exit_code == 0 and "DailyUp_100200_20261102.zip" in status.output and "accepted" in status.output
    assert "20261103" not in status.output                      # the dry run stored nothing

    again = cli("dailyup", "import", first)
    assert again.exit_code == 0 and again.stdout.startswith("duplicate: already imported")
    assert "deltas" not in again.stdout

    exported = cli("dailyup", "export", "kunden", "--output", str(tmp_path / "kunden.csv"))
    assert exported.exit_code == 0, exported.output
    lines = (tmp_path / "kunden.csv").read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("Kundennummer;") and len(lines) >= 26


def test_dailyup_import_of_a_broken_file_is_one_clear_failure(dailyup_env):
    tmp_path = dailyup_env
    good = cli("dailyup", "generate", str(tmp_path / "out"), "--customers", "25").output.strip()
    broken = tmp_path / "DailyUp_100200_20261110.zip"
    data = open(good, "rb").read()
    broken.write_bytes(data[: len(data) // 2])

    result = cli("dailyup", "import", str(broken))

    assert result.exit_code == 1 and result.stdout.startswith("rejected: ") and "not a readable ZIP" in result.stdout
    assert "Traceback" not in result.output
    misnamed = tmp_path / "kunden.zip"
    misnamed.write_bytes(data)
    assert cli("dailyup", "import", str(misnamed)).stdout.startswith("rejected: ")
    assert cli("dailyup", "export", "kunden", "--import", "99").output.startswith("Error: no import 99")
    assert "no table" in cli("dailyup", "export", "nothing").output


def test_every_procfile_worker_names_a_worker_the_command_knows(database_url):
    from pathlib import Path

    from syncbridge.config import WORKERS

    procfile = (Path(__file__).resolve().parents[2] / "Procfile").read_text().splitlines()
    workers = dict(line.split(": ", 1) for line in procfile if line.startswith("worker-"))

    assert {f"worker-{name}" for name in WORKERS} == set(workers)
    for process, command in workers.items():
        assert command == f"syncbridge worker {process.removeprefix('worker-')}"
        assert cli(*command.split()[1:3], "--help").exit_code == 0


# ---------------------------------------------------------------- one clear line instead of a traceback
def refused_broker() -> str:
    """A broker URL on a local port nobody listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{port}//"


MAPPED_COMMANDS = [("worker", "crm-to-ameise"), ("worker", "dailyup"), ("run", "--port", "1")]


@pytest.mark.parametrize("args", MAPPED_COMMANDS, ids=lambda args: " ".join(args))
@pytest.mark.parametrize("problem", ["missing", "invalid", "unknown-key"])
def test_a_missing_or_invalid_mapping_file_is_one_clear_line(database_url, tmp_path, args, problem):
    assert cli("db", "upgrade").exit_code == 0
    mapping = tmp_path / "mapping.toml"
    if problem == "invalid":
        mapping.write_text("[customer.to_ameise\nfields = [", encoding="utf-8")
    elif problem == "unknown-key":
        mapping.write_text("[customer.sideways]\nfields = []\n", encoding="utf-8")

    result = cli(*args, SYNCBRIDGE_MAPPING_FILE=str(mapping), SYNCBRIDGE_BROKER_URL=refused_broker())

    line = assert_clear_failure(result, "SYNCBRIDGE_MAPPING_FILE", str(mapping))
    if problem == "missing":
        assert "No such file" in line


def test_connect_to_a_database_that_does_not_exist_is_one_clear_line(database_url):
    from sqlalchemy.engine import make_url

    from tests.conftest import POSTGRES_ADMIN_URL

    missing = make_url(POSTGRES_ADMIN_URL).set(database="syncbridge_no_such_database").render_as_string()
    result = cli("connect", "ameise", "--auto-consent", SYNCBRIDGE_DATABASE_URL=missing)

    assert_clear_failure(result, "syncbridge_no_such_database", "does not exist")


@pytest.mark.parametrize("args", [
    ("status",), ("activity",), ("db", "upgrade"), ("db", "current"), ("connect", "ameise", "--code", "x"),
    ("worker", "crm-to-ameise"), ("run", "--port", "1"), ("dailyup", "status"), ("dailyup", "publish"),
    ("dlq", "list"),
], ids=lambda args: " ".join(args))
def test_a_database_url_without_its_driver_is_one_clear_line(database_url, args):
    result = cli(*args, SYNCBRIDGE_DATABASE_URL="mysql://sync@localhost/syncbridge", SYNCBRIDGE_BROKER_URL=refused_broker())

    line = assert_clear_failure(result, "SYNCBRIDGE_DATABASE_URL", "mysql://", "driver is not installed")
    assert "MySQLdb" in line


@pytest.mark.parametrize(("url", "says"), [
    ("foo://broker.example//", "No such transport: foo"),
    ("amqp://guest:s3cret@127.0.0.1:port//", "Port could not be cast"),
])
def test_a_malformed_broker_url_is_one_clear_line(database_url, url, says):
    assert cli("db", "upgrade").exit_code == 0

    for args in (("dailyup", "publish"), ("worker", "crm-to-ameise"), ("status",)):
        line = assert_clear_failure(cli(*args, SYNCBRIDGE_BROKER_URL=url), "SYNCBRIDGE_BROKER_URL", says)
        assert "s3cret" not in line


@pytest.fixture
def waiting_deltas(dailyup_env):
    """A delivery imported without a broker: its 25 created customers wait in the outbox."""
    delivery = cli("dailyup", "generate", str(dailyup_env / "out"), "--customers", "25").output.strip()
    assert cli("dailyup", "import", delivery).exit_code == 0
    return dailyup_env


def test_dailyup_publish_to_an_unreachable_broker_is_one_clear_line(waiting_deltas):
    result = cli("dailyup", "publish", SYNCBRIDGE_BROKER_URL=refused_broker())

    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output and result.stdout == ""
    line = result.stderr.strip().splitlines()[-1]                     # after the progress lines
    assert line.startswith("Error: rabbitmq: ") and "Connection refused" in line
    assert re.search(r"; \d+ deltas wait in the outbox$", line), line


def test_dailyup_publish_without_a_broker_says_it_needs_one(waiting_deltas):
    assert_clear_failure(cli("dailyup", "publish"), "SYNCBRIDGE_BROKER_URL")


def test_dailyup_import_fails_when_its_deltas_could_not_be_published(dailyup_env):
    delivery = cli("dailyup", "generate", str(dailyup_env / "out"), "--customers", "25").output.strip()

    result = cli("dailyup", "import", delivery, SYNCBRIDGE_BROKER_URL=refused_broker())

    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert result.stdout.startswith("accepted: ")          # the import itself is kept ...
    last = result.output.strip().splitlines()[-1]
    assert re.match(r"Error: publishing failed: \d+ deltas wait in the outbox", last)   # ... but nothing was sent
    assert "syncbridge dailyup publish" in last


def test_status_says_an_unreachable_broker_is_unreachable(database_url):
    assert cli("db", "upgrade").exit_code == 0

    result = cli("status", SYNCBRIDGE_BROKER_URL=refused_broker())

    assert result.exit_code == 1, result.output
    broker = next(line for line in result.output.splitlines() if line.startswith("broker"))
    assert "unreachable: ConnectionRefusedError" in broker
    assert "zoho         not connected" in result.output       # the rest is still shown


def test_status_says_a_reachable_broker_is_reachable(database_url, rabbitmq_url):
    assert cli("db", "upgrade").exit_code == 0

    result = cli("status", SYNCBRIDGE_BROKER_URL=rabbitmq_url)

    assert result.exit_code == 0, result.output
    assert "broker       127.0.0.1:5672// (reachable)" in result.output.splitlines()


UNMIGRATED_COMMANDS = [
    ("dailyup", "import", "{delivery}"), ("dailyup", "diff", "{delivery}"), ("dailyup", "status"),
    ("dailyup", "export", "kunden"), ("dailyup", "publish"), ("activity",), ("dlq", "list"),
    ("connect", "ameise", "--code", "x"), ("worker", "crm-to-ameise"), ("worker", "dailyup"),
]


@pytest.mark.parametrize("args", UNMIGRATED_COMMANDS, ids=lambda args: " ".join(args))
def test_every_command_refuses_a_database_that_is_not_migrated(database_url, tmp_path, monkeypatch, args):
    from syncbridge.dailyup.generate import write_delivery

    monkeypatch.setenv("SYNCBRIDGE_DAILYUP_DIR", str(tmp_path / "dailyup"))
    delivery = write_delivery(tmp_path, customers=5)

    result = cli(*(a.format(delivery=delivery) for a in args), SYNCBRIDGE_BROKER_URL=refused_broker())

    assert_clear_failure(result, "run `syncbridge db upgrade`")
    assert migrate.current(database_url) is None                     # nothing migrated behind the user's back
    status = cli("status")
    assert "needs `syncbridge db upgrade`" in status.output and migrate.current(database_url) is None


def test_dailyup_export_takes_the_newest_accepted_import(dailyup_env):
    tmp_path = dailyup_env
    good = cli("dailyup", "generate", str(tmp_path / "out"), "--customers", "25").output.strip()
    assert cli("dailyup", "import", good).exit_code == 0
    broken = tmp_path / "DailyUp_100200_20261110.zip"
    data = open(good, "rb").read()
    broken.write_bytes(data[: len(data) // 2])
    assert cli("dailyup", "import", str(broken)).exit_code == 1    # the newest import is a rejected one

    exported = cli("dailyup", "export", "kunden", "--output", str(tmp_path / "kunden.csv"))

    assert exported.exit_code == 0, exported.output
    assert "wrote kunden of import 1 " in exported.output
    lines = (tmp_path / "kunden.csv").read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("Kundennummer;") and len(lines) == 26
    errors = cli("dailyup", "export", "errors")                       # the row errors: of the newest import
    assert errors.exit_code == 0 and errors.output.startswith("\ufefffile;line;column;key;message")


def test_dailyup_export_before_any_accepted_import_is_one_clear_line(dailyup_env):
    assert_clear_failure(cli("dailyup", "export", "kunden"), "no accepted import yet")


# ---------------------------------------------------------------- the demo's hints
@pytest.mark.parametrize(("argv0", "where", "expected"), [
    (".venv/bin/syncbridge", "root", ".venv/bin/syncbridge"),            # make run
    ("{root}/.venv/bin/syncbridge", "root", ".venv/bin/syncbridge"),
    ("{root}/.venv/bin/syncbridge", "elsewhere", "{root}/.venv/bin/syncbridge"),
    ("syncbridge", "elsewhere", "syncbridge"),                             # found on the PATH
    ("{root}/syncbridge/cli/__main__.py", "root", "{python} -m syncbridge.cli"),    # python -m syncbridge.cli
])
def test_the_demo_names_a_command_that_works_from_where_it_was_started(tmp_path, monkeypatch, argv0, where, expected):
    import sys

    from syncbridge.cli.dev import _this_command

    root = tmp_path / "repo"
    (root / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(root if where == "root" else tmp_path / "elsewhere")
    monkeypatch.setattr(sys, "argv", [argv0.format(root=root), "run"])

    assert _this_command() == expected.format(root=root, python=sys.executable)


def test_run_migrates_only_its_own_database(database_url):
    from simulators.stack import free_port

    ports = [str(free_port()) for _ in range(3)]
    result = cli("run", "--port", ports[0], "--zoho-port", ports[1], "--ameise-port", ports[2],
                 "--database-url", database_url)

    assert_clear_failure(result, "run `syncbridge db upgrade`")
    assert migrate.current(database_url) is None


def test_errors_and_status_never_show_the_database_password(database_url):
    from sqlalchemy.engine import make_url

    from tests.conftest import POSTGRES_ADMIN_URL

    url = make_url(POSTGRES_ADMIN_URL).set(password="s3cret", database="syncbridge_no_such_database")
    result = cli("status", SYNCBRIDGE_DATABASE_URL=url.render_as_string(hide_password=False))

    line = assert_clear_failure(result, "syncbridge_no_such_database")
    assert "s3cret" not in line and ":***@" in line


def test_status_shows_the_zoho_api_credits_of_the_last_24_hours_against_the_budget(database_url):
    from datetime import timedelta

    from syncbridge.adapters.db.credits import SqlCreditLedger
    from syncbridge.ports import BACKFILL_PURPOSE, CHECK_PURPOSE, CreditUse

    assert cli("db", "upgrade").exit_code == 0
    store = SqlStore.from_url(database_url)
    ledger, now = SqlCreditLedger(store.engine), datetime.now(UTC)
    ledger.spend(CreditUse("upsert", 37_000, records=370_000, at=now - timedelta(hours=2)))
    ledger.spend(CreditUse("search", 1_200, purpose=BACKFILL_PURPOSE, at=now - timedelta(minutes=3)))
    ledger.spend(CreditUse("field_metadata", 3, purpose=CHECK_PURPOSE, at=now))
    ledger.spend(CreditUse("upsert", 9_000, records=90_000, at=now - timedelta(hours=25)))    # older than 24 h
    store.engine.dispose()

    result = cli("status", SYNCBRIDGE_ZOHO_DAILY_CREDITS="40000")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "credits      38,203 of 40,000 Zoho API credits used in the last 24 h (95.5%)  nearly used up" in lines
    assert "             by purpose: sync 37,000, backfill 1,200, sweep 0, link 0, check 3" in lines
