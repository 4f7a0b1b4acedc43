"""Benchmark of the DailyUp import: first day, next day, memory and publishing, against the floor.

For each size (rows = customers + contracts of a generated delivery), in rounds that
alternate the contenders, it measures:

* the floor: reading the next day's ZIP with Python's csv module and hashing each row
  (blake2b), rows/s — what any importer has to do at least;
* the first import (read + validate + store; every row is new), rows/s;
* the next day's import (read + compare with the first + store the changes), rows/s;
* the peak memory (RSS) of the importing process (a fresh process per size and round);
* publishing the first day's deltas to RabbitMQ with publisher confirms, deltas/s, as the
  outbox sends them (up to 100 to a message; at most ``--publish-limit`` of them, so the
  shared broker never holds a million).

Each figure is the median of ``--rounds`` rounds (at least 3).  The last line is the
summary, ``key=value`` pairs whose keys end in the size (``_100k``, ``_1m``, ...):

    first_rows_s_100k next_rows_s_100k peak_rss_mb_100k publish_msgs_s_100k floor_rows_s_100k
    first_cpu_rows_s_100k next_cpu_rows_s_100k floor_cpu_rows_s_100k
    first_vs_floor_100k next_vs_floor_100k first_pg_us_row_100k publish_us_msg_100k publish_broker_us_msg_100k
    first_gc_share_100k
    first_cpu_bound_rows_s_100k publish_cpu_bound_msgs_s_100k
    (and the same for every other size)

``*_cpu_rows_s`` count rows per CPU second of the importing process (or of the floor's
reading), not per wall-clock second: the database's CPU is not in them, but neither is the
waiting for a machine that others load.  ``first_pg_us_row`` is PostgreSQL's CPU per row of a
first day (every postgres process), ``publish_us_msg`` the publishing process's CPU per delta
published and ``publish_broker_us_msg`` RabbitMQ's (beam.smp): on two cores shared by all three,
these say which of them bounds a rate.  ``first_gc_share`` is the share of the importer's CPU
that Python's cycle collector took on the first day.  ``first_cpu_bound_rows_s`` and
``publish_cpu_bound_msgs_s`` turn them into the rate at which the importer and PostgreSQL (the publisher and RabbitMQ)
alone would keep every core busy: the most this machine can give, whatever the scheduling.

    python bench/dailyup.py                  # 100k and 1M rows, PostgreSQL and RabbitMQ on 127.0.0.1
    python bench/dailyup.py --quick          # 20k rows, under a minute, the same keys for that size
    python bench/dailyup.py --database sqlite --rows 100000

A fresh PostgreSQL database is created for every round and dropped after it; the
RabbitMQ exchanges and queues get a namespace of their own and are deleted after it.
The machine is shared and noisy: compare the figures of one run with each other.
"""
from __future__ import annotations

import argparse
import csv
import gc
import hashlib
import io
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROWS_PER_CUSTOMER = 2.5  # a customer and ~1.5 contracts
POSTGRES_ADMIN = os.environ.get("SYNCBRIDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BROKER = os.environ.get("SYNCBRIDGE_BROKER_URL") or "amqp://guest:guest@127.0.0.1:5672//"
CORES = len(os.sched_getaffinity(0))     # the cores this run may use
COUNTED = ("kunden", "vertraege")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def size_name(rows: int) -> str:
    if rows >= 1_000_000 and rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}m"
    if rows >= 1000 and rows % 1000 == 0:
        return f"{rows // 1000}k"
    return str(rows)


# ---------------------------------------------------------------------- the floor
def floor(path: Path) -> dict:
    """Read every table of the ZIP with the csv module and hash each row: the least an import does."""
    started, cpu = time.perf_counter(), time.process_time()
    counted = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            table = info.filename.rsplit("/", 1)[-1].removesuffix(".csv")
            with archive.open(info) as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                reader = csv.reader(text, delimiter=";")
                next(reader, None)
                rows = 0
                for row in reader:
                    hashlib.blake2b(";".join(row).encode(), digest_size=16).digest()
                    rows += 1
            if table in COUNTED:
                counted += rows
    seconds = time.perf_counter() - started
    return {"rows": counted, "rows_s": counted / seconds, "cpu_rows_s": counted / (time.process_time() - cpu)}


