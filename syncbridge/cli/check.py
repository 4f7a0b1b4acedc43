"""``syncbridge check``: the preflight check, step one of going live."""
from __future__ import annotations

import json

import click

from syncbridge.cli.common import EPILOG, check_mapping, database_errors, load_settings, main
from syncbridge.handlers.preflight import DIRECTIONS


@main.command(epilog=EPILOG)
@click.option("--direction", type=click.Choice(DIRECTIONS), default=None,
              help="Check one direction only [default: both].")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
def check(direction: str | None, as_json: bool) -> None:
    """Check the set-up before anything syncs: CRM fields against the mapping, the Ameise connection.

    Prints one line per problem with what to do about it, then a summary; exits
    with 1 when a problem blocks a direction (a worker keeps that direction paused
    until the check passes), 0 otherwise.
    """
    from syncbridge.bootstrap import bootstrap, build_store, preflight

    settings = load_settings()
    check_mapping(settings)
    with database_errors(settings):
        services = bootstrap(settings, store=build_store(settings, migrate=False))
    try:
        report = preflight(services, (direction,) if direction else None)
    except Exception as exc:  # noqa: BLE001 - one clear line, never a traceback
        describe = getattr(exc, "describe", None)
        raise click.ClickException(f"the check could not run: {describe() if describe else exc}") from exc
    finally:
        services.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        for finding in report.findings:
            click.echo(finding.line())
        for note in report.notes:
            click.echo(f"{'NOTE':<8} {note}")
        click.echo(report.summary())
    if report.blocking():
        raise SystemExit(1)
