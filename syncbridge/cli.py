"""The ``syncbridge`` command."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import click

from syncbridge import __version__
from syncbridge.config import WORKERS, ConfigError, Settings

EPILOG = "Settings come from SYNCBRIDGE_* environment variables; `syncbridge settings` lists them."


def _settings(**overrides) -> Settings:
    try:
        settings = Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    for problem in (_database_url_problem(settings.database_url), _broker_url_problem(settings.effective_broker_url)):
        if problem:
            raise click.ClickException(problem)
    return settings


def _database_url_problem(url: str) -> str | None:
    """Why the database URL cannot be used at all (unparsable, unknown database, driver not installed), if so."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url).get_dialect().import_dbapi()
    except ArgumentError as exc:
        return f"SYNCBRIDGE_DATABASE_URL {_without_password(url)}: {str(exc).strip().splitlines()[0]}"
    except ImportError as exc:
        return (f"SYNCBRIDGE_DATABASE_URL {_without_password(url)}: its driver is not installed ({exc}); "
                "use sqlite:///FILE or postgresql+psycopg://...")
    return None


def _broker_url_problem(url: str) -> str | None:
    """Why the broker URL cannot be used at all (unknown transport, bad port), if so."""
    from kombu import Connection

    try:
        connection = Connection(url)
        connection.transport_cls  # noqa: B018 - resolves the transport
        connection.port  # noqa: B018 - parses the port
    except (KeyError, ValueError, ImportError) as exc:
        return f"SYNCBRIDGE_BROKER_URL {_without_password(url)}: {exc.args[0] if exc.args else exc}"
    return None


def _without_password(url: str) -> str:
    """A URL as it may be shown: without a password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


@contextmanager
def _database(settings: Settings):
    """Turn a database that cannot be opened or is not migrated, or a bad mapping file, into one ``Error:`` line."""
    from sqlalchemy.exc import SQLAlchemyError

    from syncbridge.bootstrap import SchemaOutdated
    from syncbridge.mapping import MappingError

    try:
        yield
    except (SchemaOutdated, MappingError) as exc:
        raise click.ClickException(str(exc)) from exc
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise click.ClickException(f"database {_without_password(settings.database_url)}: {reason}") from exc


def _mapping_checked(settings: Settings) -> None:
    """Fail with one line when the mapping file is missing or invalid, before anything starts."""
    from syncbridge.mapping import MappingError, load_mapping

    try:
        load_mapping(settings.mapping_file or None)
    except MappingError as exc:
        raise click.ClickException(f"SYNCBRIDGE_MAPPING_FILE: {exc}") from exc


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syncbridge")
def main() -> None:
    """Keep Zoho CRM and Ameise (blau direkt) in sync, both ways."""


# ---------------------------------------------------------------------- run
@main.command(epilog=EPILOG)
@click.option("--port", default=8000, show_default=True, help="Port of the webhook receiver.")
@click.option("--zoho-port", default=8101, show_default=True, help="Port of the simulated Zoho CRM.")
@click.option("--ameise-port", default=8102, show_default=True, help="Port of the simulated Ameise.")
@click.option("--workers", default=1, show_default=True, help="CRM -> Ameise consumer threads.")
@click.option("--database-url", default=None, help="Database URL [default: a fresh SQLite file in a temporary folder].")
def run(port: int, zoho_port: int, ameise_port: int, workers: int, database_url: str | None) -> None:
    """Run everything in one process with simulated Zoho CRM and Ameise (no account needed).

    Uses SYNCBRIDGE_BROKER_URL when set (RabbitMQ), else an in-process broker.
    Stop with Ctrl-C.
    """
    from simulators.stack import start_stack
    from syncbridge.bootstrap import configure_logging

    # The simulators start fresh each time, so the service's database and drop folder do too.
    tmpdir = tempfile.mkdtemp(prefix="syncbridge-run-")
    own_database = database_url is None and "SYNCBRIDGE_DATABASE_URL" not in os.environ
    if own_database:
        database_url = f"sqlite:///{tmpdir}/syncbridge.db"
    dailyup_dir = None if "SYNCBRIDGE_DAILYUP_DIR" in os.environ else f"{tmpdir}/dailyup"
    poll = None if "SYNCBRIDGE_DAILYUP_POLL_SECONDS" in os.environ else "2"
    try:
        settings = _settings(database_url=database_url, dailyup_dir=dailyup_dir, dailyup_poll_seconds=poll)
        _mapping_checked(settings)
        configure_logging(settings)
        with _database(settings):
            # Only the demo's own temporary database is migrated here; another is `syncbridge db upgrade`'s.
            stack = start_stack(settings, receiver_port=port, zoho_port=zoho_port, ameise_port=ameise_port,
                                workers=workers, migrate=own_database)
    except OSError as exc:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise click.ClickException(f"cannot start: {exc} (is a port taken? see --port, --zoho-port, --ameise-port)") from exc
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    click.echo(_run_banner(stack))
    try:
        _wait_for_stop_signal()
        click.echo("\nstopping: finishing in-flight work...")
    finally:
        stack.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)


def _wait_for_stop_signal() -> None:
    """Block until SIGINT or SIGTERM (also when started in the background, where SIGINT is ignored)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def _this_command() -> str:
    """How to start this same syncbridge from the current folder, whether or not its venv is on the PATH."""
    import shlex

    program = sys.argv[0] if sys.argv else ""
    if os.path.basename(program) != "syncbridge":
        # Started some other way (python -m syncbridge.cli, a test runner): the interpreter can always do it.
        return f"{shlex.quote(sys.executable)} -m syncbridge.cli"
    if os.sep not in program:
        return "syncbridge"                      # found on the PATH, so it is found there again
    relative = os.path.relpath(program)
    if relative.startswith(".."):
        return shlex.quote(os.path.abspath(program))
    return shlex.quote(relative if os.sep in relative else f".{os.sep}{relative}")


