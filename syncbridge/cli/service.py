"""The commands that run and look after the service: ``web``, ``worker``, ``db``, ``connect``, ``status``, ``activity``, ``settings``."""
from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import click

from syncbridge.cli.common import (
    EPILOG,
    check_mapping,
    database_errors,
    load_settings,
    main,
    without_password,
)
from syncbridge.config import WORKERS, Settings, ameise_deep_link


# ---------------------------------------------------------------------- web / worker
@main.command(epilog=EPILOG)
@click.option("--bind", default="0.0.0.0:8000", show_default=True, help="Address of the receiver.")
@click.option("--workers", "web_workers", default=2, show_default=True, help="gunicorn worker processes.")
@click.option("--connections", default=1000, show_default=True,
              help="Connections one gunicorn worker serves at once (gevent: each a greenlet, not a thread).")
def web(bind: str, web_workers: int, connections: int) -> None:
    """Run the webhook receiver under gunicorn (needs SYNCBRIDGE_BROKER_URL: RabbitMQ)."""
    settings = load_settings()
    if settings.embedded_broker:
        raise click.ClickException(
            "the in-process broker only works inside one process: set SYNCBRIDGE_BROKER_URL, or use `syncbridge run`")
    gunicorn = shutil.which("gunicorn") or os.path.join(os.path.dirname(sys.executable), "gunicorn")
    argv = [gunicorn, "--config", "python:webhooks.gunicorn_config", "--bind", bind, "--workers", str(web_workers),
            "--worker-connections", str(connections), "syncbridge.bootstrap:web_app()"]
    os.execv(gunicorn, argv)


@main.command(epilog=EPILOG)
@click.argument("name", type=click.Choice(WORKERS))
def worker(name: str) -> None:
    """Run one worker NAME until SIGTERM (finishes in-flight work first).

    crm-to-ameise and ameise-to-crm consume their queues; dailyup watches the
    drop folder, imports deliveries and publishes their deltas (run one of it);
    dead-letters archives the dead-letter queue for `syncbridge dlq`.
    """
    from syncbridge.bootstrap import run_worker

    settings = load_settings()
    if settings.embedded_broker:
        raise click.ClickException(
            "the in-process broker only works inside one process: set SYNCBRIDGE_BROKER_URL, or use `syncbridge run`")
    check_mapping(settings)
    with database_errors(settings):
        run_worker(name, settings)



# ---------------------------------------------------------------------- database
@main.group()
def db() -> None:
    """The service's own database."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Migrate to this revision.")
def db_upgrade(revision: str) -> None:
    """Apply the database migrations (the release step)."""
    from syncbridge.bootstrap import database_revision, upgrade_database

    settings = load_settings()
    with database_errors(settings):
        upgrade_database(settings, revision)
        click.echo(f"database at revision {database_revision(settings)}")


@db.command("current")
def db_current() -> None:
    """Show the database's migration revision."""
    from syncbridge.bootstrap import database_revision, database_up_to_date

    settings = load_settings()
    with database_errors(settings):
        revision = database_revision(settings)
        up_to_date = database_up_to_date(settings)
    state = "up to date" if up_to_date else "NOT up to date: run `syncbridge db upgrade`"
    click.echo(f"{revision or '(empty database)'} ({state})")



# ---------------------------------------------------------------------- connections
@main.command()
@click.argument("system", type=click.Choice(["ameise"]))
@click.option("--code", default=None, help="The bare authorization code of a consent you started yourself (not checked "
              "against a state); without it the command starts the consent and checks the address you paste.")
