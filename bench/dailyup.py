"""Benchmark of the DailyUp return path: import, diff, publish, and Zoho upserts.

For each size (rows = customers + contracts of a generated delivery) it prints:

* import of the first delivery (read + validate + store; every row is "created"), rows/s;
* import of the next day's delivery (read + validate + diff against the first), rows/s;
* peak memory (RSS) of the process, each size in a fresh process;
* publishing the first delivery's deltas to the return queue with confirms, msg/s;
* and once, two days of a smaller delivery applied to the simulated Zoho CRM over
  HTTP as batched upserts: records per API credit and records/s.

    python bench/dailyup.py                          # 100k and 1M rows, SQLite, in-process broker
    python bench/dailyup.py --rows 100000 --broker-url amqp://guest:guest@127.0.0.1:5672//
    python bench/dailyup.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench

The machine is shared and noisy: compare figures of one run with each other.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROWS_PER_CUSTOMER = 2.5  # a customer and ~1.5 contracts


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(rows: int, database_url: str | None, broker_url: str | None) -> dict:
    """One size, in this process."""
    from kombu import Connection

    from producers.memory import MemoryPublisher
    from producers.publisher import Publisher
    from producers.topology import build_topology, declare
    from syncbridge.adapters.db import migrate
    from syncbridge.adapters.db.dailyup import SqlDailyUpStore
    from syncbridge.adapters.db.sql import SqlStore
    from syncbridge.dailyup.generate import write_delivery
    from syncbridge.dailyup.importer import DailyUpImporter

    customers = max(1, int(rows / ROWS_PER_CUSTOMER))
    work = Path(tempfile.mkdtemp(prefix="syncbridge-bench-"))
    database_url = database_url or f"sqlite:///{work}/bench.db"
    result: dict = {"rows_target": rows, "customers": customers, "database": database_url.split(":")[0]}

    started = time.perf_counter()
    day0 = write_delivery(work, customers=customers, generation=0)
    day1 = write_delivery(work, customers=customers, generation=1)
    result["generate_s"] = round(time.perf_counter() - started, 1)
    result["zip_mb"] = round(day0.stat().st_size / 1e6, 1)

    migrate.upgrade(database_url)
    store = SqlStore.from_url(database_url)
    dailyup = SqlDailyUpStore(store.engine)
    importer = DailyUpImporter(dailyup, publisher=None, topology=None)

    started = time.perf_counter()
    first = importer.import_file(day0, source="cli")
    seconds = time.perf_counter() - started
    total = sum(first.rows.get(t, 0) for t in ("kunden", "vertraege"))
    result.update(rows=total, import_s=round(seconds, 1), import_rows_per_s=round(total / seconds),
                  import_state=first.state, peak_mb_after_import=round(peak_mb()))

    started = time.perf_counter()
    second = importer.import_file(day1, source="cli")
    seconds = time.perf_counter() - started
    total = sum(second.rows.get(t, 0) for t in ("kunden", "vertraege"))
    result.update(diff_s=round(seconds, 1), diff_rows_per_s=round(total / seconds), deltas_day2=second.deltas,
                  peak_mb_after_diff=round(peak_mb()))

    # Publishing: the first day's outbox (every row) and the second day's.
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    topology = build_topology(namespace)
    url = broker_url or "memory://localhost/"
    with Connection(url) as connection:
        declare(connection, topology)
    publisher = MemoryPublisher(topology, url) if url.startswith("memory://") else Publisher(url, topology,
                                                                                              confirm_timeout=30)
    importer = DailyUpImporter(dailyup, publisher=publisher, topology=topology)
    pending = dailyup.count_unpublished()
    started = time.perf_counter()
    published = importer.publish_pending()
    seconds = time.perf_counter() - started
    result.update(broker=url.split("://")[0], published=published, pending_before=pending,
                  publish_s=round(seconds, 1), publish_msg_per_s=round(published / seconds) if seconds else None)
    if broker_url:
        with Connection(url) as connection:
            channel = connection.default_channel
            for queue in topology.queues:
                queue(channel).delete()
            for exchange in topology.exchanges:
                exchange(channel).delete()
    publisher.close()

    result["peak_mb"] = round(peak_mb())
    subprocess.run(["rm", "-rf", str(work)], check=False)
    return result


def zoho_stage(customers: int) -> dict:
    """Two days of a smaller delivery into the simulated Zoho CRM over HTTP: records per credit and per second."""
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

    work = Path(tempfile.mkdtemp(prefix="syncbridge-bench-"))
    database_url = f"sqlite:///{work}/zoho.db"
    migrate.upgrade(database_url)
    store = SqlStore.from_url(database_url)
    dailyup = SqlDailyUpStore(store.engine)
    importer = DailyUpImporter(dailyup)
    imports = [importer.import_file(write_delivery(work, customers=customers, generation=g)) for g in (0, 1)]
    result: dict = {"customers": customers}
    state = ZohoState()
    with ServerThread(create_zoho_app(state)) as server:
        crm = ZohoClient(accounts_url=server.url, client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET,
                         refresh_token=DEFAULT_REFRESH_TOKEN, token_store=store.tokens, timeout=30.0)
        settings = Settings.from_env({})
        deps = ReturnDependencies(crm=crm, snapshot=dailyup, store=store, mapping=load_mapping(),
                                  modules={kind: settings.module_for(kind) for kind in ENTITY_KINDS})
        for day, imp in enumerate(imports, start=1):
            deltas = _deltas_of(dailyup, imp.import_id)
            credits, calls = state.credits_used, state.api_calls
            started = time.perf_counter()
            for index in range(0, len(deltas), 100):
                batch = tuple(AmeiseRecordChanged(delta_id=f"{d.import_id}:{d.entity}:{d.key}", import_id=d.import_id,
                                                  delivered_on="2026-11-02", entity=d.entity, change=d.change,
                                                  key=d.key, changed_fields=tuple(d.changed_fields or ()))
                              for d in deltas[index:index + 100])
                sync_ameise_records_to_crm(SyncAmeiseRecordsToCrm(batch), deps)
            seconds = time.perf_counter() - started
            spent = state.credits_used - credits
            result[f"day{day}"] = {"records": len(deltas), "credits": spent, "calls": state.api_calls - calls,
                                   "records_per_credit": round(len(deltas) / spent, 2) if spent else None,
                                   "records_per_s": round(len(deltas) / seconds)}
    subprocess.run(["rm", "-rf", str(work)], check=False)
    return result


def _deltas_of(dailyup, import_id: int) -> list:
    """The deltas an import produced, from the outbox (published or not), in order."""
    from sqlalchemy import select

    from syncbridge.adapters.db.models import DailyUpDeltaRecord as Delta

    with dailyup.engine.connect() as conn:
        return conn.execute(select(Delta).where(Delta.import_id == import_id).order_by(Delta.id)).all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="delivery sizes in rows (customers + contracts)")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file per size")
    parser.add_argument("--broker-url", default=os.environ.get("SYNCBRIDGE_BROKER_URL") or None,
                        help="RabbitMQ for the publish figure (default: in-process broker)")
    parser.add_argument("--zoho-customers", type=int, default=2000,
                        help="customers of the two-day delivery sent to the simulated Zoho")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--zoho", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.disable(logging.INFO)   # the simulator's request lines would drown the figures
    if args.zoho:
        print(json.dumps(zoho_stage(args.zoho_customers)))
        return
    if args.one:
        print(json.dumps(run_one(args.one, args.database_url, args.broker_url)))
        return
    runs = [(f"{rows} rows", [sys.executable, __file__, "--one", str(rows)]) for rows in args.rows]
    runs.append((f"Zoho upserts ({args.zoho_customers} customers, two days)",
                 [sys.executable, __file__, "--zoho", "--zoho-customers", str(args.zoho_customers)]))
    for title, command in runs:
        if args.database_url:
            command += ["--database-url", args.database_url]
        if args.broker_url:
            command += ["--broker-url", args.broker_url]
        print(f"== {title}", flush=True)
        output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
        figures = json.loads(output)
        for key, value in figures.items():
            print(f"  {key:<30} {value}")


if __name__ == "__main__":
    main()