def _run_banner(stack) -> str:
    s = stack.settings
    zoho, ameise, receiver = stack.zoho.url, stack.ameise.url, stack.receiver.url
    ids = stack.demo_ids.get("zoho", {})
    erika = ids.get("Erika Mustermann", "<id>")
    broker = "in-process broker (memory://)" if s.embedded_broker else s.effective_broker_url.split("@")[-1]
    today_file = f"DailyUp_100200_{datetime.now():%Y%m%d}.zip"
    return f"""
syncbridge is running: {broker}, database {s.database_url}

  webhook receiver   {receiver}      (POST /webhooks/zoho/<module>, /healthz, /readyz)
  Zoho CRM (sim)     {zoho}      (workflow rules fire webhooks at the receiver)
  Ameise (sim)       {ameise}

Try it -- a user edits Erika Mustermann (Kundennummer 5001234567) in the CRM:

  curl -s -X PATCH {zoho}/_sim/records/Contacts/{erika} \\
       -H 'Content-Type: application/json' -d '{{"Phone": "+49 221 7654321"}}'
  curl -s {ameise}/_sim/kunden/5001234567            # Telefon is updated

A new contact without Kundennummer is created in Ameise, and the number is
written back to the CRM record (with "trigger": [], so no workflow loop):

  curl -s -X POST {zoho}/_sim/records/Contacts \\
       -H 'Content-Type: application/json' -d '{{"First_Name": "Jana", "Last_Name": "Beispiel"}}'
  curl -s {zoho}/_sim/records/Contacts               # Jana now has a Kundennummer

The daily direction: a change made in Ameise itself reaches the CRM with the
next DailyUp delivery (the simulated Ameise hands out its delivery as a ZIP):

  curl -s -X PATCH {ameise}/_sim/kunden/5001234567 \\
       -H 'Content-Type: application/json' -d '{{"Mobil": "+49 170 1234567"}}'
  curl -s {ameise}/_sim/dailyup -o {today_file}
  curl -s -H 'X-Upload-Token: {s.dailyup_upload_token}' -F file=@{today_file} {receiver}/dailyup/deliveries
  curl -s -H 'X-Admin-Token: {s.admin_token}' {receiver}/dailyup/imports/latest
  curl -s {zoho}/_sim/records/Contacts/{erika}          # Mobile is set

(or drop the ZIP into {s.dailyup_dir}/inbox/, as blau direkt's FTP push does)

Every action is in the activity log (in another shell, from this folder):

  SYNCBRIDGE_DATABASE_URL={s.database_url} {_this_command()} activity

Press Ctrl-C to stop.
"""


