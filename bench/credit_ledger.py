"""Benchmark of the Zoho API credit ledger: the cost of counting one call, and of reading a full 24 h.

For SQLite (a WAL file) and PostgreSQL (``--postgres-url``, a schema of its own, dropped at
the end) it measures, each the median of its samples:

* ``spend``: one call's upsert into its minute's row (the hot path of every Zoho call);
* ``used_24h`` / ``totals_24h``: the sums the status and the Overview read, over a full
  24 h of 1,440 minutes x ``--calls`` call types x 2 purposes.

It ends with ONE summary line of key=value pairs::

    python bench/credit_ledger.py
    python bench/credit_ledger.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from syncbridge.adapters.db.credits import CREDITS, SqlCreditLedger
from syncbridge.adapters.db.migrate import upgrade
from syncbridge.adapters.db.sql import make_engine
from syncbridge.ports import CreditUse, credit_minute

CALLS = ("get_record", "search", "upsert", "list_records", "insert", "update", "delete", "field_metadata")


def measure(url: str, label: str, spends: int, call_types: int) -> dict[str, float]:
    upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    ledger = SqlCreditLedger(engine, now=lambda: now)
    ledger.spend(CreditUse("search", 1))          # the first spend prunes: not measured
    samples = []
    for n in range(spends):
        started = time.perf_counter()
        ledger.spend(CreditUse(CALLS[n % call_types], 1 + n % 10, records=n % 100))
        samples.append(time.perf_counter() - started)
    rows = [{"bucket": credit_minute(now - timedelta(minutes=m)), "call": call, "purpose": purpose,
             "credits": 3, "calls": 2, "records": 20}
            for m in range(1, 1441) for call in CALLS[:call_types] for purpose in ("sync", "backfill")]
    with engine.begin() as conn:
        conn.execute(insert(CREDITS), rows)
    since = now - timedelta(hours=24)
    used = [_timed(lambda: ledger.used(since)) for _ in range(20)]
    totals = [_timed(lambda: ledger.totals(since)) for _ in range(20)]
    kept = ledger.minutes_kept()
    engine.dispose()
    return {f"{label}_spend_ms": statistics.median(samples) * 1000,
            f"{label}_spend_p99_ms": sorted(samples)[int(len(samples) * 0.99)] * 1000,
            f"{label}_used_24h_ms": statistics.median(used) * 1000,
            f"{label}_totals_24h_ms": statistics.median(totals) * 1000, f"{label}_rows": kept}


def _timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spends", type=int, default=2000, help="calls counted per database")
    parser.add_argument("--calls", type=int, default=4, help="call types per minute in the filled 24 h")
    parser.add_argument("--postgres-url", default="", help="PostgreSQL to measure too")
    args = parser.parse_args()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        results.update(measure(f"sqlite:///{folder}/credits.db", "sqlite", args.spends, args.calls))
    if args.postgres_url:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(args.postgres_url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(args.postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            results.update(measure(url.render_as_string(hide_password=False), "postgres", args.spends, args.calls))
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    print(" ".join(f"{key}={value:.2f}" if isinstance(value, float) else f"{key}={value}"
                   for key, value in results.items()))


if __name__ == "__main__":
    main()