@click.option("--refresh-token", default=None, help="Start from an existing refresh token instead.")
@click.option("--auto-consent", is_flag=True, help="Follow the consent redirect without a browser (the simulator consents at once).")
def connect(system: str, code: str | None, refresh_token: str | None, auto_consent: bool) -> None:
    """Connect an Ameise employee account (OAuth2 authorization code).

    Without options: open the printed address, consent, then paste the whole address
    Ameise sent you to; its ``state`` must be the one made for this consent.
    """
    import hmac
    import secrets

    from syncbridge.bootstrap import bootstrap, build_store

    settings = load_settings()
    with database_errors(settings):
        services = bootstrap(settings, store=build_store(settings, migrate=False))
    oauth = services.ameise_oauth
    try:
        if refresh_token:
            token = oauth.connect_with_refresh_token(refresh_token)
        elif auto_consent:
            from syncbridge.bootstrap import connect_ameise_by_consent

            token = connect_ameise_by_consent(services)
        else:
            if code and ("://" in code or "code=" in code or "state=" in code):
                raise click.ClickException("--code takes the bare code; to paste the whole address you were sent "
                                           "to, run `syncbridge connect ameise` without --code, so that its state "
                                           "can be checked")
            if not code:
                # The state ties the address pasted back to this consent: another one's code is refused.
                state = secrets.token_urlsafe(24)
                click.echo("Open this address, sign in and consent:\n\n  " + oauth.authorization_url(state) + "\n")
                pasted = click.prompt("Then paste the whole address you were sent to").strip()
                if not urlsplit(pasted).query:
                    raise click.ClickException("paste the whole address you were sent to (…?code=…&state=…), "
                                               "not only its code; nothing was connected")
                query = parse_qs(urlsplit(pasted).query)
                given = query.get("state", [""])[0]
                if not hmac.compare_digest(given.encode("utf-8", "replace"), state.encode("utf-8")):
                    raise click.ClickException(
                        "the pasted address does not belong to this consent (its state is missing or differs); "
                        "nothing was connected: run the command again and paste the address it leads to")
                if "error" in query:
                    raise click.ClickException(f"Ameise did not give consent: {query['error'][0]} "
                                               f"{query.get('error_description', [''])[0]}".strip())
                code = query.get("code", [""])[0]
                if not code:
                    raise click.ClickException("the pasted address has no code; nothing was connected")
            token = oauth.exchange_code(code.strip())
    except Exception as exc:  # noqa: BLE001 - turn any failure into one clear line
        describe = getattr(exc, "describe", None)
        raise click.ClickException(f"connecting Ameise failed: {describe() if describe else exc}") from exc
    finally:
        services.close()
    click.echo(f"Ameise connected for employee {token.extra.get('employee_id', '?')}: sync active")


@main.command()
def status() -> None:
    """Show the connections, the database, the broker and the Zoho API credits of the last 24 h at a glance."""
    from syncbridge.bootstrap import build_store, database_up_to_date

    settings = load_settings()
    with database_errors(settings):
        up_to_date = database_up_to_date(settings)
    click.echo(f"database     {without_password(settings.database_url)} "
               f"({'up to date' if up_to_date else 'needs `syncbridge db upgrade`'})")
    broker_problem = _broker_unreachable(settings)
    if settings.embedded_broker:
        click.echo("broker       in-process (memory://)")
    else:
        where = settings.effective_broker_url.split("@")[-1]
        click.echo(f"broker       {where} {'unreachable: ' + broker_problem if broker_problem else '(reachable)'}")
    if up_to_date:
        store = build_store(settings, migrate=False)
        for provider in ("zoho", "ameise"):
            state, detail = store.tokens.status(provider)
            label = {"active": "sync active", "reconnect_needed": "RECONNECT NEEDED",
                     "not_connected": "not connected"}.get(state, state)
            click.echo(f"{provider:<12} {label}{': ' + detail if detail else ''}")
        _preflight_status(store)
        _credit_status(store, settings)
    if broker_problem:
        raise SystemExit(1)


def _preflight_status(store) -> None:
    """One line per sync direction: what its worker's preflight check found last (see `syncbridge check`)."""
    from syncbridge.handlers.preflight import ARROWS, DIRECTIONS, last_recorded

    for direction in DIRECTIONS:
        entry = last_recorded(store, direction)
        if entry is None:
            line = f"{ARROWS[direction]} not checked yet (no worker started; `syncbridge check` checks now)"
        elif entry.result == "ok":
            line = f"{ARROWS[direction]} passed ({entry.at:%Y-%m-%d %H:%M:%S} UTC)"
        else:
            line = f"{entry.error} (since {entry.at:%Y-%m-%d %H:%M:%S} UTC; details: `syncbridge check`)"
        click.echo(f"{'preflight':<12} {line}")