# ---------------------------------------------------------------------- web / worker
@main.command(epilog=EPILOG)
@click.option("--bind", default="0.0.0.0:8000", show_default=True, help="Address of the receiver.")
@click.option("--workers", "web_workers", default=2, show_default=True, help="gunicorn worker processes.")
@click.option("--connections", default=1000, show_default=True,
              help="Connections one gunicorn worker serves at once (gevent: each a greenlet, not a thread).")
def web(bind: str, web_workers: int, connections: int) -> None:
    """Run the webhook receiver under gunicorn (needs SYNCBRIDGE_BROKER_URL: RabbitMQ)."""
    settings = _settings()
    if settings.embedded_broker:
        raise click.ClickException(
            "the in-process broker only works inside one process: set SYNCBRIDGE_BROKER_URL, or use `syncbridge run`")
    gunicorn = shutil.which("gunicorn") or os.path.join(os.path.dirname(sys.executable), "gunicorn")
    argv = [gunicorn, "--config", "python:webhooks.gunicorn_config", "--bind", bind, "--workers", str(web_workers),
            "--worker-connections", str(connections), "webhooks:create_app()"]
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

    settings = _settings()
    if settings.embedded_broker:
        raise click.ClickException(
            "the in-process broker only works inside one process: set SYNCBRIDGE_BROKER_URL, or use `syncbridge run`")
    _mapping_checked(settings)
    with _database(settings):
        run_worker(name, settings)


# ---------------------------------------------------------------------- simulators
@main.command(epilog="The simulators speak the wire formats of the real services; their /_sim/ API seeds and inspects them.")
@click.argument("system", type=click.Choice(["zoho", "ameise"]))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=None, type=int, help="Port [default: 8101 for zoho, 8102 for ameise].")
@click.option("--seed/--no-seed", default=True, show_default=True, help="Start with the demo records.")
@click.option("--token-lifetime", default=3600, show_default=True, help="Lifetime of access tokens in seconds.")
@click.option("--webhooks-to", default=None, metavar="URL",
              help="zoho: add a workflow rule per synced module that fires at this receiver (e.g. http://127.0.0.1:8000).")
def simulate(system: str, host: str, port: int | None, seed: bool, token_lifetime: int, webhooks_to: str | None) -> None:
    """Run a simulator of Zoho CRM or Ameise as an HTTP server."""
    from simulators.server import ServerThread

    if system == "zoho":
        from simulators.zoho import ZohoState, create_zoho_app, seed_demo

        state = ZohoState()
        app = create_zoho_app(state)
        port = port or 8101
    else:
        from simulators.ameise import AmeiseState, create_ameise_app, seed_demo

        state = AmeiseState()
        app = create_ameise_app(state)
        port = port or 8102
    state.token_lifetime = token_lifetime
    if seed:
        seed_demo(state)
    if webhooks_to:
        if system != "zoho":
            raise click.UsageError("--webhooks-to applies to the zoho simulator only")
        settings = _settings()
        for module in settings.zoho_modules:
            state.add_webhook(module, f"{webhooks_to.rstrip('/')}/webhooks/zoho/{module}", style="form",
                              token=settings.zoho_webhook_token)
    server = ServerThread(app, host=host, port=port).start()
    click.echo(f"{system} simulator on {server.url} (Ctrl-C to stop)")
    try:
        _wait_for_stop_signal()
    finally:
        server.stop()


