"""The commands of the operator dashboard: ``dashboard`` (its web process) and ``users`` (who may sign in)."""
from __future__ import annotations

import getpass
import os
import shutil
import sys

import click

from syncbridge.cli.common import EPILOG, database_errors, load_settings, main
from syncbridge.ports import ROLES

# The path without its query string, no referrer or user agent: nothing personal in a log line.
ACCESS_LOG = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'


@main.command(epilog=EPILOG)
@click.option("--bind", default="0.0.0.0:8080", show_default=True, help="Address of the dashboard.")
@click.option("--workers", "web_workers", default=2, show_default=True, help="gunicorn worker processes.")
@click.option("--threads", default=4, show_default=True, help="Threads per worker process.")
def dashboard(bind: str, web_workers: int, threads: int) -> None:
    """Run the operator dashboard under gunicorn (its own process, apart from the webhook receiver)."""
    from syncbridge.bootstrap import database_up_to_date

    settings = load_settings()
    with database_errors(settings):
        if not database_up_to_date(settings):
            raise click.ClickException("the database schema is not up to date: run `syncbridge db upgrade`")
    gunicorn = shutil.which("gunicorn") or os.path.join(os.path.dirname(sys.executable), "gunicorn")
    argv = [gunicorn, "--bind", bind, "--workers", str(web_workers), "--threads", str(threads),
            "--worker-class", "gthread", "--access-logfile", "-", "--access-logformat", ACCESS_LOG,
            "syncbridge.bootstrap:dashboard_app()"]
    os.execv(gunicorn, argv)


@main.group(epilog=EPILOG)
def users() -> None:
    """Who may sign in to the dashboard, and with which role (viewer, operator, admin)."""


def _by() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _password(value: str | None) -> str:
    return value if value is not None else click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _run(change):
    from syncbridge.handlers.operators import OperatorError

    settings, operators = _operators_or_fail()
    with database_errors(settings):
        try:
            return change(operators)
        except OperatorError as exc:
            raise click.ClickException(str(exc)) from exc


def _operators_or_fail():
    settings = load_settings()
    with database_errors(settings):
        from syncbridge.bootstrap import build_operators

        return settings, build_operators(settings)


PASSWORD_HELP = "Read the password from standard input (one line) instead of asking for it."


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True,
              help="viewer reads, operator also acts on the sync, admin also manages users.")
@click.option("--password-stdin", is_flag=True, help=PASSWORD_HELP)
def users_create(username: str, role: str, password_stdin: bool) -> None:
    """Create a user (the first one: `syncbridge users create NAME --role admin`)."""
    password = _password(sys.stdin.readline().rstrip("\r\n") if password_stdin else None)
    user = _run(lambda ops: ops.create(username, password, role, by=_by()))
    click.echo(f"created {user.username} ({user.role})")


@users.command("list")
def users_list() -> None:
    """Every user with role and when the password was last set."""
    found = _run(lambda ops: ops.operators())
    if not found:
        click.echo("no users yet: create the first admin with `syncbridge users create NAME --role admin`")
    for user in found:
        click.echo(f"{user.username:<30} {user.role:<9} password set {user.password_changed_at:%Y-%m-%d %H:%M} UTC")


@users.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
def users_set_role(username: str, role: str) -> None:
    """Give a user another role."""
    user = _run(lambda ops: ops.set_role(username, role, by=_by()))
    click.echo(f"{user.username} is now {user.role}")


@users.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help=PASSWORD_HELP)
def users_set_password(username: str, password_stdin: bool) -> None:
    """Set a user's password (ends the user's dashboard sessions)."""
    password = _password(sys.stdin.readline().rstrip("\r\n") if password_stdin else None)
    user = _run(lambda ops: ops.set_password(username, password, by=_by()))
    click.echo(f"password of {user.username} set")


@users.command("delete")
@click.argument("username")
@click.confirmation_option(prompt="Delete this user?")
def users_delete(username: str) -> None:
    """Delete a user of the dashboard (the last admin stays)."""
    _run(lambda ops: ops.delete(username, by=_by()))
    click.echo(f"deleted {username}")
