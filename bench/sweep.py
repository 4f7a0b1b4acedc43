"""The fault test of the catch-up sweep at full size, on RabbitMQ.

With the receiver away (every Zoho workflow webhook goes to a port nobody
answers), 500 CRM changes are made in the simulator (creates and edits of
records synced before); then the receiver is back and one sweep runs.  Printed
as key=value: how many reached Ameise, duplicates, dead letters, Ameise writes,
and the times; then the same with a concurrent webhook burst for the same records.

    python bench/sweep.py                                  # 500 changes: 350 creates, 150 edits
    python bench/sweep.py --creates 700 --edits 300 --broker-url amqp://guest:guest@127.0.0.1:5672//
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(creates: int, edits: int, broker_url: str, burst: bool) -> dict:
    from kombu import Connection

    from producers.topology import build_topology
    from simulators.stack import start_stack
    from syncbridge.config import Settings
    from tests.support.sweep_fault import outage_then_sweep

    work = Path(tempfile.mkdtemp(prefix="syncbridge-bench-sweep-"))
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    settings = Settings.from_env({}, broker_url=broker_url, namespace=namespace,
                                 database_url=f"sqlite:///{work}/bench.db", dailyup_dir=str(work / "dailyup"))
    stack = start_stack(settings, seed=False)
    try:
        return outage_then_sweep(stack, creates=creates, edits=edits, burst=burst, timeout=600)
    finally:
        stack.stop()
        with Connection(broker_url) as connection:
            channel = connection.channel()
            for queue in build_topology(namespace).queues:
                channel.queue_delete(queue.name)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--creates", type=int, default=350)
    parser.add_argument("--edits", type=int, default=150)
    parser.add_argument("--broker-url", default="amqp://guest:guest@127.0.0.1:5672//")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for burst in (False, True):
        figures = run(args.creates, args.edits, args.broker_url, burst)
        print(" ".join(f"{key}={value}" for key, value in {"burst": burst, **figures}.items()), flush=True)


if __name__ == "__main__":
    main()
