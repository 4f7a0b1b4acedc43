"""The Ameise -> CRM consumer: DailyUp deltas in, batched Zoho upserts out.

Thin entrypoint: load each delta through its contract, collect a batch (up to
``batch_size`` deltas, or what arrived within ``batch_wait`` seconds), call the
handler once per batch, and turn each record's outcome into ack / dead letter /
delayed retry.  A message is settled only after the handler has finished its batch.

A message of several deltas (``ameise.deltas``, as the DailyUp outbox sends them) is
taken apart: each delta is loaded, batched and settled on its own, as if it had come
alone (:class:`DeltaOfMessage`).  One that is retried or dead-lettered is published
alone, under its own routing key; the message is acked once every delta in it is settled.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from kombu import Connection
from kombu.message import Message

from consumers.base import DATABASE_DOWN, QueueConsumer, as_unavailable
from contracts.base import ContractError, load_or_raise
from contracts.events import AmeiseDeltasSchema, AmeiseRecordChangedSchema
from producers.publisher import encode_body
from producers.retries import retries_of, schedule_retry
from producers.topology import Topology
from syncbridge import metrics
from syncbridge.errors import ReconnectNeeded, Unavailable
from syncbridge.handlers import OK, REJECTED, UNAVAILABLE, RecordOutcome
from syncbridge.handlers.events import bounded
from syncbridge.messages import (
    AMEISE_DELTAS_KEY,
    CHANGES,
    ENTITIES,
    AmeiseRecordChanged,
    SyncAmeiseRecordsToCrm,
    ameise_record_changed_key,
)
from syncbridge.monitoring import message_scope, report_reconnect_needed
from syncbridge.ports import AMEISE_TO_CRM, ActivityEntry, DeadLetterKind, Store

log = logging.getLogger(__name__)

Handle = Callable[[SyncAmeiseRecordsToCrm], list[RecordOutcome]]
SOURCE = "dailyup"


class Settling:
    """A message of several deltas: acked once each of its deltas is settled (acked, retried or dead-lettered)."""

    __slots__ = ("message", "open")

    def __init__(self, message: Message, deltas: int) -> None:
        self.message = message
        self.open = deltas

    def settled(self) -> None:
        self.open -= 1
        if self.open == 0:
            self.message.ack()


class DeltaOfMessage:
    """One delta of an ``ameise.deltas`` message, seen as a message of its own.

    It has what settling a message reads (body, headers, routing key, message id),
    as the delta would have had if it had been published alone: a retry or a dead
    letter therefore sends just this delta, under its own routing key, with the
    message's headers (its retries).  ``ack`` settles it within its message.
    """

    __slots__ = ("_delta", "_of", "_settled", "delivery_info", "properties")
    content_type = "application/json"
    content_encoding = "utf-8"

    def __init__(self, of: Settling, delta: object, index: int) -> None:
        self._of = of
        self._delta = delta
        self._settled = False
        info = of.message.delivery_info or {}
        self.delivery_info = {"exchange": info.get("exchange") or "", "routing_key": _routing_key_of(delta)}
        delta_id = delta.get("delta_id") if isinstance(delta, dict) else None
        message_id = (of.message.properties or {}).get("message_id") or ""
        self.properties = {"message_id": delta_id if isinstance(delta_id, str) and delta_id
                           else f"{message_id}#{index}"}

    @property
    def headers(self) -> dict:
        return self._of.message.headers or {}

    @property
    def body(self) -> bytes:
        # The bytes the publisher would have sent for this delta alone.
        return encode_body(self._delta)

    def ack(self) -> None:
        if not self._settled:
            self._settled = True
            self._of.settled()


def _routing_key_of(delta: object) -> str:
    """The routing key the delta would have had alone (the message's own for one that names no valid route)."""
    if isinstance(delta, dict) and delta.get("entity") in ENTITIES and delta.get("change") in CHANGES:
        return ameise_record_changed_key(delta["entity"], delta["change"])
    return AMEISE_DELTAS_KEY


@dataclass(frozen=True)
class Attempt:
    """One delivery of a delta, as the Events page lists it: its attempt number and how long its batch took."""

    attempt: int
    duration_ms: int


class AmeiseToCrmConsumer(QueueConsumer):
    """Consume ``{ns}.ameise-to-crm`` in batches; ack each delta only after the CRM took it."""

    name = "ameise-to-crm"
    queue_attr = "ameise_to_crm"
    contract = "AmeiseRecordChanged v1"

    def __init__(
        self,
        connection: Connection,
        topology: Topology,
        handle: Handle,
        publisher,
        store: Store,
        *,
        batch_size: int = 100,
        batch_wait: float = 1.0,
        prefetch_count: int = 200,
    ) -> None:
        if not 1 <= batch_size <= 100:
            raise ValueError(f"batch_size must be between 1 and 100 (Zoho's limit per call), not {batch_size}")
        self.connection = connection
        self.topology = topology
        self.handle = handle
        self.publisher = publisher
        self.store = store
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        # Twice the batch at least: the next batch arrives while this one is with Zoho.
        self.prefetch_count = max(prefetch_count, 2 * batch_size)
        self._schema = AmeiseRecordChangedSchema()
        self._deltas_schema = AmeiseDeltasSchema()
        self._batch: list[tuple[AmeiseRecordChanged, Message | DeltaOfMessage]] = []
        self._batch_started = 0.0
        self._attempts: dict[str, Attempt] = {}     # the batch being settled: attempt and duration per delta

    def run(self, _tokens: int = 1, **kwargs) -> None:
        # The loop looks at the clock between deliveries at least this often, so a
        # partial batch leaves about batch_wait seconds after its first message.
        kwargs.setdefault("safety_interval", min(1.0, max(self.batch_wait / 4, 0.01)))
        super().run(_tokens, **kwargs)

    # ------------------------------------------------------------ kombu hooks
    def on_consume_ready(self, connection, channel, consumers, **kwargs) -> None:
        # Messages of a lost connection cannot be settled any more: the broker delivers them again.
        self._batch = []

    def on_iteration(self) -> None:
        if self._batch and time.monotonic() - self._batch_started >= self.batch_wait:
            self.flush()

    def on_consume_end(self, connection, channel) -> None:
        # Graceful stop: finish the partial batch while the channel can still settle it.
        self.flush()

    def on_message(self, body, message: Message) -> None:
        if (message.delivery_info or {}).get("routing_key") == AMEISE_DELTAS_KEY:
            self._take_apart(body, message)
            return
        record = self._load(body, message)
        if record is not None:
            self._add(record, message)

    def _take_apart(self, body, message: Message) -> None:
        """Batch each delta of a message of several; one that violates its contract is dead-lettered alone."""
        try:
            deltas = load_or_raise(self._deltas_schema, body)
        except ContractError as exc:
            log.error("message violates its contract: %s", exc.errors)
            self._dead_letter(message, f"contract AmeiseDeltas v1 violated: {exc.errors}",
                              DeadLetterKind.CONTRACT_VIOLATION, exc=exc)
            return
        settling = Settling(message, len(deltas))
        for index, delta in enumerate(deltas):
            part = DeltaOfMessage(settling, delta, index)
            try:
                record = load_or_raise(self._schema, delta)
            except ContractError as exc:
                log.error("delta %d of message %s violates its contract: %s", index,
                          (message.properties or {}).get("message_id"), exc.errors)
                self._dead_letter(part, f"contract {self.contract} violated: {exc.errors}",
                                  DeadLetterKind.CONTRACT_VIOLATION, exc=exc, record_id=_key_of(delta))
                continue
            self._add(record, part)

    def _add(self, record: AmeiseRecordChanged, message: Message | DeltaOfMessage) -> None:
        if not self._batch:
            self._batch_started = time.monotonic()
        self._batch.append((record, message))
        if len(self._batch) >= self.batch_size:
            self.flush()

    # ------------------------------------------------------------ the batch
    def flush(self) -> None:
        """Hand the collected messages to the handler and settle each by its outcome."""
        with message_scope():
            self._flush()

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        records = tuple(record for record, _ in batch)
        started = time.monotonic()
        direction = AMEISE_TO_CRM.value
        try:
            with metrics.timed(metrics.SYNC_SECONDS, direction):
                outcomes = self.handle(SyncAmeiseRecordsToCrm(records))
            if len(outcomes) != len(batch):
                raise RuntimeError(f"the handler answered {len(outcomes)} outcomes for {len(batch)} deltas")
        except (Unavailable, *DATABASE_DOWN) as caught:
            exc = as_unavailable(caught)
            outcomes = [RecordOutcome(r.delta_id, UNAVAILABLE, "failed", r.entity, r.key, error=exc.describe(),
                                      code=exc.code, retry_after=exc.retry_after,
                                      waiting=isinstance(exc, ReconnectNeeded)) for r in records]
        except Exception as exc:  # noqa: BLE001 - a bug of ours must not kill the consumer or loop forever
            log.exception("unexpected error while applying %d DailyUp deltas", len(batch))
            reason = f"{type(exc).__name__}: {exc}"
            self._note_attempts(batch, started)
            for record, message in batch:
                metrics.sync_failed(direction, "error")
                self._failed(record, reason)
                self._dead_letter(message, reason, DeadLetterKind.ERROR, exc=exc, record_id=record.key)
            return
        waiting = []
        self._note_attempts(batch, started)
        for (record, message), outcome in zip(batch, outcomes):
            if outcome.status == OK:
                message.ack()
                self._log_attempt(record, ActivityEntry(
                    direction=AMEISE_TO_CRM, action=outcome.action, result="ok", entity=record.entity,
                    zoho_module=outcome.module, zoho_id=outcome.zoho_id, ameise_id=record.key,
                    event_id=record.delta_id, details={"message": bounded(self._schema.dump(record))}))
                metrics.synced(direction, str(outcome.action))
            elif outcome.status == REJECTED:
                metrics.sync_failed(direction, "rejected")
                self._failed(record, outcome.describe(), outcome)
                self._dead_letter(message, outcome.describe(), DeadLetterKind.REJECTED, record_id=record.key)
            else:
                metrics.sync_failed(direction, "reconnect_needed" if outcome.waiting else "unavailable")
                waiting.append((record, message, outcome))
        self._retry(waiting)

    def _retry(self, waiting: list[tuple[AmeiseRecordChanged, Message | DeltaOfMessage, RecordOutcome]]) -> None:
        """Send each delta that met an unavailable CRM to its delayed retry (or, after the last, the dead letters)."""
        for record, message, outcome in waiting:
            if outcome.waiting:
                # The CRM needs a person to reconnect it: park the delta without using up its retries.
                report_reconnect_needed("zoho", outcome.describe())
                schedule_retry(self.publisher, self.topology, message, error=outcome.describe(), counted=False)
                message.ack()
                self._failed(record, outcome.describe(), outcome, action="waiting")
                continue
            action = self._retry_later(message, outcome.describe(), outcome.retry_after, record_id=record.key)
            self._failed(record, outcome.describe(), outcome, action=action)

    # ------------------------------------------------------------ helpers
    def _failed(self, record: AmeiseRecordChanged, error: str, outcome: RecordOutcome | None = None,
                action: str = "failed") -> None:
        details = {"change": record.change, "import_id": record.import_id}
        if outcome is not None:
            details.update({name: value for name, value in (("code", outcome.code), ("field", outcome.field)) if value})
        details["message"] = bounded(self._schema.dump(record))
        if outcome is None:
            kind = str(DeadLetterKind.ERROR)
        elif outcome.status == REJECTED:
            kind = str(DeadLetterKind.REJECTED)
        else:
            kind = "reconnect_needed" if outcome.waiting else str(DeadLetterKind.UNAVAILABLE)
        self._log_attempt(record, ActivityEntry(
            direction=AMEISE_TO_CRM, action=action, result="error", entity=record.entity, ameise_id=record.key,
            event_id=record.delta_id, error=error, details=details, error_kind=kind,
            error_code=outcome.code if outcome else None, error_field=outcome.field if outcome else None,
        ))

    def _note_attempts(self, batch: list[tuple[AmeiseRecordChanged, Message | DeltaOfMessage]],
                       started: float) -> None:
        duration = round((time.monotonic() - started) * 1000)
        self._attempts = {record.delta_id: Attempt(retries_of(message) + 1, duration) for record, message in batch}

    def _log_attempt(self, record: AmeiseRecordChanged, entry: ActivityEntry) -> None:
        """Write one attempt at a delta to the activity log."""
        noted = self._attempts.get(record.delta_id)
        try:
            self.store.log(replace(entry, source=SOURCE, attempt=noted.attempt if noted else 1,
                                   duration_ms=noted.duration_ms if noted else None))
        except Exception:  # noqa: BLE001 - the log is secondary to handling the message
            log.exception("could not write the activity log")


def _key_of(delta: object) -> str | None:
    key = delta.get("key") if isinstance(delta, dict) else None
    return str(key) if key is not None else None
