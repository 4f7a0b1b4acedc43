"""``syncbridge dlq``: look at dead letters, replay or discard them."""
from __future__ import annotations

import json
import os
from contextlib import contextmanager

import click

from syncbridge.cli.common import (
    database_errors,
    load_settings,
    main,
)
from syncbridge.config import Settings


# ---------------------------------------------------------------------- dead letters
@main.group()
def dlq() -> None:
    """The archived dead letters: list, show, replay, discard.

    The dead-letters worker moves every message of the dead-letter queue into the
    database; these commands work on that archive.
    """


def _dlq_filters(function):
    """The filter options shared by list, replay and discard (checked by syncbridge.handlers.dead_letters.parse_filter, like the API's)."""
    options = [
        click.option("--queue", help="Only dead letters of this work queue: crm-to-ameise, ameise-to-crm (or unknown)."),
        click.option("--kind", help="Only this kind: contract-violation (or its old name contract), undecodable, rejected, error, unavailable, "
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
        with database_errors(settings):
            yield build_dead_letter_ops(settings, migrate=False, publisher=publisher, topology=topology)
    finally:
        if publisher is not None:
            publisher.close()


def _parsed_filter(**values):
    from syncbridge.handlers.dead_letters import InvalidFilter, parse_filter

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
    from syncbridge.handlers.dead_letters import as_json as letter_json

    flt = _parsed_filter(queue=queue, kind=kind, record=record, since=since, until=until, state=state)
    settings = load_settings()
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
    from syncbridge.handlers.dead_letters import as_json as letter_json

    settings = load_settings()
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
    from syncbridge.handlers.dead_letters import Selection, SelectionError

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
    settings = load_settings()
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
    settings = load_settings()
    with _dead_letter_ops(settings) as ops:
        outcomes = ops.discard(selection, by=by, note=note, force=force, dry_run=dry_run)
    _report(outcomes, dry_run)
