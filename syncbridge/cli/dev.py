"""The commands of a newcomer's machine: ``run`` (everything in one process with the simulators) and ``simulate``."""
from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
from datetime import datetime

import click

from syncbridge.cli.common import (
    EPILOG,
    check_mapping,
    database_errors,
    load_settings,
    main,
)


# ---------------------------------------------------------------------- run
@main.command(epilog=EPILOG)
@click.option("--port", default=8000, show_default=True, help="Port of the webhook receiver.")
@click.option("--zoho-port", default=8101, show_default=True, help="Port of the simulated Zoho CRM.")
@click.option("--ameise-port", default=8102, show_default=True, help="Port of the simulated Ameise.")
@click.option("--dashboard-port", default=8080, show_default=True, help="Port of the operator dashboard.")
@click.option("--workers", default=1, show_default=True, help="CRM -> Ameise consumer threads.")
@click.option("--database-url", default=None, help="Database URL [default: a fresh SQLite file in a temporary folder].")
def run(port: int, zoho_port: int, ameise_port: int, dashboard_port: int, workers: int,
        database_url: str | None) -> None:
    """Run everything in one process with simulated Zoho CRM and Ameise (no account needed).

    Uses SYNCBRIDGE_BROKER_URL when set (RabbitMQ), else an in-process broker.
    Stop with Ctrl-C.
    """
    from simulators.stack import add_demo_failure, deliver_demo_dailyup, start_stack
    from syncbridge.bootstrap import configure_logging

    # The simulators start fresh each time, so the service's database and drop folder do too.
    tmpdir = tempfile.mkdtemp(prefix="syncbridge-run-")
    own_database = database_url is None and "SYNCBRIDGE_DATABASE_URL" not in os.environ
    if own_database:
        database_url = f"sqlite:///{tmpdir}/syncbridge.db"
    dailyup_dir = None if "SYNCBRIDGE_DAILYUP_DIR" in os.environ else f"{tmpdir}/dailyup"
    poll = None if "SYNCBRIDGE_DAILYUP_POLL_SECONDS" in os.environ else "2"
    try:
        settings = load_settings(database_url=database_url, dailyup_dir=dailyup_dir, dailyup_poll_seconds=poll)
        check_mapping(settings)
        configure_logging(settings)
        with database_errors(settings):
            # Only the demo's own temporary database is migrated here; another is `syncbridge db upgrade`'s.
            stack = start_stack(settings, receiver_port=port, zoho_port=zoho_port, ameise_port=ameise_port,
                                workers=workers, migrate=own_database, dashboard_port=dashboard_port)
            if own_database:
                deliver_demo_dailyup(stack)     # today's delivery: an import to look at on the dashboard
    except OSError as exc:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise click.ClickException(f"cannot start: {exc} (is a port taken? see --port, --zoho-port, --ameise-port, --dashboard-port)") from exc
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    add_demo_failure(stack)         # a dead letter for the dashboard's Issues and Dead letters pages
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


def _dashboard_line(stack) -> str:
    from simulators.stack import DEMO_LOGIN

    if stack.dashboard is None:
        return ""
    return f"  dashboard          {stack.dashboard.url}      (sign in as {DEMO_LOGIN[0]} / {DEMO_LOGIN[1]})\n"


def _run_banner(stack) -> str:
    s = stack.settings
    zoho, ameise, receiver = stack.zoho.url, stack.ameise.url, stack.receiver.url
    ids = stack.demo_ids.get("zoho", {})
    erika = ids.get("Erika Mustermann", "<id>")
    paul = ids.get("Paul Fehler", "<id>")
    broker = "in-process broker (memory://)" if s.embedded_broker else s.effective_broker_url.split("@")[-1]
    today_file = f"DailyUp_100200_{datetime.now():%Y%m%d}.zip"
    return f"""
syncbridge is running: {broker}, database {s.database_url}

  webhook receiver   {receiver}      (POST /webhooks/zoho/<module>, /healthz, /readyz)
  Zoho CRM (sim)     {zoho}      (workflow rules fire webhooks at the receiver)
  Ameise (sim)       {ameise}
{_dashboard_line(stack)}
Try it -- a user edits Erika Mustermann (Kundennummer 5001234567) in the CRM:

  curl -s -X PATCH {zoho}/_sim/records/Contacts/{erika} \\
       -H 'Content-Type: application/json' -d '{{"Phone": "+49 221 7654321"}}'
  curl -s {ameise}/_sim/kunden/5001234567            # a telefon entry in Kontaktdaten

A new contact without Kundennummer is created in Ameise, and the number is
written back to the CRM record (with "trigger": [], so no workflow loop):

  curl -s -X POST {zoho}/_sim/records/Contacts \\
       -H 'Content-Type: application/json' -d '{{"First_Name": "Jana", "Last_Name": "Beispiel"}}'
  curl -s {zoho}/_sim/records/Contacts               # Jana now has a Kundennummer

The daily direction: a change made in Ameise itself reaches the CRM with the
next DailyUp delivery (the simulated Ameise hands out its delivery as a ZIP):

  curl -s -X PATCH {ameise}/_sim/kunden/5001234567 \\
       -H 'Content-Type: application/json' \\
       -d '{{"Kontaktdaten": [{{"Kontext": "privat", "Typ": "mobil", "Value": "+49 170 1234567"}}]}}'
  curl -s {ameise}/_sim/dailyup -o {today_file}
  curl -s -H 'X-Upload-Token: {s.dailyup_upload_token}' -F file=@{today_file} {receiver}/dailyup/deliveries
  curl -s -H 'X-Admin-Token: {s.admin_token}' {receiver}/dailyup/imports/latest
  curl -s {zoho}/_sim/records/Contacts/{erika}          # Mobile is set

(or drop the ZIP into {s.dailyup_dir}/inbox/, as blau direkt's FTP push does)

Paul Fehler's PLZ has four digits, so Ameise refuses him: his dead letter is an
issue on the dashboard (Issues, Dead letters). Fixing the PLZ in the CRM syncs him;
then resolve the issue and discard its dead letter there:

  curl -s -X PATCH {zoho}/_sim/records/Contacts/{paul} \\
       -H 'Content-Type: application/json' -d '{{"Mailing_Zip": "50667"}}'

Every action is in the activity log (in another shell, from this folder):

  SYNCBRIDGE_DATABASE_URL={s.database_url} {_this_command()} activity

Press Ctrl-C to stop.
"""



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
        settings = load_settings()
        for module in settings.zoho_modules:
            state.add_webhook(module, f"{webhooks_to.rstrip('/')}/webhooks/zoho/{module}", style="form",
                              token=settings.zoho_webhook_token)
    server = ServerThread(app, host=host, port=port).start()
    click.echo(f"{system} simulator on {server.url} (Ctrl-C to stop)")
    try:
        _wait_for_stop_signal()
    finally:
        server.stop()
