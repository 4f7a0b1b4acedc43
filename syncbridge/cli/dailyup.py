"""``syncbridge dailyup``: the DailyUp by hand."""
from __future__ import annotations

import dataclasses
import json

import click

from syncbridge.cli.common import (
    database_errors,
    load_settings,
    main,
)
from syncbridge.config import Settings


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

    settings = load_settings()
    with database_errors(settings), _importer(settings, publish=publish) as (importer, folder):
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

    settings = load_settings()
    with database_errors(settings), _importer(settings, publish=False) as (importer, _):
        result = importer.diff(Path(file))
    _print_result(result, as_json)
    if result.state == "rejected":
        raise SystemExit(1)


@dailyup.command("publish")
def dailyup_publish() -> None:
    """Publish deltas still waiting in the outbox (after a broker outage)."""
    from syncbridge.errors import Unavailable

    settings = load_settings()
    if settings.embedded_broker:
        raise click.ClickException(
            "publishing needs the service's broker: set SYNCBRIDGE_BROKER_URL (the in-process one dies with this command)")
    with database_errors(settings), _importer(settings, publish=True) as (importer, _):
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

    settings = load_settings()
    with database_errors(settings):
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
    settings = load_settings()
    with database_errors(settings):
        store, folder, options = build_dailyup(settings, migrate=False)
        imp = store.get_import(import_id) if import_id else latest_exportable(store, table)
        if imp is None:
            raise click.ClickException(f"no import {import_id}" if import_id else "no accepted import yet")
        try:
            columns, rows = import_table(store, folder, imp, table, options)
        except ExportUnavailable as exc:
            raise click.ClickException(str(exc)) from exc
        with click.open_file(output or "-", "wb") as out:     # "-": standard output, left open
            for chunk in chunked(csv_lines(columns, rows)):
                out.write(chunk)
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
