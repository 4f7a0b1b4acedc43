"""``syncbridge link``: first-time linking of the CRM records a broker has with the Ameise customers and contracts."""
from __future__ import annotations

import getpass
import json
from contextlib import contextmanager

import click

from syncbridge.cli.common import database_errors, load_settings, main
from syncbridge.config import Settings

STATUSES = ("certain", "proposed", "ambiguous", "accepted", "rejected", "superseded")


@main.group()
def link() -> None:
    """First-time linking: pair existing CRM records with Ameise customers and contracts.

    \b
    1. syncbridge dailyup import FILE          the first DailyUp delivery (the Ameise side)
    2. syncbridge link report --xlsx FILE.xlsx  dry run: what would be paired, nothing stored
    3. syncbridge link propose                 keep the proposals
    4. syncbridge link accept --certain        link every certain pair, number written to the CRM
    5. syncbridge link list --status ambiguous and accept ID / reject ID for the rest

    Pairs are found by Kundennummer / Vertragsnummer first, then by e-mail + name +
    birth date (persons), company name + PLZ (companies), insurer + policy number
    (contracts).  Nothing is written until a pair is accepted.
    """


def _progress(stage: str, done: int, total: int | None) -> None:
    of = f" of {total}" if total is not None and total != done else ""
    click.echo(f"  {stage}: {done}{of}", err=True)


@contextmanager
def _linking(settings: Settings):
    """The linking service; every failure of the database or the CRM as one ``Error:`` line."""
    from syncbridge.bootstrap import build_linking
    from syncbridge.errors import SyncError
    from syncbridge.handlers.linking import LinkingError

    with database_errors(settings):
        try:
            yield build_linking(settings)
        except LinkingError as exc:
            raise click.ClickException(str(exc)) from exc
        except SyncError as exc:
            raise click.ClickException(exc.describe()) from exc


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _counts_line(counts: dict[str, int]) -> str:
    names = ("matched", "certain", "proposed", "ambiguous", "unmatched_ameise", "unmatched_crm", "linked")
    return "  ".join(f"{name} {counts.get(name, 0)}" for name in names)


@link.command("propose")
@click.option("--by", help="Who runs it, for the record [your user name].")
def link_propose(by: str | None) -> None:
    """Compute the pairs and keep them as proposals (open proposals of an earlier run are superseded)."""
    settings = load_settings()
    with _linking(settings) as linking:
        run, _result = linking.propose(_who(by), progress=_progress)
    click.echo(f"run {run.id}: {_counts_line(run.counts)}")
    click.echo("next: syncbridge link accept --certain; syncbridge link list --status ambiguous")


@link.command("list")
@click.option("--status", type=click.Choice(STATUSES), multiple=True,
              help="Only proposals of this status (repeatable) [certain, proposed, ambiguous].")
@click.option("--limit", type=click.IntRange(1, 100000), default=100, show_default=True, help="Show at most this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def link_list(status: tuple[str, ...], limit: int, as_json: bool) -> None:
    """The proposals: id, status, score, Ameise number, CRM record and the reasons."""
    settings = load_settings()
    with _linking(settings) as linking:
        found = linking.proposals.proposals(statuses=status or ("certain", "proposed", "ambiguous"), limit=limit)
        last = linking.proposals.last_run()
    if last is None:
        raise click.ClickException("linking has not run yet: syncbridge link propose")
    for p in found:
        if as_json:
            click.echo(json.dumps({"id": p.id, "status": p.status, "score": p.score, "entity": p.entity,
                                   "kind": p.kind, "ameise_key": p.ameise_key, "zoho_module": p.zoho_module,
                                   "zoho_id": p.zoho_id, "reasons": list(p.reasons), "ameise": p.ameise_label,
                                   "crm": p.crm_label}, ensure_ascii=False))
        else:
            click.echo(f"{p.id:>7}  {p.status:<10} {p.score:>3}  {p.ameise_key:<14} {p.zoho_module}/{p.zoho_id}  "
                       f"{p.ameise_label} <> {p.crm_label}  [{'; '.join(p.reasons)}]")
    if not as_json:
        click.echo(f"{len(found)} proposals (run {last.id})", err=True)


@link.command("accept")
@click.argument("ids", nargs=-1, type=int)
@click.option("--certain", is_flag=True, help="Accept every certain proposal.")
@click.option("--by", help="Who accepts [your user name].")
def link_accept(ids: tuple[int, ...], certain: bool, by: str | None) -> None:
    """Accept proposals: store the link and write the number back to the CRM record.

    Give proposal IDS, or --certain for every certain one.  Accepting one pair of an
    ambiguous group supersedes the others.
    """
    if not ids and not certain:
        raise click.UsageError("give proposal IDS or --certain")
    settings = load_settings()
    who = _who(by)
    with _linking(settings) as linking:
        if certain:
            accepted, errors = linking.accept_certain(who, progress=_progress)
            for error in errors:
                click.echo(f"not accepted: {error}", err=True)
            click.echo(f"accepted {accepted} certain proposals" + (f", {len(errors)} failed" if errors else ""))
            if errors:
                raise SystemExit(1)
        for proposal_id in ids:
            p = linking.accept(proposal_id, who)
            click.echo(f"accepted {p.id}: {p.ameise_key} <> {p.zoho_module}/{p.zoho_id}")


@link.command("reject")
@click.argument("ids", nargs=-1, type=int, required=True)
@click.option("--by", help="Who rejects [your user name].")
def link_reject(ids: tuple[int, ...], by: str | None) -> None:
    """Reject proposals: the two records are not one; nothing is written."""
    settings = load_settings()
    with _linking(settings) as linking:
        for proposal_id in ids:
            p = linking.reject(proposal_id, _who(by))
            click.echo(f"rejected {p.id}")


@link.command("report")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False, writable=True), help="Write the report as CSV.")
@click.option("--xlsx", "xlsx_file", type=click.Path(dir_okay=False, writable=True), help="Write the report as XLSX.")
def link_report(csv_file: str | None, xlsx_file: str | None) -> None:
    """Dry run: matched, certain, proposed, ambiguous, unmatched on each side; nothing is stored or written."""
    from syncbridge.dailyup.export import csv_lines, xlsx_chunks
    from syncbridge.handlers.linking import REPORT_COLUMNS, report_rows

    if not csv_file and not xlsx_file:
        raise click.UsageError("give --csv FILE and/or --xlsx FILE")
    settings = load_settings()
    with _linking(settings) as linking:
        result = linking.compute(progress=_progress)
    rows = report_rows(result)
    columns = list(REPORT_COLUMNS)
    try:
        if csv_file:
            with open(csv_file, "w", encoding="utf-8", newline="") as out:
                out.writelines(csv_lines(columns, rows))
        if xlsx_file:
            with open(xlsx_file, "wb") as out:
                for chunk in xlsx_chunks(columns, rows, sheet="Linking"):
                    out.write(chunk)
    except OSError as exc:
        raise click.ClickException(f"cannot write the report: {exc.strerror}: {exc.filename}") from exc
    click.echo(f"{_counts_line(result.counts())}; {len(rows)} rows")
