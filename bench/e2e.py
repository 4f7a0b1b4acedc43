"""End to end: a Zoho workflow webhook in, the customer written in the Ameise simulator, at a fixed rate.

The Procfile's processes run as it says — `web` (gunicorn, WEB_CONCURRENCY=2) and one
`worker-crm-to-ameise` — on RabbitMQ (quorum queue) and a PostgreSQL database of the
run's own; each simulator runs in a process of its own.  Webhooks of distinct new
CRM contacts are sent at ``--rate`` per second for ``--seconds``, each at its planned
time, by a sender process of its own (asyncio, requests built beforehand, a few
keep-alive connections), which reports the rate it reached.  A record's latency is
from the moment its webhook was sent to the moment the Ameise simulator created the
customer.  "lost": a webhook answered 202 whose record never reached Ameise (waited
for until nothing moved for 30 s); "duplicates": customers created more than once.
Each figure is the median of the rounds; ``--delay 0.05`` makes every Ameise call
take 50 ms, ``--zoho-delay 0.1`` every Zoho API call 100 ms.

Before each round's figures, the CPU (user + system) each part used from the first
webhook sent to the last record written, in ms per record: the web processes, the
worker, each simulator, the PostgreSQL backends of the run's database, the RabbitMQ
node (shared with whatever else uses the broker) and the sender; and how busy the
machine's cores were meanwhile — where the time goes, and whether the CPU is the bound.

    python bench/e2e.py                      # 200/s for 60 s, 3 rounds
    python bench/e2e.py --delay 0.05         # ... with 50 ms Ameise calls
    python bench/e2e.py --rate 80 --zoho-delay 0.1   # 100 ms Zoho calls: Zoho's concurrency limit binds
    python bench/e2e.py --quick              # 100/s for 3 s, 1 round (under a minute)

Last line: rate p50_ms p99_ms max_ms lost duplicates zoho_calls_record zoho_credits_record
cpu_ms_record service_cpu_ms_record cpu_bound_rate service_cpu_bound_rate.  ``zoho_calls_record`` and
``zoho_credits_record``: the Zoho API calls the worker made and the credits the simulator billed for
them (as Zoho bills: a read 1, an update 1 per 10 records), per record.  ``cpu_ms_record`` is the
CPU every part used per record, ``service_cpu_ms_record`` that of the service alone (web, worker, PostgreSQL, RabbitMQ; not the
simulators nor the sender, which stand in for Zoho, Ameise and the CRM), medians of the rounds;
the ``*_cpu_bound_rate`` turn them into the records/s at which they would keep every core busy:
the most this machine can give, whatever the scheduling.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import crm_stack  # noqa: E402  (bench/ is the script's own folder)

WEBHOOK_TOKEN = "dev-zoho-webhook-token"
SEND_TIMEOUT = 10.0
IDLE_REUSE = 1.0        # seconds a kept-alive connection is reused after its last answer (the server's keep-alive is 2 s)


# ------------------------------------------------------------------ the sender (a process of its own)
async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 answer; (status, whether the connection stays open)."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed before an answer")
    status = int(status_line.split(None, 2)[1])
    length, keep, chunked = None, True, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value == b"close":
            keep = False
        elif name == b"transfer-encoding" and b"chunked" in value:
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()
        keep = False
    return status, keep


async def _send_all(url: str, ids: list[str], rate: float, start: float) -> tuple[list[float], list[int]]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = []
    for record_id in ids:
        body = urlencode({"id": record_id, "token": WEBHOOK_TOKEN}).encode()
        requests.append(f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
                        .encode() + body)
    sent = [0.0] * len(ids)
    status = [0] * len(ids)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def send(index: int) -> None:
        sent[index] = time.time()
        connection = None
        while idle:
            reader, writer, last = idle.pop()
            if time.monotonic() - last < IDLE_REUSE and not reader.at_eof():
                connection = reader, writer
                break
            writer.close()
        try:
            if connection is None:
                connection = await asyncio.wait_for(asyncio.open_connection(host, port), SEND_TIMEOUT)
            reader, writer = connection
            writer.write(requests[index])
            status[index], keep = await asyncio.wait_for(_read_answer(reader), SEND_TIMEOUT)
        except (TimeoutError, OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            status[index], keep = -1, False
        if connection is None:
            return
        if keep:
            idle.append((reader, writer, time.monotonic()))
        else:
            writer.close()

    tasks = []
    for index in range(len(ids)):
        wait = start + index / rate - time.time()
        await asyncio.sleep(max(wait, 0.0))     # at least a turn of the loop: behind plan, the sends still go out
        tasks.append(asyncio.create_task(send(index)))
    await asyncio.gather(*tasks)
    for _, writer, _ in idle:
        writer.close()
    return sent, status


def _sender(url: str, ids: list[str], rate: float, start: float, answer) -> None:
    cpu = time.process_time()
    sent, status = asyncio.run(_send_all(url, ids, rate, start))
    answer.send((sent, status, time.process_time() - cpu))


def send_at_rate(url: str, ids: list[str], rate: float, meter: CpuMeter | None = None) \
        -> tuple[list[float], list[int], float]:
    """POST one workflow webhook per record id at ``rate`` per second, from a process of its own.

    (send time, status) of each (-1: no answer), and the CPU seconds the sender used;
    ``meter`` is sampled meanwhile.
    """
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe(duplex=False)
    start = time.time() + 1.0     # the new process is up by then
    process = context.Process(target=_sender, args=(url, ids, rate, start, theirs), daemon=True)
    process.start()
    while not ours.poll(0.1):
        if meter is not None:
            meter.sample()
    sent, status, cpu = ours.recv()
    process.join()
    return sent, status, cpu


# ------------------------------------------------------------------ CPU per part
def _postgres_backends(database: str) -> list[int]:
    """The PostgreSQL backends connected to ``database`` (their process titles name it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if title.startswith("postgres: ") and f" {database} " in title:
                pids.append(int(entry.name))
    return pids


def _rabbitmq_node() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "beam.smp":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine so far, all cores (/proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / tick, sum(fields[:8]) / tick


def _postmaster() -> list[int]:
    """The PostgreSQL server's main process: its CPU counts the backends that have ended (of every database)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres" and \
                        int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == 1:
                    return [int(entry.name)]
            except (OSError, ValueError, IndexError):
                continue
    return []


class CpuMeter:
    """CPU seconds per part of the stack between :meth:`begin` and :meth:`end`.

    Each part is a function giving its PIDs (each counted with its children), looked up
    at every :meth:`sample` too: a process that ends in between (a database connection
    closed by its pool) still counts with what it had used when it was last seen.
    """

    def __init__(self, parts) -> None:
        self.parts = parts

    def _read(self) -> dict[str, dict[int, float]]:
        return {name: {pid: crm_stack.cpu_seconds(pid) for pid in pids()} for name, pids in self.parts.items()}

    def begin(self) -> None:
        self.before, self.machine_before = self._read(), _machine_busy()
        self.latest = {name: dict(pids) for name, pids in self.before.items()}

    def sample(self) -> None:
        for name, pids in self._read().items():
            self.latest[name].update(pids)

    def end(self) -> dict[str, float]:
        self.sample()
        busy, total = _machine_busy()
        used = {name: sum(seconds - self.before[name].get(pid, 0.0) for pid, seconds in pids.items())
                for name, pids in self.latest.items()}
        used["machine_busy"] = busy - self.machine_before[0]
        used["machine_total"] = total - self.machine_before[1]
        return used


# ------------------------------------------------------------------ a round
def one_round(sims: crm_stack.Simulators, receiver: str, database: str, tag: str, rate: float, seconds: float,
              meter: CpuMeter) -> tuple[dict, dict]:
    count = int(rate * seconds)
    names = [f"E{tag}x{index:05d}" for index in range(count)]
    ids = sims.seed_contacts(names)
    prefix = f"E{tag}x"
    sessions = crm_stack.pg_sessions(database)
    zoho_calls, zoho_credits = sims.zoho_usage()
    meter.begin()
    sent, status, sender_cpu = send_at_rate(f"{receiver}/webhooks/zoho/Contacts", ids, rate, meter)
    accepted = [index for index in range(count) if status[index] == 202]

    last_seen, last_change = -1, time.monotonic()
    while True:
        done = sims.written_count(prefix)
        if done >= len(accepted):
            break
        if done != last_seen:
            last_seen, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > 30:
            break
        meter.sample()
        time.sleep(0.1)
    cpu = meter.end()
    cpu["sender"] = sender_cpu
    cpu["pg_sessions"] = crm_stack.pg_sessions(database) - sessions
    time.sleep(0.5)   # a second create of a record would show by now
    written = sims.written(prefix)
    zoho_calls, zoho_credits = (after - before for after, before in zip(sims.zoho_usage(), (zoho_calls, zoho_credits),
                                                                        strict=True))
    latencies = [1000 * (min(written[names[i]]) - sent[i]) for i in accepted if names[i] in written]
    first, last = min(sent), max(sent)
    figures = {
        "sent": count, "accepted": len(accepted),
        "p50_ms": crm_stack.percentile(latencies, 0.5), "p99_ms": crm_stack.percentile(latencies, 0.99),
        "max_ms": max(latencies, default=float("nan")),
        "lost": len(accepted) - len(latencies),
        "duplicates": sum(len(written[name]) - 1 for name in names if name in written),
        "achieved_rate": (count - 1) / max(last - first, 1e-6) if count > 1 else 0.0,
        "statuses": ",".join(f"{code}:{status.count(code)}" for code in sorted(set(status))),
        "zoho_calls_record": zoho_calls / max(len(accepted), 1),
        "zoho_credits_record": zoho_credits / max(len(accepted), 1),
    }
    return figures, cpu


CPU_PARTS = ("web", "worker", "zoho", "ameise", "postgres", "rabbitmq", "sender")
# The service's own share: its processes, its database and its broker.  The simulators and the sender stand
# in for Zoho, Ameise and the CRM's webhook calls, which in use run on other machines.
SERVICE_PARTS = ("web", "worker", "postgres", "rabbitmq")
CORES = len(os.sched_getaffinity(0))     # the cores this run may use


def per_record(cpu: dict, records: int) -> dict[str, float]:
    """CPU ms per record of each part of :data:`CPU_PARTS`."""
    return {part: 1000 * cpu[part] / max(records, 1) for part in CPU_PARTS}


def cpu_line(cpu: dict, records: int) -> str:
    per = per_record(cpu, records)
    window = cpu["machine_total"] / max(os.cpu_count() or 1, 1)
    return ("CPU ms/record: " + " ".join(f"{part}={per[part]:.2f}" for part in CPU_PARTS)
            + f" sum={sum(per.values()):.2f}"
            + f"; pg_cluster={1000 * cpu['pg_cluster'] / max(records, 1):.2f} pg_sessions_opened={cpu['pg_sessions']}"
            + f"; machine busy {100 * cpu['machine_busy'] / max(cpu['machine_total'], 1e-9):.0f}%"
            f" of {os.cpu_count()} cores over {window:.1f} s, load {os.getloadavg()[0]:.1f}")


def run(rate: float, seconds: float, rounds: int, delay: float, broker_url: str, zoho_delay: float = 0.0) -> dict:
    work = Path(tempfile.mkdtemp(prefix="syncbridge-bench-e2e-"))
    namespace = f"bench-e2e-{uuid.uuid4().hex[:8]}"
    sims = crm_stack.Simulators(work)
    results = []
    processes = []
    try:
        with crm_stack.database("bench_e2e") as database_url:
            database = database_url.rsplit("/", 1)[1]
            port = crm_stack.free_port()
            env = {**crm_stack.environment(sims, database_url, namespace, broker_url, port), "WEB_CONCURRENCY": "2"}
            crm_stack.release(env)
            sims.set_delay(delay, zoho=zoho_delay)
            processes = [crm_stack.start("web", env, work / "web.log"),
                         crm_stack.start("worker-crm-to-ameise", env, work / "worker.log")]
            receiver = f"http://127.0.0.1:{port}"
            crm_stack.wait_until(lambda: "consuming from" in (work / "worker.log").read_text(), 60, "the worker")
            crm_stack.wait_until(lambda: crm_stack._answers(receiver + "/readyz"), 60, "the receiver")
            meter = CpuMeter({
                "web": lambda: [processes[0].pid], "worker": lambda: [processes[1].pid],
                "zoho": lambda: [sims.processes[0].pid], "ameise": lambda: [sims.processes[1].pid],
                "postgres": lambda: _postgres_backends(database), "rabbitmq": _rabbitmq_node,
                "pg_cluster": _postmaster,
            })
            for round_number in range(rounds):
                figures, cpu = one_round(sims, receiver, database, f"r{round_number}", rate, seconds, meter)
                per = per_record(cpu, figures["accepted"])
                figures["cpu_ms_record"] = sum(per.values())
                figures["service_cpu_ms_record"] = sum(per[part] for part in SERVICE_PARTS)
                results.append(figures)
                print(f"round {round_number + 1} {cpu_line(cpu, figures['accepted'])}", flush=True)
                print(f"round {round_number + 1}: " + " ".join(
                    f"{k}={v:.2f}" if k.startswith("zoho_") else f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in figures.items()), flush=True)
            crm_stack.stop(processes)
    finally:
        crm_stack.stop(processes)
        sims.stop()
        crm_stack.delete_queues(broker_url, namespace)
        shutil.rmtree(work, ignore_errors=True)
    return {
        "rate": round(rate),
        "p50_ms": round(crm_stack.median([r["p50_ms"] for r in results]), 1),
        "p99_ms": round(crm_stack.median([r["p99_ms"] for r in results]), 1),
        "max_ms": round(crm_stack.median([r["max_ms"] for r in results]), 1),
        "lost": sum(r["lost"] for r in results),
        "duplicates": sum(r["duplicates"] for r in results),
        "zoho_calls_record": round(crm_stack.median([r["zoho_calls_record"] for r in results]), 2),
        "zoho_credits_record": round(crm_stack.median([r["zoho_credits_record"] for r in results]), 2),
        **cpu_bound(crm_stack.median([r["cpu_ms_record"] for r in results]),
                    crm_stack.median([r["service_cpu_ms_record"] for r in results])),
    }


def cpu_bound(cpu_ms_record: float, service_cpu_ms_record: float) -> dict[str, float]:
    """The CPU per record, and the records/s at which it would keep every core busy: the most this machine
    can give, whatever the scheduling — for the whole stack and for the service alone."""
    return {
        "cpu_ms_record": round(cpu_ms_record, 2),
        "service_cpu_ms_record": round(service_cpu_ms_record, 2),
        "cpu_bound_rate": round(CORES * 1000 / max(cpu_ms_record, 1e-9), 1),
        "service_cpu_bound_rate": round(CORES * 1000 / max(service_cpu_ms_record, 1e-9), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100/s for 3 s, one round: under a minute")
    parser.add_argument("--rate", type=float, default=None, help="webhooks per second (default 200)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds of load per round (default 60)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds every Ameise call waits (e.g. 0.05)")
    parser.add_argument("--zoho-delay", type=float, default=0.0, help="seconds every Zoho API call waits (e.g. 0.1)")
    parser.add_argument("--broker-url", default=crm_stack.BROKER_URL)
    args = parser.parse_args()
    # Stopped with SIGTERM, the run still stops its processes and drops its database and queues.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rate = args.rate or (100.0 if args.quick else 200.0)
    seconds = args.seconds or (3.0 if args.quick else 60.0)
    rounds = args.rounds or (1 if args.quick else 3)
    summary = run(rate, seconds, rounds, args.delay, args.broker_url, zoho_delay=args.zoho_delay)
    print(" ".join(f"{key}={value}" for key, value in summary.items()), flush=True)


if __name__ == "__main__":
    main()
