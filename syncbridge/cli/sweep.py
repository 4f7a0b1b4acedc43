"""``syncbridge backfill`` and ``syncbridge sweep``: queue CRM records that no webhook brought."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import click

from syncbridge.cli.common import database_errors, load_settings, main
from syncbridge.config import Settings
from syncbridge.ports import BACKFILL_PURPOSE, SWEEP_PURPOSE


@contextmanager
def _sweep_deps(settings: Settings, *, progress=None, purpose: str = SWEEP_PURPOSE) -> Iterator:
    """The sweep's dependencies on the service's database and broker; one ``Error:`` line when they cannot be had."""
    from syncbridge.bootstrap import bootstrap, build_store, sweep_dependencies
    from syncbridge.errors import Unavailable

    if settings.embedded_broker:
        raise click.ClickException("the records are queued on the broker: set SYNCBRIDGE_BROKER_URL (the in-process "
                                   "broker of `syncbridge run` lives only in that process; its sweep runs there)")
    with database_errors(settings):
        services = bootstrap(settings, store=build_store(settings, migrate=False))
    try:
        with database_errors(settings):
            yield sweep_dependencies(services, progress=progress, purpose=purpose)
    except Unavailable as exc:
        raise click.ClickException(f"{exc}; nothing is lost: run the command again (a backfill resumes)") from exc
    finally:
        services.close()


def _check_modules(settings: Settings, modules: tuple[str, ...]) -> list[str]:
    synced = {name.lower(): name for name in settings.zoho_modules}
    unknown = [m for m in modules if m.lower() not in synced]
    if unknown:
        raise click.ClickException(f"not synced: {', '.join(unknown)}; synced modules: {', '.join(settings.zoho_modules)}")
    return [synced[m.lower()] for m in modules]


def _progress(stage: str, module: str, done: int, total: int | None) -> None:
    click.echo(f"  {module}: {done:,} queued" + (f" of {total:,} listed" if total is not None else ""), err=True)


# ---------------------------------------------------------------------- backfill
@main.command()
@click.argument("modules", nargs=-1)
@click.option("--estimate", is_flag=True, help="Only count the records and estimate the API credits; queue nothing.")
@click.option("--restart", is_flag=True, help="Begin again from the first page (default: resume where it stopped).")
@click.option("--force", is_flag=True, help="Queue records synced since their last change too.")
def backfill(modules: tuple[str, ...], estimate: bool, restart: bool, force: bool) -> None:
    """Queue every record of the synced MODULES (default: all) for the CRM -> Ameise sync.

    Page by page (200 records a call, Zoho's page token beyond 2,000); stopped
    (Ctrl-C) or failed, it resumes at the next run where it was.  It uses at most
    SYNCBRIDGE_BULK_CREDIT_SHARE of the daily credit budget and
    SYNCBRIDGE_ZOHO_CONCURRENCY calls at once; records synced since their last
    change are skipped unless --force.
    """
    from syncbridge.handlers.sweep import count_records, estimate_credits, run_backfill

    settings = load_settings()
    chosen = _check_modules(settings, modules) or list(settings.zoho_modules)
    with _sweep_deps(settings, progress=_progress, purpose=BACKFILL_PURPOSE) as deps:
        if estimate:
            counts = count_records(deps, chosen)
            total = sum(counts.values())
            cost = estimate_credits(total)
            for module, count in counts.items():
                click.echo(f"{module}: {count:,} records")
            click.echo(f"estimate: {cost['total']:,} API credits ({cost['listing']:,} to list the records, "
                       f"~{cost['syncs']:,} for their syncs to read them); allowed for bulk work: "
                       f"{deps.throttle.allowed:,} per 24 h, {deps.throttle.spent():,} spent")
            return
        for module in chosen:
            before = deps.state.backfill(module)
            if before is not None and not restart:
                state = "finished" if before.finished else f"resuming after {before.queued:,} records"
                click.echo(f"{module}: {state} (--restart begins again)", err=True)
        try:
            result = run_backfill(deps, chosen, restart=restart, force=force)
        except KeyboardInterrupt:
            raise click.ClickException("stopped; run the command again to resume") from None
    if result.state == "busy":
        raise click.ClickException("a backfill is running in another process")
    for progress in result.modules:
        click.echo(f"{progress.module}: {progress.queued:,} records queued in {progress.pages:,} pages"
                   + ("" if progress.finished else " so far (stopped; run again to resume)"))
    click.echo(f"{result.queued:,} queued, {result.up_to_date:,} already up to date, {result.calls:,} list calls; "
               f"~{estimate_credits(result.queued)['syncs']:,} credits for their syncs")


# ---------------------------------------------------------------------- sweep
@main.group()
def sweep() -> None:
    """The catch-up sweep: records changed in the CRM that no webhook brought.

    The `sweep` worker runs it every SYNCBRIDGE_SWEEP_MINUTES; these commands run
    one now and show what it keeps.
    """


@sweep.command("run")
def sweep_run() -> None:
    """Run one catch-up sweep now (skipped while another process sweeps)."""
    from syncbridge.handlers.sweep import run_sweep

    settings = load_settings()
    with _sweep_deps(settings, progress=_progress) as deps:
        result = run_sweep(deps)
    if result.state == "busy":
        click.echo("a sweep is under way in another process; nothing done")
        return
    for m in result.modules:
        click.echo(f"{m.module}: {m.listed:,} changed since {m.since:%Y-%m-%d %H:%M:%S} UTC, {m.queued:,} queued, "
                   f"{m.up_to_date:,} already synced, {m.from_failures:,} from failed webhooks, "
                   f"{m.deleted_new:,} newly deleted")
    click.echo(f"{result.queued:,} queued in {result.calls:,} calls")


@sweep.command("status")
@click.option("--json", "as_json", is_flag=True, help="Write JSON.")
def sweep_status(as_json: bool) -> None:
    """Each module's watermark and backfill, and who sweeps now."""
    from syncbridge.bootstrap import build_sweep_state, sweep_interval
    from syncbridge.handlers.sweep import SWEEP_LEASE

    settings = load_settings()
    with database_errors(settings):
        state = build_sweep_state(settings)
        rows = []
        for module in settings.zoho_modules:
            mark, fill = state.watermark(module), state.backfill(module)
            rows.append({"module": module, "watermark": mark.isoformat() if mark else None,
                         "backfill": None if fill is None else {"queued": fill.queued, "pages": fill.pages,
                                                                "finished": fill.finished}})
        holder = state.lease_holder(SWEEP_LEASE)
    interval = sweep_interval(settings)
    if as_json:
        click.echo(json.dumps({"every_minutes": None if interval is None else interval / 60,
                               "sweeping": holder is not None, "modules": rows}))
        return
    click.echo("catch-up sweep: " + ("off" if interval is None else f"every {interval / 60:.0f} min")
               + (" (one under way)" if holder else ""))
    for row in rows:
        fill = row["backfill"]
        click.echo(f"  {row['module']}: watermark {row['watermark'] or 'none yet'}; backfill "
                   + ("never run" if fill is None else
                      f"{'finished' if fill['finished'] else 'stopped'}, {fill['queued']:,} records queued"))


@sweep.command("deleted")
@click.option("--module", help="Only this module.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000), help="Most lines.")
@click.option("--json", "as_json", is_flag=True, help="Write JSON.")
def sweep_deleted(module: str | None, limit: int, as_json: bool) -> None:
    """Records deleted in the CRM that the sweep saw (SYNCBRIDGE_SWEEP_DELETED says what else happens)."""
    from syncbridge.bootstrap import build_sweep_state

    settings = load_settings()
    if module:
        module = _check_modules(settings, (module,))[0]
    with database_errors(settings):
        rows = build_sweep_state(settings).deleted(module=module, limit=limit)
    if as_json:
        click.echo(json.dumps([{"module": r.module, "record_id": r.record_id, "name": r.name,
                                "deleted_at": r.deleted_at.isoformat() if r.deleted_at else None,
                                "seen_at": r.seen_at.isoformat()} for r in rows]))
        return
    if not rows:
        click.echo("no deleted records seen")
    for r in rows:
        when = f"{r.deleted_at:%Y-%m-%d %H:%M}" if r.deleted_at else "unknown time"
        click.echo(f"{r.module}/{r.record_id}  deleted {when}  {r.name}")