# ---------------------------------------------------------------------- one round of syncbridge, in a child
class CollectorTime:
    """The CPU seconds Python's cycle collector takes while the block runs, in any thread (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._began: dict[int, float] = {}

    def _note(self, phase: str, info: dict) -> None:
        thread = threading.get_ident()
        if phase == "start":
            self._began[thread] = time.thread_time()
        elif thread in self._began:
            self.seconds += time.thread_time() - self._began.pop(thread)

    def __enter__(self) -> CollectorTime:
        gc.callbacks.append(self._note)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self._note)


def run_one(day0: Path, day1: Path, database_url: str, broker_url: str, publish_limit: int) -> dict:
    """Import the first and the next day into a fresh database, then publish the first day's deltas."""
    from kombu import Connection
    from scale import service_cpu_seconds  # bench/ is the script's own folder
    from sqlalchemy import update

    from producers.publisher import Publisher
    from producers.topology import build_topology, declare
    from syncbridge.adapters.db import migrate
    from syncbridge.adapters.db.dailyup import DELTAS, SqlDailyUpStore
    from syncbridge.adapters.db.models import utcnow
    from syncbridge.adapters.db.sql import SqlStore
    from syncbridge.dailyup.importer import DailyUpImporter

    migrate.upgrade(database_url)
    store = SqlStore.from_url(database_url)
    dailyup = SqlDailyUpStore(store.engine)
    importer = DailyUpImporter(dailyup, publisher=None, topology=None)
    result: dict = {}

    collector = CollectorTime()
    services, started, cpu = service_cpu_seconds(), time.perf_counter(), time.process_time()
    with collector:
        first = importer.import_file(day0, source="cli")
    seconds = time.perf_counter() - started
    assert first.state == "accepted", first
    result.update(first_rows=sum(first.rows.get(t, 0) for t in COUNTED), first_s=seconds,
                  first_cpu_s=time.process_time() - cpu, first_gc_cpu_s=collector.seconds,
                  first_pg_cpu_s=service_cpu_seconds()["postgres"] - services["postgres"])
    first_deltas = dailyup.count_unpublished()

    # The first day's deltas beyond the limit are taken as published: the broker is shared.
    with store.engine.begin() as conn:
        cutoff = conn.execute(DELTAS.select().with_only_columns(DELTAS.c.id).order_by(DELTAS.c.id)
                              .offset(publish_limit).limit(1)).scalar()
        if cutoff is not None:
            conn.execute(update(DELTAS).where(DELTAS.c.id >= cutoff).values(published_at=utcnow()))

    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    topology = build_topology(namespace)
    with Connection(broker_url) as connection:
        declare(connection, topology)
    publisher = Publisher(broker_url, topology, confirm_timeout=60)
    try:
        publishing = DailyUpImporter(dailyup, publisher=publisher, topology=topology)
        pending = dailyup.count_unpublished()
        services, started, cpu = service_cpu_seconds(), time.perf_counter(), time.process_time()
        published = publishing.publish_pending()
        seconds = time.perf_counter() - started
        result.update(publish_cpu_s=time.process_time() - cpu,
                      publish_broker_cpu_s=service_cpu_seconds()["rabbitmq"] - services["rabbitmq"])
        queued = _queued(broker_url, topology)
    finally:
        publisher.close()
        with Connection(broker_url) as connection:
            channel = connection.default_channel
            for queue in topology.queues:
                queue(channel).delete()
            for exchange in topology.exchanges:
                exchange(channel).delete()
    result.update(first_deltas=first_deltas, pending=pending, published=published, queued=queued,
                  publish_s=seconds)

    started, cpu = time.perf_counter(), time.process_time()
    second = importer.import_file(day1, source="cli")
    seconds = time.perf_counter() - started
    assert second.state == "accepted", second
    result.update(next_rows=sum(second.rows.get(t, 0) for t in COUNTED), next_s=seconds,
                  next_cpu_s=time.process_time() - cpu,
                  next_deltas=sum(second.deltas.values()), peak_rss_mb=peak_mb())
    store.engine.dispose()
    return result


def _queued(broker_url: str, topology) -> int:
    """Deltas in the return queue (what the confirms promised is really there): taken, each message counted
    by the deltas it carries (up to 100 a message)."""
    import json

    from kombu import Connection

    with Connection(broker_url) as connection:
        channel = connection.default_channel
        queue = topology.ameise_to_crm(channel)
        total = 0
        while (message := queue.get(no_ack=True, accept=["application/json"])) is not None:
            body = json.loads(message.body)
            total += len(body["deltas"]) if "deltas" in body else 1
        return total


