"""CRM -> Ameise throughput with 1, 2 and 4 `crm-to-ameise` worker processes, simulators instant and slow.

Each simulator runs in a process of its own; the workers run exactly as the Procfile
says (`syncbridge worker crm-to-ameise`) on RabbitMQ (quorum queue) and a PostgreSQL
database of the run's own.  Once the workers consume, N CRM record events of N new
contacts are published with confirms (every fifth record gets a second event right
behind its first, so two deliveries of one record race: the lease and the per-record
order must keep it at one create); throughput is N / (time from the first publish
to the last customer written in Ameise).  "50ms": every Ameise web-service call
waits 50 ms before it answers.  Rounds alternate the configurations; each figure is
the median of the rounds.  CPU per record: user+system seconds of the worker
processes (and of each simulator) during the round / N; the same of the whole
PostgreSQL server (its processes, and the backends that ended meanwhile) and of
RabbitMQ (beam.smp), which are shared with other work on the machine: their figures
include whatever else ran; and how many sessions PostgreSQL opened on the run's
database during the round (a pool that opens and closes connections shows there);
the Zoho API calls per record (a read per event, every fifth record has two, and the
write-backs, which travel together when they queue up behind one in flight).

    python bench/scale.py                   # 2000 records, 3 rounds (several minutes)
    python bench/scale.py --quick           # 60 records, 1 round (under a minute)

Before it: lost, duplicates and the worker CPU ms per record of c1 and c1_50ms; the
last line: c1 c2 c4 speedup4 c1_50ms c4_50ms (records/s).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import crm_stack  # noqa: E402  (bench/ is the script's own folder)

CONFIGS = [("c1", 1, 0.0), ("c2", 2, 0.0), ("c4", 4, 0.0), ("c1_50ms", 1, 0.05), ("c4_50ms", 4, 0.05)]


def cpu_seconds(pid: int) -> float:
    """crm_stack.cpu_seconds, read again when a thread of the process ended while it was read."""
    for _ in range(5):
        try:
            return crm_stack.cpu_seconds(pid)
        except FileNotFoundError:
            continue
    return crm_stack.cpu_seconds(pid)


def service_cpu_seconds() -> dict[str, float]:
    """User + system CPU seconds so far of PostgreSQL (every postgres process, with the backends its
    postmaster reaped) and of RabbitMQ (beam.smp), read from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    totals = {"postgres": 0.0, "rabbitmq": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        kind = "postgres" if name == "postgres" else "rabbitmq" if name.startswith("beam") else None
        if kind is not None:
            totals[kind] += sum(int(value) for value in fields[11:15]) / tick
    return totals


def one_round(sims: crm_stack.Simulators, env: dict, work: Path, tag: str, workers: int, delay: float,
              records: int, broker_url: str, namespace: str, database: str) -> dict:
    from contracts.events import CrmRecordChangedSchema
    from producers.publisher import Publisher
    from producers.topology import build_topology
    from syncbridge.messages import CrmRecordChanged, crm_record_changed_key

    names = [f"S{tag}x{index:05d}" for index in range(records)]
    ids = sims.seed_contacts(names)
    sims.set_delay(delay)
    logs = [work / f"{tag}-worker{n}.log" for n in range(workers)]
    processes = [crm_stack.start("worker-crm-to-ameise", env, log) for log in logs]
    try:
        crm_stack.wait_until(lambda: all("consuming from" in log.read_text() for log in logs), 60,
                             "the workers consuming", interval=0.2)
        schema = CrmRecordChangedSchema()
        messages = []
        for index, record_id in enumerate(ids):
            for repeat in range(2 if index % 5 == 0 else 1):
                event = CrmRecordChanged(event_id=f"{tag}-{index}-{repeat}", source="zoho-workflow",
                                         module="Contacts", record_id=record_id, received_at=datetime.now(UTC))
                messages.append((crm_record_changed_key("Contacts"), schema.dump(event), event.event_id))
        publisher = Publisher(broker_url, build_topology(namespace))
        cpu_before = sum(cpu_seconds(p.pid) for p in processes)
        sims_before = [cpu_seconds(p.pid) for p in sims.processes]
        services_before = service_cpu_seconds()
        sessions_before = crm_stack.pg_sessions(database)
        zoho_before = sims.zoho_usage()
        started = time.time()
        # Where the receiver publishes them (the direct exchange of the synced modules).
        publisher.publish_many(publisher.topology.crm_exchange(crm_record_changed_key("Contacts")), messages)
        publisher.close()

        def all_written():
            written = sims.written()
            return written if all(name in written for name in names) else None
        try:
            written = crm_stack.wait_until(all_written, 60 + records * (0.2 if delay else 0.05), "every record",
                                           interval=0.25)
        except TimeoutError:
            written = sims.written()
        cpu = sum(cpu_seconds(p.pid) for p in processes) - cpu_before
        sims_cpu = [cpu_seconds(p.pid) - before for p, before in zip(sims.processes, sims_before)]
        services_cpu = {name: cpu - services_before[name] for name, cpu in service_cpu_seconds().items()}
        sessions = crm_stack.pg_sessions(database) - sessions_before
        zoho_calls = sims.zoho_usage()[0] - zoho_before[0]
        # Let a racing second delivery finish before duplicates are counted.
        time.sleep(0.5)
        written = sims.written()
    finally:
        crm_stack.stop(processes)
    ours = {name: written.get(name, []) for name in names}
    last = max((max(times) for times in ours.values() if times), default=started)
    return {
        "rate": records / max(last - started, 1e-6),
        "lost": sum(1 for times in ours.values() if not times),
        "duplicates": sum(len(times) - 1 for times in ours.values() if times),
        "cpu_ms": 1000 * cpu / records,
        "zoho_cpu_ms": 1000 * sims_cpu[0] / records,
        "ameise_cpu_ms": 1000 * sims_cpu[1] / records,
        "postgres_cpu_ms": 1000 * services_cpu["postgres"] / records,
        "rabbitmq_cpu_ms": 1000 * services_cpu["rabbitmq"] / records,
        "pg_sessions": sessions,
        "zoho_calls": zoho_calls / records,
    }


def run(records: int, rounds: int, broker_url: str, configs=CONFIGS, prefetch: str | None = None,
        concurrency: str | None = None) -> dict:
    from sqlalchemy.engine import make_url

    work = Path(tempfile.mkdtemp(prefix="syncbridge-bench-scale-"))
    namespace = f"bench-scale-{uuid.uuid4().hex[:8]}"
    sims = crm_stack.Simulators(work)
    results: dict[str, list[dict]] = {name: [] for name, _, _ in configs}
    try:
        with crm_stack.database("bench_scale") as database_url:
            extra = {"prefetch_count": prefetch} if prefetch else {}
            if concurrency:
                extra["sync_concurrency"] = concurrency
            env = crm_stack.environment(sims, database_url, namespace, broker_url, crm_stack.free_port(), **extra)
            crm_stack.release(env)
            for round_number in range(rounds):
                for name, workers, delay in configs:
                    figures = one_round(sims, env, work, f"{name}r{round_number}", workers, delay, records,
                                        broker_url, namespace, make_url(database_url).database or "")
                    results[name].append(figures)
                    print(f"round {round_number + 1} {name}: {figures['rate']:.1f} records/s, "
                          f"lost {figures['lost']}, duplicates {figures['duplicates']}, "
                          f"CPU ms/record: workers {figures['cpu_ms']:.2f}, Zoho simulator {figures['zoho_cpu_ms']:.2f}, "
                          f"Ameise simulator {figures['ameise_cpu_ms']:.2f}, "
                          f"PostgreSQL {figures['postgres_cpu_ms']:.2f}, RabbitMQ {figures['rabbitmq_cpu_ms']:.2f} "
                          f"(both shared), PostgreSQL sessions opened {figures['pg_sessions']}, "
                          f"Zoho calls per record {figures['zoho_calls']:.2f}, "
                          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        sims.stop()
        crm_stack.delete_queues(broker_url, namespace)
        shutil.rmtree(work, ignore_errors=True)
    summary: dict = {name: "-" for name, _, _ in CONFIGS}
    summary.update({name: round(crm_stack.median([r["rate"] for r in rs]), 1) for name, rs in results.items()})
    summary["speedup4"] = round(summary["c4"] / summary["c1"], 2) if results.get("c1") and results.get("c4") else "-"
    summary["lost"] = sum(r["lost"] for rs in results.values() for r in rs)
    summary["duplicates"] = sum(r["duplicates"] for rs in results.values() for r in rs)
    for name in ("c1", "c1_50ms"):
        summary[f"cpu_ms_{name}"] = round(crm_stack.median([r["cpu_ms"] for r in results[name]]), 2) \
            if results.get(name) else "-"
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="60 records, one round: under a minute")
    parser.add_argument("--records", type=int, default=None, help="records per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3)")
    parser.add_argument("--prefetch", default=None, help="SYNCBRIDGE_PREFETCH_COUNT of the workers")
    parser.add_argument("--concurrency", default=None, help="SYNCBRIDGE_SYNC_CONCURRENCY of the workers")
    parser.add_argument("--only", default=None, help="comma-separated configurations to run (e.g. c1,c1_50ms)")
    parser.add_argument("--broker-url", default=crm_stack.BROKER_URL)
    args = parser.parse_args()
    records = args.records or (60 if args.quick else 2000)
    rounds = args.rounds or (1 if args.quick else 3)
    configs = [c for c in CONFIGS if not args.only or c[0] in args.only.split(",")]
    summary = run(records, rounds, args.broker_url, configs, prefetch=args.prefetch,
                  concurrency=args.concurrency)
    print(" ".join(f"{key}={summary[key]}" for key in ("lost", "duplicates", "cpu_ms_c1", "cpu_ms_c1_50ms")))
    order = ["c1", "c2", "c4", "speedup4", "c1_50ms", "c4_50ms"]
    print(" ".join(f"{key}={summary[key]}" for key in order), flush=True)


if __name__ == "__main__":
    main()