# ---------------------------------------------------------------------- database
@main.group()
def db() -> None:
    """The service's own database."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Migrate to this revision.")
def db_upgrade(revision: str) -> None:
    """Apply the database migrations (the release step)."""
    from syncbridge.bootstrap import database_revision, upgrade_database

    settings = _settings()
    with _database(settings):
        upgrade_database(settings, revision)
        click.echo(f"database at revision {database_revision(settings)}")


@db.command("current")
def db_current() -> None:
    """Show the database's migration revision."""
    from syncbridge.bootstrap import database_revision, database_up_to_date

    settings = _settings()
    with _database(settings):
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

    settings = _settings()
    with _database(settings):
        services = bootstrap(settings, store=build_store(settings, migrate=False))
    oauth = services.ameise_oauth
    try:
        if refresh_token:
            token = oauth.connect_with_refresh_token(refresh_token)
        elif auto_consent:
            from simulators.stack import connect_ameise_by_consent

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
    """Show the connections, the database and the broker at a glance."""
    from syncbridge.bootstrap import build_store, database_up_to_date

    settings = _settings()
    with _database(settings):
        up_to_date = database_up_to_date(settings)
    click.echo(f"database     {_without_password(settings.database_url)} "
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
    if broker_problem:
        raise SystemExit(1)


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

    settings = _settings()
    with _database(settings):
        store = build_store(settings, migrate=False)
        entries = store.activities(direction=direction, entity=entity, result=result, action=action, zoho_id=zoho_id,
                                   ameise_id=ameise_id, since=since.replace(tzinfo=UTC) if since else None,
                                   limit=limit)
    for e in entries:
        if as_json:
            click.echo(json.dumps({**e.__dict__, "at": e.at.isoformat() if e.at else None}, ensure_ascii=False))
        else:
            ids = f"{e.zoho_module or ''}/{e.zoho_id or ''} <-> {e.ameise_id or '-'}"
            tail = f"  {e.error}" if e.error else ""
            click.echo(f"{e.at:%Y-%m-%d %H:%M:%S} {e.direction:<13} {e.action:<12} {e.result:<5} {e.entity or '':<8} {ids}{tail}")
    if not entries:
        click.echo("no activity matches", err=True)


# ---------------------------------------------------------------------- DailyUp
@main.group()
def dailyup() -> None:
    """The daily DailyUp delivery from Ameise (return path to the CRM)."""


def _progress(stage: str, done: int, total: int | None) -> None:
    """Progress of long imports on stderr, so --json output stays clean."""
    of = f"/{total}" if total else ""
    click.echo(f"  {stage}: {done}{of}", err=True)


def _importer(settings: Settings, *, publish: bool):
    from syncbridge.bootstrap import bootstrap_dailyup

    if publish and settings.embedded_broker:
        click.echo("no SYNCBRIDGE_BROKER_URL: the deltas stay in the outbox until a worker publishes them", err=True)
    return bootstrap_dailyup(settings, publish=publish, progress=_progress, migrate=False)


def _print_result(result, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(result), default=str, ensure_ascii=False))
        return
    click.echo(f"{result.state}: {result.message}" if result.message else result.state)
    if result.state == "duplicate":
        return  # its figures are those of the first import, shown by `dailyup status`
    if result.rows:
        click.echo("rows    " + ", ".join(f"{t} {n}" for t, n in result.rows.items()))
    click.echo(f"errors  {result.errors}")
    if result.deltas:
        click.echo("deltas  " + ", ".join(f"{k} {n}" for k, n in sorted(result.deltas.items())))
    for kind, samples in sorted((result.samples or {}).items()):
        for sample in samples:
            fields = sample.get("changed_fields") or []
            click.echo(f"  {kind:<18} {sample.get('key')}" + (f"  ({', '.join(fields)})" if fields else ""))


@dailyup.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--publish/--no-publish", default=True, show_default=True,
              help="Publish the deltas to the return queue (else they wait in the outbox for `dailyup publish`).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def dailyup_import(file: str, publish: bool, as_json: bool) -> None:
    """Import a delivery FILE (DailyUp_<Hauptvermittlernummer>_<YYYYMMDD>.zip) and publish its deltas."""
    from pathlib import Path

    from syncbridge.dailyup.intake import import_delivery

    settings = _settings()
    with _database(settings), _importer(settings, publish=publish) as (importer, folder):
        result = import_delivery(importer, folder, Path(file), source="cli", keep_original=True)
        waiting = importer.store.count_unpublished() if result.state == "accepted" else 0
    _print_result(result, as_json)
    if result.state == "rejected":
        raise SystemExit(1)
    if publish and not settings.embedded_broker and waiting:
        # Accepted, but the broker did not take the deltas: they are safe, and not on their way yet.
        raise click.ClickException(f"publishing failed: {waiting} deltas wait in the outbox; "
                                   "`syncbridge dailyup publish` sends them once the broker is back")


@dailyup.command("diff")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def dailyup_diff(file: str, as_json: bool) -> None:
    """Dry run: what importing FILE would change (counts and samples); nothing is stored or published."""
    from pathlib import Path

    settings = _settings()
    with _database(settings), _importer(settings, publish=False) as (importer, _):
        result = importer.diff(Path(file))
    _print_result(result, as_json)
    if result.state == "rejected":
        raise SystemExit(1)


