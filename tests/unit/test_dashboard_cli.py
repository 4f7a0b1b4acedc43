"""``syncbridge users``: the first admin and every later change from the command line, audited."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from syncbridge.bootstrap import build_operators
from syncbridge.cli import main
from syncbridge.config import Settings


@pytest.fixture
def users(database_url):
    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(main, ["users", *args], input=input, env={"SYNCBRIDGE_DATABASE_URL": database_url},
                             catch_exceptions=False)

    return run


def operators(database_url):
    return build_operators(Settings.from_env({}, database_url=database_url))


def test_the_first_admin_is_created_from_the_command_line(users, database_url):
    result = users("create", "chefin", "--role", "admin", input="sicheres-passwort\nsicheres-passwort\n")
    assert result.exit_code == 0, result.output
    assert "created chefin (admin)" in result.output
    ops = operators(database_url)
    assert ops.sign_in("chefin", "sicheres-passwort", "127.0.0.1").operator.role == "admin"
    [entry] = ops.audit_entries()
    assert entry.action == "user.created" and entry.actor.startswith("cli")


def test_list_set_role_set_password_and_delete(users, database_url):
    users("create", "chefin", "--role", "admin", "--password-stdin", input="sicheres-passwort\n")
    users("create", "azubi", "--password-stdin", input="azubi-passwort\n")
    listed = users("list").output
    assert "chefin" in listed and "admin" in listed and "azubi" in listed and "viewer" in listed

    assert users("set-role", "azubi", "operator").exit_code == 0
    assert users("set-password", "azubi", "--password-stdin", input="neues-passwort\n").exit_code == 0
    ops = operators(database_url)
    assert ops.sign_in("azubi", "neues-passwort", "127.0.0.1").operator.role == "operator"
    assert users("delete", "azubi", "--yes").exit_code == 0
    assert operators(database_url).find("azubi") is None
    actions = [e.action for e in operators(database_url).audit_entries()]
    assert actions[:3] == ["user.deleted", "user.password_set", "user.role_changed"]


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (("create", "x y", "--password-stdin"), "long-enough-1\n", "a username has"),
    (("create", "anna", "--password-stdin"), "kurz\n", "at least 10 characters"),
    (("set-role", "niemand", "admin"), None, "no user niemand"),
])
def test_a_refused_change_is_one_clear_line(users, args, stdin, message):
    result = users(*args, input=stdin)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: ") and message in result.output


def test_the_last_admin_stays(users):
    users("create", "chefin", "--role", "admin", "--password-stdin", input="sicheres-passwort\n")
    result = users("delete", "chefin", "--yes")
    assert result.exit_code == 1 and "last admin" in result.output
