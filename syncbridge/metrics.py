"""Prometheus metrics of the receiver and the workers, and their exposition for the dashboard's ``/metrics``.

Several processes count (gunicorn's receiver workers, one process per queue
worker), so the counts use prometheus_client's multiprocess mode: with
``PROMETHEUS_MULTIPROC_DIR`` set (the same empty directory for every process
of a host, or a volume every container shares; wiped before they start) each
process writes its values to files named by host and pid there and
:func:`exposition` adds them up.  Without it (``syncbridge run``,
tests) the values are this process's own.  Only counters and histograms are
kept, which multiprocess mode sums without any per-process cleanup; the queue
depths are read from the broker at each scrape.

The entrypoints count through the functions below; no label carries a record
id or anything personal.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from syncbridge.ports import CreditLedger, CreditTotal, CreditUse

log = logging.getLogger(__name__)
# No "<name>_created" series beside each counter and histogram: Prometheus does not need them.
disable_created_metrics()

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Read once: prometheus_client asks for the process's name on every count, and the host name does not change.
_HOST = socket.gethostname()


def process_id() -> str:
    """This process's name among every process writing to the directory: host name and pid.

    prometheus_client names the files by pid alone; containers sharing a volume (docker compose) each
    have their own pids, so two of them would write to one file.
    """
    return f"{_HOST}-{os.getpid()}"


if getattr(values.ValueClass, "_multiprocess", False):
    # prometheus_client chose multiprocess mode when it was imported (the variable was set): the same mode, with
    # files named by host and pid, chosen before the first metric below is made (each takes it when created).
    values.ValueClass = values.MultiProcessValue(process_identifier=process_id)
# Seconds: a webhook is answered in milliseconds, a sync takes up to minutes, an event may wait hours for a retry.
SHORT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SYNC_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
AGE_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)

EVENTS_RECEIVED = Counter("syncbridge_events_received", "Webhook events accepted by the receiver",
                          ["source", "module"])
EVENTS_PUBLISHED = Counter("syncbridge_events_published", "Events the broker confirmed", ["source"])
WEBHOOKS_REFUSED = Counter("syncbridge_webhooks_failed", "Webhooks answered with an error, by why",
                           ["source", "kind"])
RECORDS_SYNCED = Counter("syncbridge_records_synced", "Records written to the other system",
                         ["direction", "action"])
SYNCS_FAILED = Counter("syncbridge_syncs_failed", "Messages a worker could not sync, by the kind of failure",
                       ["direction", "kind"])
DEAD_LETTERED = Counter("syncbridge_dead_lettered", "Messages sent to the dead letters, by kind", ["queue", "kind"])
WEBHOOK_SECONDS = Histogram("syncbridge_webhook_seconds", "Time from a webhook's event being accepted to the broker's confirm",
                            ["source"], buckets=SHORT_BUCKETS)
SYNC_SECONDS = Histogram("syncbridge_sync_seconds", "Time a worker spent on one message", ["direction"],
                         buckets=SYNC_BUCKETS)
ZOHO_CREDITS = Counter("syncbridge_zoho_credits", "Zoho API credits spent, by call type and purpose (sync, backfill, ...)",
                       ["call", "purpose"])
EVENT_AGE_SECONDS = Histogram("syncbridge_event_to_sync_seconds",
                              "Time from a CRM event's receipt to its record written to Ameise", ["direction"],
                              buckets=AGE_BUCKETS)


# The labelled series the receiver and the workers count in for every webhook or record, looked up
# once per label values rather than once per count (``labels()`` checks and joins the values and
# takes a lock on every call).  The values are sources, modules, directions, actions and call types,
# so there are few; a cache is emptied should it ever grow large.
_CHILDREN_MAX = 1024
_received_children: dict[tuple[str, str], Counter] = {}
_published_children: dict[str, Counter] = {}
_webhook_seconds_children: dict[str, Histogram] = {}
_synced_children: dict[tuple[str, str], Counter] = {}
_age_children: dict[str, Histogram] = {}
_timed_children: dict[tuple[Histogram, str], Histogram] = {}
_credits_children: dict[tuple[str, str], Counter] = {}


def _child(children: dict, key, metric, *labels: str):
    child = children.get(key)
    if child is None:
        if len(children) >= _CHILDREN_MAX:
            children.clear()
        child = children[key] = metric.labels(*labels)
    return child


def received(source: str, module: str, count: int = 1) -> None:
    _child(_received_children, (source, module), EVENTS_RECEIVED, source, module).inc(count)


def published(source: str, count: int = 1) -> None:
    _child(_published_children, source, EVENTS_PUBLISHED, source).inc(count)


def webhook_seconds(source: str, seconds: float) -> None:
    """Time from a webhook's event being accepted to the broker's confirm."""
    _child(_webhook_seconds_children, source, WEBHOOK_SECONDS, source).observe(seconds)


def webhook_failed(source: str, kind: str) -> None:
    WEBHOOKS_REFUSED.labels(source, kind).inc()


def synced(direction: str, action: str, count: int = 1, *, received_at: datetime | None = None,
           now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
    _child(_synced_children, (direction, action), RECORDS_SYNCED, direction, action).inc(count)
    if received_at is not None:
        _child(_age_children, direction, EVENT_AGE_SECONDS, direction).observe(
            max(0.0, (now() - received_at).total_seconds()))


def zoho_credits(call: str, purpose: str, credits: int) -> None:
    _child(_credits_children, (call, purpose), ZOHO_CREDITS, call, purpose).inc(credits)


class CountedCreditLedger:
    """A :class:`syncbridge.ports.CreditLedger` that also counts what it noted in ``syncbridge_zoho_credits_total``."""

    def __init__(self, ledger: CreditLedger) -> None:
        self.ledger = ledger

    def spend(self, use: CreditUse) -> None:
        self.ledger.spend(use)      # counted once noted: a use that waits for the ledger is counted when written
        zoho_credits(use.call, use.purpose, use.credits)

    def spend_many(self, uses: Sequence[CreditUse]) -> None:
        """Note several uses at once (in one transaction where the ledger has them)."""
        self.ledger.spend_many(uses)
        for use in uses:
            zoho_credits(use.call, use.purpose, use.credits)

    def used(self, since: datetime, *, purposes: tuple[str, ...] | None = None) -> int:
        return self.ledger.used(since, purposes=purposes)

    def totals(self, since: datetime) -> list[CreditTotal]:
        return self.ledger.totals(since)


def sync_failed(direction: str, kind: str) -> None:
    SYNCS_FAILED.labels(direction, kind).inc()


def dead_lettered(queue: str, kind: str) -> None:
    DEAD_LETTERED.labels(queue, kind).inc()


@contextmanager
def timed(histogram: Histogram, label: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        _child(_timed_children, (histogram, label), histogram, label).observe(time.perf_counter() - started)


class QueueDepths(Collector):
    """``syncbridge_queue_depth{queue}``: messages waiting, read from the broker at each scrape."""

    def __init__(self, depths: Callable[[], dict[str, int | None]] | None) -> None:
        self._depths = depths

    def collect(self):
        family = GaugeMetricFamily("syncbridge_queue_depth", "Messages waiting in a queue", labels=["queue"])
        if self._depths is not None:
            try:
                found = self._depths()
            except Exception as exc:  # noqa: BLE001 - a broker that is down leaves the depths out, not the scrape
                log.warning("queue depths unknown: %s", exc)
                found = {}
            for queue, depth in sorted(found.items()):
                if depth is not None:
                    family.add_metric([queue], depth)
        yield family


def exposition(queue_depths: Callable[[], dict[str, int | None]] | None = None) -> tuple[bytes, str]:
    """(body, content type) of every process's metrics (multiprocess mode) or this process's, with the queue depths."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        for collector in _own_collectors():
            registry.register(collector)
    registry.register(QueueDepths(queue_depths))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _own_collectors() -> list[Collector]:
    return [EVENTS_RECEIVED, EVENTS_PUBLISHED, WEBHOOKS_REFUSED, RECORDS_SYNCED, SYNCS_FAILED, DEAD_LETTERED,
            WEBHOOK_SECONDS, SYNC_SECONDS, EVENT_AGE_SECONDS, ZOHO_CREDITS]