@dailyup.command("publish")
def dailyup_publish() -> None:
    """Publish deltas still waiting in the outbox (after a broker outage)."""
    from syncbridge.errors import Unavailable

    settings = _settings()
    if settings.embedded_broker:
        raise click.ClickException(
            "publishing needs the service's broker: set SYNCBRIDGE_BROKER_URL (the in-process one dies with this command)")
    with _database(settings), _importer(settings, publish=True) as (importer, _):
        try:
            count = importer.publish_pending()
        except Unavailable as exc:
            waiting = importer.store.count_unpublished()
            raise click.ClickException(f"{exc.describe()}; {waiting} deltas wait in the outbox") from exc
    click.echo(f"published {count} deltas")


@dailyup.command("status")
@click.argument("import_id", required=False, type=int)
@click.option("--limit", default=10, show_default=True, help="How many imports to list.")
@click.option("--errors", "show_errors", default=20, show_default=True, help="Row errors to show for one import.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
def dailyup_status(import_id: int | None, limit: int, show_errors: int, as_json: bool) -> None:
    """List the latest imports, or show IMPORT_ID with its row errors."""
    from syncbridge.bootstrap import build_dailyup

    settings = _settings()
    with _database(settings):
        store, _, _ = build_dailyup(settings, migrate=False)
        if import_id is None:
            imports = store.imports(limit=limit)
            errors = []
        else:
            found = store.get_import(import_id)
            if found is None:
                raise click.ClickException(f"no import {import_id}")
            imports, errors = [found], store.row_errors(import_id, limit=show_errors)
    if as_json:
        click.echo(json.dumps({"imports": [dataclasses.asdict(i) for i in imports],
                               "row_errors": [dataclasses.asdict(e) for e in errors]}, default=str, ensure_ascii=False))
        return
    if not imports:
        click.echo("no imports yet", err=True)
    for imp in imports:
        deltas = ", ".join(f"{k} {n}" for k, n in sorted((imp.deltas or {}).items())) or "-"
        rows = sum((imp.rows or {}).values())
        click.echo(f"#{imp.id:<4} {imp.file_name:<32} {imp.state:<10} rows {rows:<8} errors {imp.errors:<5} "
                   f"received {imp.received_at:%Y-%m-%d %H:%M}  deltas: {deltas}")
        if imp.message:
            click.echo(f"      {imp.message}")
    for error in errors:
        click.echo(f"      {error}")


@dailyup.command("export")
@click.argument("table")
@click.option("--import", "import_id", type=int, default=None,
              help="Import id [default: the newest accepted import; for errors, the newest import].")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="File to write [default: standard output].")
def dailyup_export(table: str, import_id: int | None, output: str | None) -> None:
    """Write TABLE of an import (kunden, vertraege, a lookup list, or errors) as spreadsheet-ready CSV."""
    from syncbridge.bootstrap import build_dailyup
    from syncbridge.dailyup.export import (
        ExportUnavailable,
        check_table,
        chunked,
        csv_lines,
        import_table,
        latest_exportable,
    )

    try:
        check_table(table)
    except ExportUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    settings = _settings()
    with _database(settings):
        store, folder, options = build_dailyup(settings, migrate=False)
        imp = store.get_import(import_id) if import_id else latest_exportable(store, table)
        if imp is None:
            raise click.ClickException(f"no import {import_id}" if import_id else "no accepted import yet")
        try:
            columns, rows = import_table(store, folder, imp, table, options)
        except ExportUnavailable as exc:
            raise click.ClickException(str(exc)) from exc
        out = open(output, "wb") if output else click.get_binary_stream("stdout")
        try:
            for chunk in chunked(csv_lines(columns, rows)):
                out.write(chunk)
        finally:
            if output:
                out.close()
    if output:
        click.echo(f"wrote {table} of import {imp.id} to {output}", err=True)


@dailyup.command("generate")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--customers", default=1000, show_default=True, help="Customers in the delivery (contracts ~1.5 each).")
@click.option("--generation", default=0, show_default=True,
              help="0 = the first delivery; each next one is a day later with some customers and contracts created, changed, deleted.")