def _credit_status(store, settings: Settings) -> None:
    """The Zoho API credits of the last 24 h against SYNCBRIDGE_ZOHO_DAILY_CREDITS, and their split by purpose."""
    from syncbridge.bootstrap import credit_ledger
    from syncbridge.handlers.credits import credit_summary

    ledger = credit_ledger(store)
    if ledger is None:
        return
    summary = credit_summary(ledger, settings.zoho_daily_credits, datetime.now(UTC))
    warning = "  BUDGET USED UP" if summary.used >= summary.budget else "  nearly used up" if summary.share >= 0.9 else ""
    click.echo(f"{'credits':<12} {summary.used:,} of {summary.budget:,} Zoho API credits used in the last 24 h "
               f"({summary.percent:.1f}%){warning}")
    split = ", ".join(f"{purpose} {credits:,}" for purpose, credits in summary.by_purpose)
    click.echo(f"{'':<12} by purpose: {split}")


def _broker_unreachable(settings: Settings) -> str | None:
    """Why the broker cannot be reached (one line), or None when it answers (or is the in-process one)."""
    if settings.embedded_broker:
        return None
    from syncbridge.bootstrap import broker_connection

    try:
        with broker_connection(settings) as connection:
            connection.ensure_connection(max_retries=0)
    except Exception as exc:  # noqa: BLE001 - whatever the transport raises means "unreachable"
        cause = exc.__cause__ or exc
        text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        return f"{type(cause).__name__}: {text}" if text else type(cause).__name__
    return None



# ---------------------------------------------------------------------- activity log
@main.command()
@click.option("--direction", type=click.Choice(["crm_to_ameise", "ameise_to_crm", "system"]), help="Only this direction.")
@click.option("--entity", type=click.Choice(["customer", "contract"]), help="Only this kind of record.")
@click.option("--result", type=click.Choice(["ok", "error"]), help="Only successes or only failures.")
@click.option("--action", help="created, updated, written_back, skipped, failed, retry, ...")
@click.option("--zoho-id", help="Zoho record id.")
@click.option("--ameise-id", help="Kundennummer or Vertragsnummer.")
@click.option("--since", type=click.DateTime(), help="Only entries at or after this time (UTC).")
@click.option("--limit", default=50, show_default=True, help="Show at most this many entries.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def activity(direction, entity, result, action, zoho_id, ameise_id, since: datetime | None, limit, as_json) -> None:
    """Show the activity log, newest first."""

    from syncbridge.bootstrap import build_store

    settings = load_settings()
    with database_errors(settings):
        store = build_store(settings, migrate=False)
        entries = store.activities(direction=direction, entity=entity, result=result, action=action, zoho_id=zoho_id,
                                   ameise_id=ameise_id, since=since.replace(tzinfo=UTC) if since else None,
                                   limit=limit)
    for e in entries:
        if as_json:
            # Times (when, and when the event was received) as ISO 8601, like every other value as it is.
            click.echo(json.dumps({key: value.isoformat() if isinstance(value, datetime) else value
                                   for key, value in e.__dict__.items()}, ensure_ascii=False, default=str))
        else:
            ids = f"{e.zoho_module or ''}/{e.zoho_id or ''} <-> {e.ameise_id or '-'}"
            tail = f"  {e.error}" if e.error else ""
            if e.ameise_id and e.entity in ("customer", "contract") and not e.error:
                tail = "  " + ameise_deep_link(settings.ameise_portal_url, e.entity, e.ameise_id)
            click.echo(f"{e.at:%Y-%m-%d %H:%M:%S} {e.direction:<13} {e.action:<12} {e.result:<5} {e.entity or '':<8} {ids}{tail}")
    if not entries:
        click.echo("no activity matches", err=True)



@main.command("settings")
@click.option("--markdown", is_flag=True, help="Print a Markdown table (the one in README.md).")
def settings_command(markdown: bool) -> None:
    """List every setting with its environment variable and default."""
    if markdown:
        click.echo("| Variable | Default | What it does |\n|---|---|---|")
        for s in Settings.describe():
            click.echo(f"| `{s.env}` | {f'`{s.default}`' if s.default else '(empty)'} | {s.help} |")
        return
    for s in Settings.describe():
        default = s.default if s.default else "(empty)"
        click.echo(f"{s.env}\n    {s.help}\n    default: {default}")
