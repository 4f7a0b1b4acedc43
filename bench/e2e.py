"""End to end: a Zoho workflow webhook in, the customer written in the Ameise simulator, at a fixed rate.

The Procfile's processes run as it says — `web` (gunicorn, WEB_CONCURRENCY=2) and one
`worker-crm-to-ameise` — on RabbitMQ (quorum queue) and a PostgreSQL database of the
run's own; each simulator runs in a process of its own.  Webhooks of distinct new
CRM contacts are sent at ``--rate`` per second for ``--seconds`` (each at its planned
time, from a pool of sending threads); a record's latency is from the moment its
webhook was sent to the moment the Ameise simulator created the customer.  "lost": a
webhook answered 202 whose record never reached Ameise (waited for until nothing
moved for 30 s); "duplicates": customers created more than once.  Each figure is the
median of the rounds; ``--delay 0.05`` makes every Ameise call take 50 ms.

    python bench/e2e.py                      # 200/s for 60 s, 3 rounds
    python bench/e2e.py --delay 0.05         # ... with 50 ms Ameise calls
    python bench/e2e.py --quick              # 100/s for 3 s, 1 round (under a minute)

Last line: rate p50_ms p99_ms max_ms lost duplicates.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import crm_stack  # noqa: E402  (bench/ is the script's own folder)

WEBHOOK_TOKEN = "dev-zoho-webhook-token"


def send_at_rate(url: str, ids: list[str], rate: float) -> tuple[list[float], list[int]]:
    """POST one workflow webhook per record id at ``rate`` per second; (send time, status) of each."""
    sent = [0.0] * len(ids)
    status = [0] * len(ids)
    local = threading.local()
    start = time.time() + 0.2

    def send(index: int) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        planned = start + index / rate
        wait = planned - time.time()
        if wait > 0:
            time.sleep(wait)
        sent[index] = time.time()
        try:
            status[index] = session.post(url, data={"id": ids[index], "token": WEBHOOK_TOKEN}, timeout=10).status_code
        except requests.RequestException:
            status[index] = -1

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(send, range(len(ids))))
    return sent, status


def one_round(sims: crm_stack.Simulators, receiver: str, tag: str, rate: float, seconds: float) -> dict:
    count = int(rate * seconds)
    names = [f"E{tag}x{index:05d}" for index in range(count)]
    ids = sims.seed_contacts(names)
    sent, status = send_at_rate(f"{receiver}/webhooks/zoho/Contacts", ids, rate)
    accepted = [index for index in range(count) if status[index] == 202]

    last_seen, last_change = -1, time.monotonic()
    while True:
        written = sims.written()
        done = sum(1 for index in accepted if names[index] in written)
        if done == len(accepted):
            break
        if done != last_seen:
            last_seen, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > 30:
            break
        time.sleep(0.5)
    time.sleep(0.5)   # a second create of a record would show by now
    written = sims.written()
    latencies = [1000 * (min(written[names[i]]) - sent[i]) for i in accepted if names[i] in written]
    return {
        "sent": count, "accepted": len(accepted),
        "p50_ms": crm_stack.percentile(latencies, 0.5), "p99_ms": crm_stack.percentile(latencies, 0.99),
        "max_ms": max(latencies, default=float("nan")),
        "lost": len(accepted) - len(latencies),
        "duplicates": sum(len(written[name]) - 1 for name in names if name in written),
        "achieved_rate": count / max(sent[-1] - sent[0], 1e-6) if count > 1 else 0.0,
    }


def run(rate: float, seconds: float, rounds: int, delay: float, broker_url: str) -> dict:
    work = Path(tempfile.mkdtemp(prefix="syncbridge-bench-e2e-"))
    namespace = f"bench-e2e-{uuid.uuid4().hex[:8]}"
    sims = crm_stack.Simulators(work)
    results = []
    processes = []
    try:
        with crm_stack.database("bench_e2e") as database_url:
            port = crm_stack.free_port()
            env = {**crm_stack.environment(sims, database_url, namespace, broker_url, port), "WEB_CONCURRENCY": "2"}
            crm_stack.release(env)
            sims.set_delay(delay)
            processes = [crm_stack.start("web", env, work / "web.log"),
                         crm_stack.start("worker-crm-to-ameise", env, work / "worker.log")]
            receiver = f"http://127.0.0.1:{port}"
            crm_stack.wait_until(lambda: "consuming from" in (work / "worker.log").read_text(), 60, "the worker")
            crm_stack.wait_until(lambda: crm_stack._answers(receiver + "/readyz"), 60, "the receiver")
            for round_number in range(rounds):
                figures = one_round(sims, receiver, f"r{round_number}", rate, seconds)
                results.append(figures)
                print(f"round {round_number + 1}: " + " ".join(
                    f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()), flush=True)
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
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100/s for 3 s, one round: under a minute")
    parser.add_argument("--rate", type=float, default=None, help="webhooks per second (default 200)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds of load per round (default 60)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds every Ameise call waits (e.g. 0.05)")
    parser.add_argument("--broker-url", default=crm_stack.BROKER_URL)
    args = parser.parse_args()
    rate = args.rate or (100.0 if args.quick else 200.0)
    seconds = args.seconds or (3.0 if args.quick else 60.0)
    rounds = args.rounds or (1 if args.quick else 3)
    summary = run(rate, seconds, rounds, args.delay, args.broker_url)
    print(" ".join(f"{key}={value}" for key, value in summary.items()), flush=True)


if __name__ == "__main__":
    main()