@click.option("--hauptvermittler", default="100200", show_default=True, help="Hauptvermittlernummer in the file name.")
@click.option("--encoding", type=click.Choice(["utf-8", "cp1252", "iso-8859-1"]), default="utf-8", show_default=True,
              help="Encoding of the CSV files.")
@click.option("--bom", is_flag=True, help="Start UTF-8 files with a byte order mark.")
def dailyup_generate(directory: str, customers: int, generation: int, hauptvermittler: str, encoding: str, bom: bool) -> None:
    """Write a synthetic delivery into DIRECTORY (for trying the import, tests and benchmarks)."""
    from pathlib import Path

    from syncbridge.dailyup.generate import write_delivery

    Path(directory).mkdir(parents=True, exist_ok=True)
    path = write_delivery(directory, customers=customers, generation=generation, hauptvermittler=hauptvermittler,
                          encoding=encoding, bom=bom)
    click.echo(str(path))


# ---------------------------------------------------------------------- dead letters
@main.group()
def dlq() -> None:
    """The archived dead letters: list, show, replay, discard.

    The dead-letters worker moves every message of the dead-letter queue into the
    database; these commands work on that archive.
    """


def _dlq_filters(function):
    """The filter options shared by list, replay and discard (checked by syncbridge.dlq.parse_filter, like the API's)."""
    options = [
        click.option("--queue", help="Only dead letters of this work queue: crm-to-ameise, ameise-to-crm (or unknown)."),
        click.option("--kind", help="Only this kind: contract-violation, undecodable, rejected, error, unavailable, "
                                    "delivery_limit, expired, maxlen, nacked, unknown."),
        click.option("--record", help="Zoho record id, Kundennummer or Vertragsnummer."),
        click.option("--since", help="Dead-lettered at or after this time (ISO 8601; UTC unless it says otherwise)."),
        click.option("--until", help="Dead-lettered before this time (ISO 8601; UTC unless it says otherwise)."),
        click.option("--state", help="dead, replayed or discarded [list: any; replay and discard: dead]."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@contextmanager
def _dead_letter_ops(settings: Settings, *, publish: bool = False):
    """The dead-letter operations on the service's database (and, to replay, a publisher to the broker)."""
    from producers.topology import topology_for
    from syncbridge.bootstrap import build_dead_letter_ops

    publisher = topology = None
    if publish:
        from syncbridge.bootstrap import build_publisher

        topology = topology_for(settings)
        publisher = build_publisher(settings, topology)
    try:
        with _database(settings):
            yield build_dead_letter_ops(settings, migrate=False, publisher=publisher, topology=topology)
    finally:
        if publisher is not None:
            publisher.close()


def _parsed_filter(**values):
    from syncbridge.dlq import InvalidFilter, parse_filter

    try:
        return parse_filter(**values)
    except InvalidFilter as exc:
        raise click.BadParameter(str(exc)) from exc


@dlq.command("list")
@_dlq_filters
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Show at most this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def dlq_list(queue, kind, record, since, until, state, limit: int, as_json: bool) -> None:
    """List archived dead letters, newest first."""
    from syncbridge.dlq import as_json as letter_json

    flt = _parsed_filter(queue=queue, kind=kind, record=record, since=since, until=until, state=state)
    settings = _settings()
    with _dead_letter_ops(settings) as ops:
        letters = ops.find(flt, limit=limit)
    for letter in letters:
        if as_json:
            click.echo(json.dumps(letter_json(letter), ensure_ascii=False))
        else:
            reason = " ".join(letter.reason.split())
            click.echo(f"#{letter.id:<5} {letter.dead_lettered_at:%Y-%m-%d %H:%M:%S} {letter.state:<9} "
                       f"{letter.queue:<13} {letter.kind:<14} {letter.routing_key:<26} {letter.record or '-':<20} "
                       f"{reason[:100]}")
    if not letters:
        click.echo("no dead letters match", err=True)


@dlq.command("show")
@click.argument("letter_id", metavar="ID", type=int)
@click.option("--json", "as_json", is_flag=True, help="One JSON object, the body included.")
def dlq_show(letter_id: int, as_json: bool) -> None:
    """Show one dead letter in full: why it died, its headers and its body."""
    from syncbridge.dlq import as_json as letter_json

    settings = _settings()
    with _dead_letter_ops(settings) as ops:
        letter = ops.get(letter_id)
    if letter is None:
        raise click.ClickException(f"no dead letter {letter_id}")
    data = letter_json(letter, full=True)
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    for name, value in data.items():
        if name not in ("headers", "body", "body_text", "body_base64") and value is not None:
            click.echo(f"{name + ':':<17} {value}")
    click.echo("headers:\n" + json.dumps(letter.headers, indent=2, ensure_ascii=False, sort_keys=True))
    if "body" in data:
        click.echo("body:\n" + json.dumps(data["body"], indent=2, ensure_ascii=False))
    elif "body_text" in data:
        click.echo("body (not JSON):\n" + data["body_text"])
    else:
        click.echo("body (binary, base64):\n" + data["body_base64"])


def _dlq_action(verb: str):
    """The arguments and options shared by replay and discard."""

    def decorate(function):
        for option in reversed([
            click.argument("ids", nargs=-1, type=click.IntRange(min=1)),
            _dlq_filters,
            click.option("--all", "everything", is_flag=True,
                         help=f"{verb.capitalize()} every dead letter (in state dead unless --state says otherwise)."),
            click.option("--dry-run", is_flag=True, help=f"Only say what would be {verb}ed; change nothing."),
            click.option("--by", default=lambda: os.environ.get("USER") or os.environ.get("USERNAME") or "",
                         show_default="$USER", help="Who acts, for the activity log."),
            click.option("--force", is_flag=True, help=f"Also {verb} dead letters replayed or discarded before."),
        ]):
            function = option(function)
        return function

    return decorate


def _selection(ids, everything: bool, **filters):
    from syncbridge.dlq import Selection, SelectionError

    try:
        return Selection(tuple(ids), _parsed_filter(**filters), everything)
    except SelectionError as exc:
        raise click.UsageError(f"{exc} (IDS, --queue/--kind/--record/--since/--until/--state, or --all)") from exc


def _report(outcomes, dry_run: bool) -> None:
    from collections import Counter

    for outcome in outcomes:
        tail = f"  {outcome.reason}" if outcome.reason else ""
        click.echo(f"#{outcome.id:<5} {outcome.status:<13} {outcome.routing_key or '-'}{tail}")
    counts = Counter(outcome.status for outcome in outcomes)
    summary = ", ".join(f"{status} {n}" for status, n in counts.items()) or "no dead letters match"
    click.echo(("dry run: " if dry_run else "") + summary, err=True)
    if not all(outcome.ok for outcome in outcomes):
        raise SystemExit(1)


def _who(by: str) -> str:
    if not by.strip():
        raise click.UsageError("say who acts: --by NAME (no $USER is set)")
    return by.strip()


@dlq.command("replay")
@_dlq_action("replay")
def dlq_replay(ids, queue, kind, record, since, until, state, everything, dry_run, by, force) -> None:
    """Publish dead letters again to their original exchange and routing key.

    Each message is checked against the current contract of its routing key
    first; one that fails stays dead with the reason.  Name the dead letters by
    IDS, by filters, or --all.
    """
    selection = _selection(ids, everything, queue=queue, kind=kind, record=record, since=since, until=until,
                           state=state)
    by = _who(by)
    settings = _settings()
    if settings.embedded_broker and not dry_run:
        raise click.ClickException(
            "replaying needs the service's broker: set SYNCBRIDGE_BROKER_URL (the in-process one dies with this command)")
    with _dead_letter_ops(settings, publish=not dry_run) as ops:
        outcomes = ops.replay(selection, by=by, force=force, dry_run=dry_run)
    _report(outcomes, dry_run)


@dlq.command("discard")
@_dlq_action("discard")
@click.option("--note", help="Why, for whoever looks later.")
def dlq_discard(ids, queue, kind, record, since, until, state, everything, dry_run, by, force, note) -> None:
    """Mark dead letters discarded: they stay in the archive, and are not replayed.

    Name the dead letters by IDS, by filters, or --all.
    """
    selection = _selection(ids, everything, queue=queue, kind=kind, record=record, since=since, until=until,
                           state=state)
    by = _who(by)
    settings = _settings()
    with _dead_letter_ops(settings) as ops:
        outcomes = ops.discard(selection, by=by, note=note, force=force, dry_run=dry_run)
    _report(outcomes, dry_run)


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


if __name__ == "__main__":  # pragma: no cover
    main()
