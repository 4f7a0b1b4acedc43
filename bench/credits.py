"""Benchmark of the Zoho API credits the DailyUp return path spends: records per credit.

Two days of a generated delivery are imported (the first day: every record new; the
next day: a few dozen scattered changes, new and deleted records among them) and their
deltas applied to the simulated Zoho CRM over HTTP, as the ``ameise-to-crm`` worker
applies them (batches of up to 100 deltas in the outbox's order, the worker's handler).
The simulator bills each call as Zoho does: 1 credit per call, an upsert 1 credit per
10 records.  The next day's minimum is what its changes need at least: one upsert per
CRM module, ``ceil(records / 10)`` credits each, and nothing else.

    python bench/credits.py              # 2000 customers (about 5000 records), 3 rounds
    python bench/credits.py --quick      # 400 customers, under a minute

The last line is the summary:
``first_per_credit next_per_credit next_min_credits next_used_credits`` (medians of the
rounds), with ``first_records first_credits next_records next_calls`` beside them.
"""
from __future__ import annotations

import argparse
import logging
import math
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

APPLIED = ("created", "updated", "marked", "deleted")


class CountingCrm:
    """The real Zoho client, each call counted by method (what the credits went to)."""

    def __init__(self, crm: Any) -> None:
        self.crm = crm
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.crm, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)
        return counted


def one_round(customers: int, work: Path) -> dict:
    from simulators.server import ServerThread
    from simulators.zoho import (
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        DEFAULT_REFRESH_TOKEN,
        ZohoState,
        create_zoho_app,
    )
    from syncbridge.adapters.db import migrate
    from syncbridge.adapters.db.dailyup import SqlDailyUpStore
    from syncbridge.adapters.db.sql import SqlStore
    from syncbridge.adapters.zoho import ZohoClient
    from syncbridge.config import ENTITY_KINDS, Settings
    from syncbridge.dailyup.generate import write_delivery
    from syncbridge.dailyup.importer import DailyUpImporter
    from syncbridge.handlers import ReturnDependencies, sync_ameise_records_to_crm
    from syncbridge.mapping import load_mapping
    from syncbridge.messages import AmeiseRecordChanged, SyncAmeiseRecordsToCrm

    folder = Path(tempfile.mkdtemp(dir=work))
    database_url = f"sqlite:///{folder}/credits.db"
    migrate.upgrade(database_url)
    store = SqlStore.from_url(database_url)
    dailyup = SqlDailyUpStore(store.engine)
    importer = DailyUpImporter(dailyup)
    state = ZohoState()
    days = []
    with ServerThread(create_zoho_app(state)) as server:
        crm = CountingCrm(ZohoClient(accounts_url=server.url, client_id=DEFAULT_CLIENT_ID,
                                     client_secret=DEFAULT_CLIENT_SECRET, refresh_token=DEFAULT_REFRESH_TOKEN,
                                     token_store=store.tokens, timeout=30.0))
        settings = Settings.from_env({})
        deps = ReturnDependencies(crm=crm, snapshot=dailyup, store=store, mapping=load_mapping(),  # type: ignore[arg-type]
                                  modules={kind: settings.module_for(kind) for kind in ENTITY_KINDS})
        for generation in (0, 1):
            # Each day is applied before the next is imported, as in the service: the snapshot is the day's.
            imp = importer.import_file(write_delivery(folder, customers=customers, generation=generation))
            deltas = _deltas_of(dailyup, imp.import_id)
            credits, calls = state.credits_used, state.api_calls
            crm.calls.clear()
            per_module: Counter[str] = Counter()
            for index in range(0, len(deltas), 100):
                batch = tuple(AmeiseRecordChanged(delta_id=f"{d.import_id}:{d.entity}:{d.key}", import_id=d.import_id,
                                                  delivered_on="2026-11-02", entity=d.entity, change=d.change,
                                                  key=d.key, changed_fields=tuple(d.changed_fields or ()))
                              for d in deltas[index:index + 100])
                for outcome in sync_ameise_records_to_crm(SyncAmeiseRecordsToCrm(batch), deps):
                    if outcome.status != "ok":
                        raise SystemExit(f"delta not applied: {outcome}")
                    if outcome.action in APPLIED and outcome.module:
                        per_module[outcome.module] += 1
            days.append({"records": len(deltas), "credits": state.credits_used - credits,
                         "calls": state.api_calls - calls, "by_method": dict(crm.calls),
                         "min_credits": sum(math.ceil(n / 10) for n in per_module.values()),
                         "per_module": dict(per_module)})
    store.engine.dispose()
    return {"first": days[0], "next": days[1]}


def _deltas_of(dailyup, import_id: int) -> list:
    """The deltas an import produced, from the outbox, in the order the worker receives them."""
    from sqlalchemy import select

    from syncbridge.adapters.db.models import DailyUpDeltaRecord as Delta

    with dailyup.engine.connect() as conn:
        return conn.execute(select(Delta).where(Delta.import_id == import_id).order_by(Delta.id)).all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=2000, help="customers of the delivery (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the median is reported; at least 3)")
    parser.add_argument("--quick", action="store_true", help="400 customers: under a minute")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    customers = 400 if args.quick else args.customers
    work = Path(tempfile.mkdtemp(prefix="syncbridge-credits-"))
    rounds = []
    try:
        for index in range(max(3, args.rounds)):
            rounds.append(one_round(customers, work))
            first, nxt = rounds[-1]["first"], rounds[-1]["next"]
            print(f"  round {index + 1}: first day {first['records']} records, {first['credits']} credits, "
                  f"{first['calls']} calls {first['by_method']}; next day {nxt['records']} records, "
                  f"{nxt['credits']} credits (minimum {nxt['min_credits']}), {nxt['calls']} calls "
                  f"{nxt['by_method']} {nxt['per_module']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(day: str, key: str) -> float:
        return statistics.median(r[day][key] for r in rounds)

    summary = {
        "first_per_credit": round(statistics.median(r["first"]["records"] / r["first"]["credits"] for r in rounds), 2),
        "next_per_credit": round(statistics.median(r["next"]["records"] / r["next"]["credits"] for r in rounds), 2),
        "next_min_credits": round(median("next", "min_credits")),
        "next_used_credits": round(median("next", "credits")),
        "first_records": round(median("first", "records")), "first_credits": round(median("first", "credits")),
        "next_records": round(median("next", "records")), "next_calls": round(median("next", "calls")),
    }
    print(" ".join(f"{key}={value}" for key, value in summary.items()))


if __name__ == "__main__":
    main()