# ---------------------------------------------------------------------- databases
def create_database(kind: str, work: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{work}/bench-{uuid.uuid4().hex[:8]}.db", None
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(POSTGRES_ADMIN)
    name = f"syncbridge_bench_{uuid.uuid4().hex[:10]}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.set(database=name).render_as_string(hide_password=False), name


def drop_database(name: str | None) -> None:
    if name is None:
        return
    import psycopg
    from sqlalchemy.engine import make_url

    conninfo = make_url(POSTGRES_ADMIN).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------- the run
def measure(rows: int, rounds: int, kind: str, broker_url: str, publish_limit: int, work: Path) -> dict:
    from syncbridge.dailyup.generate import write_delivery

    customers = max(1, int(rows / ROWS_PER_CUSTOMER))
    folder = work / size_name(rows)
    folder.mkdir()
    day0 = write_delivery(folder, customers=customers, generation=0)
    day1 = write_delivery(folder, customers=customers, generation=1)
    floors, runs = [], []
    for index in range(rounds):
        # Interleaved: the floor, then syncbridge (a fresh process and database), round by round.
        floors.append(floor(day1))
        url, name = create_database(kind, work)
        try:
            command = [sys.executable, __file__, "--one", str(day0), str(day1), "--database-url", url,
                       "--broker-url", broker_url, "--publish-limit", str(publish_limit)]
            done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        finally:
            drop_database(name)
        print(f"  {size_name(rows)} round {index + 1}: floor {floors[-1]['rows_s']:.0f} rows/s, "
              f"first {runs[-1]['first_rows'] / runs[-1]['first_s']:.0f}, "
              f"next {runs[-1]['next_rows'] / runs[-1]['next_s']:.0f}, "
              f"publish {runs[-1]['published'] / runs[-1]['publish_s']:.0f} msg/s, "
              f"{runs[-1]['peak_rss_mb']:.0f} MB", flush=True)

    def median(values: list[float]) -> float:
        return statistics.median(values)

    floor_s = median([f["rows_s"] for f in floors])
    first_s = median([r["first_rows"] / r["first_s"] for r in runs])
    next_s = median([r["next_rows"] / r["next_s"] for r in runs])
    return {
        "first_rows_s": round(first_s), "next_rows_s": round(next_s),
        "peak_rss_mb": round(median([r["peak_rss_mb"] for r in runs])),
        "publish_msgs_s": round(median([r["published"] / r["publish_s"] for r in runs])),
        "floor_rows_s": round(floor_s),
        # Rows per CPU second of the importing process (the database's own CPU not counted): on a shared,
        # overloaded machine wall-clock rates swing with the neighbours' load, these much less.
        "first_cpu_rows_s": round(median([r["first_rows"] / r["first_cpu_s"] for r in runs])),
        "next_cpu_rows_s": round(median([r["next_rows"] / r["next_cpu_s"] for r in runs])),
        "floor_cpu_rows_s": round(median([f["cpu_rows_s"] for f in floors])),
        "first_vs_floor": round(first_s / floor_s, 3), "next_vs_floor": round(next_s / floor_s, 3),
        # Where the time of a first day and of publishing goes: PostgreSQL's CPU per row beside the
        # importer's, and the broker's CPU per message beside the publishing process's.
        "first_pg_us_row": round(median([r["first_pg_cpu_s"] / r["first_rows"] * 1e6 for r in runs]), 1),
        # The share of the importer's CPU that Python's cycle collector took on the first day.
        "first_gc_share": round(median([r["first_gc_cpu_s"] / r["first_cpu_s"] for r in runs]), 4),
        "publish_us_msg": round(median([r["publish_cpu_s"] / r["published"] * 1e6 for r in runs]), 1),
        "publish_broker_us_msg": round(median([r["publish_broker_cpu_s"] / r["published"] * 1e6 for r in runs]), 1),
        # The rates at which these alone would keep every core of the machine busy: no wall-clock rate
        # can pass them, so a target above them is out of this machine's reach whatever else is done.
        "first_cpu_bound_rows_s": round(median([CORES * r["first_rows"] / (r["first_cpu_s"] + r["first_pg_cpu_s"])
                                                for r in runs])),
        "publish_cpu_bound_msgs_s": round(median([
            CORES * r["published"] / (r["publish_cpu_s"] + r["publish_broker_cpu_s"]) for r in runs])),
        # Correct in kind: every confirmed delta is in the queue, each size has its rows.
        "rows": runs[0]["next_rows"], "published": runs[0]["published"], "queued": runs[0]["queued"],
        "next_deltas": runs[0]["next_deltas"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="delivery sizes in rows (customers + contracts); default 100000 1000000")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size (the median is reported; at least 3)")
    parser.add_argument("--quick", action="store_true", help="one size of 20000 rows: under a minute")
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres",
                        help="a fresh PostgreSQL database on 127.0.0.1 (default) or a SQLite file per round")
    parser.add_argument("--broker-url", default=BROKER, help="RabbitMQ for the publish figure")
    parser.add_argument("--publish-limit", type=int, default=100_000,
                        help="deltas of the first day published per round at most (default 100000)")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    if args.one:
        print(json.dumps(run_one(Path(args.one[0]), Path(args.one[1]), args.database_url, args.broker_url,
                                 args.publish_limit)))
        return
    sizes = [20_000] if args.quick else args.rows
    rounds = max(3, args.rounds)
    work = Path(tempfile.mkdtemp(prefix="syncbridge-bench-"))
    summary: dict[str, object] = {}
    try:
        for rows in sizes:
            figures = measure(rows, rounds, args.database, args.broker_url, args.publish_limit, work)
            summary.update({f"{key}_{size_name(rows)}": value for key, value in figures.items()})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(" ".join(f"{key}={value}" for key, value in summary.items()))


if __name__ == "__main__":
    main()
