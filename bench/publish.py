"""Benchmark of bulk publishing with confirms: ``Publisher.publish_many`` against RabbitMQ's tutorial way.

Two contenders publish the same persistent JSON messages (the size of a DailyUp delta)
to a queue of their own, round by round in turn:

* ``syncbridge``: :meth:`producers.publisher.Publisher.publish_many`, one delta a
  message (batches of ``PUBLISH_BATCH`` messages, each sent as one window; the DailyUp
  outbox itself now sends 100 deltas to a message, see ``bench/dailyup.py``);
* ``tutorial``: RabbitMQ's publisher-confirms tutorial, "publishing messages in batches"
  (py-amqp directly: 100 ``basic.publish``, then wait until all of them are confirmed);
* ``direct``: ``syncbridge``'s code sending to the queue itself through the default
  exchange instead of through the topic exchange ``{ns}.events``: what routing costs.

After each round the queue is counted (every confirmed message must be in it) and
purged.  Each figure is the median of ``--rounds`` rounds (at least 3); the last line is
the summary ``publish_msgs_s tutorial_msgs_s ratio_tutorial lost broker_us_msg
tutorial_broker_us_msg direct_msgs_s direct_broker_us_msg``, where ``*broker_us_msg`` is
RabbitMQ's CPU (beam.smp, from /proc) per message of that contender.

    python bench/publish.py                  # 50000 messages per round, 5 rounds
    python bench/publish.py --quick          # 10000 messages, 3 rounds (seconds)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scale import service_cpu_seconds  # noqa: E402 - bench/ is the script's own folder

BROKER = os.environ.get("SYNCBRIDGE_BROKER_URL") or "amqp://guest:guest@127.0.0.1:5672//"
KEY = "ameise.kunde.updated"


def delta(n: int) -> dict:
    """A body the size of a DailyUp delta (AmeiseRecordChanged v1, about 400 bytes)."""
    return {"schema": "AmeiseRecordChanged", "version": 1, "event_id": f"dailyup-{n:08d}",
            "entity": "kunde", "change": "updated", "source": "dailyup", "occurred_at": "2026-11-30T06:00:00+00:00",
            "record": {"kunden_nr": f"K{n:08d}", "name": "Müller", "vorname": "Anna", "strasse": "Hauptstr. 1",
                       "plz": "10115", "ort": "Berlin", "email": f"anna.{n}@example.de", "telefon": "+49 30 123456",
                       "geburtsdatum": "1980-01-01", "hash": f"{n:032x}"}}


def syncbridge_round(url: str, topology, count: int, exchange: str | None = None, routing_key: str = KEY) -> float:
    from producers.publisher import Publisher
    from syncbridge.dailyup.importer import PUBLISH_BATCH

    bodies = [(routing_key, delta(n), f"dailyup-{n:08d}") for n in range(count)]
    publisher = Publisher(url, topology, confirm_timeout=60)
    try:
        publisher.ping()
        started = time.perf_counter()
        for start in range(0, count, PUBLISH_BATCH):
            publisher.publish_many(topology.events if exchange is None else exchange,
                                   bodies[start:start + PUBLISH_BATCH], window=PUBLISH_BATCH)
        return time.perf_counter() - started
    finally:
        publisher.close()


def direct_round(url: str, topology, count: int) -> float:
    return syncbridge_round(url, topology, count, exchange="", routing_key=topology.ameise_to_crm.name)


def tutorial_round(url: str, topology, count: int, batch: int = 100) -> float:
    import amqp
    from kombu.utils.url import parse_url

    parts = parse_url(url)
    connection = amqp.Connection(host=f"{parts['hostname']}:{parts['port'] or 5672}", userid=parts["userid"],
                                 password=parts["password"], virtual_host=parts["virtual_host"] or "/")
    connection.connect()
    try:
        channel = connection.channel()
        channel.confirm_select()
        waiting: set[int] = set()

        def answered(tag: int, multiple: bool) -> None:
            waiting.difference_update([t for t in waiting if t <= tag] if multiple else [tag])

        channel.events["basic_ack"].add(answered)
        channel.events["basic_nack"].add(answered)
        tag = 0
        started = time.perf_counter()
        for n in range(count):
            # The tutorial builds each message as it goes: the encoding is part of the work.
            body = json.dumps(delta(n), separators=(",", ":"), ensure_ascii=False).encode()
            channel.basic_publish(amqp.Message(body, content_type="application/json", content_encoding="utf-8",
                                               delivery_mode=2, message_id=f"dailyup-{n:08d}"),
                                  exchange=topology.events.name, routing_key=KEY, mandatory=True)
            tag += 1
            waiting.add(tag)
            if tag % batch == 0 or n == count - 1:
                while waiting:
                    connection.drain_events(timeout=30)
        return time.perf_counter() - started
    finally:
        connection.collect()


def queued_and_purge(url: str, topology) -> int:
    from kombu import Connection

    with Connection(url) as connection:
        channel = connection.default_channel
        total = 0
        for queue in topology.queues:
            if queue.name.endswith("ameise-to-crm"):
                bound = queue(channel)
                total += bound.queue_declare(passive=True).message_count
                bound.purge()
        return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000, help="messages per round and contender")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the median is reported; at least 3)")
    parser.add_argument("--quick", action="store_true", help="10000 messages, 3 rounds")
    parser.add_argument("--broker-url", default=BROKER)
    args = parser.parse_args()
    count, rounds = (10_000, 3) if args.quick else (args.messages, max(3, args.rounds))

    from kombu import Connection

    from producers.topology import build_topology, declare

    topology = build_topology(f"bench-pub-{uuid.uuid4().hex[:8]}")
    with Connection(args.broker_url) as connection:
        declare(connection, topology)
    contenders = {"syncbridge": syncbridge_round, "tutorial": tutorial_round, "direct": direct_round}
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    broker: dict[str, list[float]] = {name: [] for name in contenders}
    lost = 0
    try:
        for index in range(rounds):
            names = list(contenders)
            order = names[index % len(names):] + names[:index % len(names)]    # each goes first in turn
            for name in order:
                before = service_cpu_seconds()["rabbitmq"]
                seconds = contenders[name](args.broker_url, topology, count)
                broker[name].append((service_cpu_seconds()["rabbitmq"] - before) / count * 1e6)
                queued = queued_and_purge(args.broker_url, topology)
                lost += max(0, count - queued)
                rates[name].append(count / seconds)
                print(f"  round {index + 1} {name}: {count / seconds:,.0f} msg/s, {queued} queued, "
                      f"RabbitMQ {broker[name][-1]:.0f} µs CPU per message", flush=True)
    finally:
        with Connection(args.broker_url) as connection:
            channel = connection.default_channel
            for queue in topology.queues:
                queue(channel).delete()
            for exchange in topology.exchanges:
                exchange(channel).delete()
    ours, tutorial = statistics.median(rates["syncbridge"]), statistics.median(rates["tutorial"])
    cpu = {name: statistics.median(values) for name, values in broker.items()}
    print(f"publish_msgs_s={ours:.0f} tutorial_msgs_s={tutorial:.0f} ratio_tutorial={ours / tutorial:.2f} lost={lost} "
          f"broker_us_msg={cpu['syncbridge']:.1f} tutorial_broker_us_msg={cpu['tutorial']:.1f} "
          f"direct_msgs_s={statistics.median(rates['direct']):.0f} direct_broker_us_msg={cpu['direct']:.1f}")


if __name__ == "__main__":
    main()
