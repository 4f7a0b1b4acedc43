"""The CRM -> Ameise consumer: one CRM record event in, one Ameise create or update out.

Thin entrypoint: load the message through its contract, build the command, call
the handler, turn the outcome into ack / dead letter / requeue.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from kombu import Connection
from kombu.message import Message

from consumers.base import DATABASE_DOWN, QueueConsumer, _record_id, as_unavailable
from consumers.inflight import InFlight
from contracts.events import CrmRecordChangedSchema, crm_record_changed_body, crm_record_changed_plain_load
from producers.retries import retries_of, schedule_retry
from producers.topology import Topology
from syncbridge import metrics
from syncbridge.errors import ReconnectNeeded, Rejected, SyncError, Unavailable
from syncbridge.handlers import SyncResult
from syncbridge.handlers.events import bounded
from syncbridge.messages import SyncCrmRecordToAmeise
from syncbridge.monitoring import connection_works, report_reconnect_needed
from syncbridge.ports import CRM_TO_AMEISE, ActivityEntry, DeadLetterKind, Store

log = logging.getLogger(__name__)

Handle = Callable[..., SyncResult]

# With many records in flight, the finished deliveries are acknowledged at most this often (on a stop or a lost
# connection at once): the acks that gather meanwhile go to the broker as one cumulative ack where they can,
# not as one frame each.
ACK_INTERVAL_S = 0.05


class CrmToAmeiseConsumer(QueueConsumer):
    """Consume ``{ns}.crm-to-ameise``; ack only after Ameise (and the write-back) succeeded.

    With ``concurrency`` above 1 up to that many records are synced at once by a pool
    of threads (:class:`consumers.inflight.InFlight`): the events of one record one
    after another in their order, the acks on the consumer's own thread, and on a
    stop (or a lost connection) what runs is finished and acknowledged first.
    """

    name = "crm-to-ameise"
    queue_attr = "crm_to_ameise"
    contract = "CrmRecordChanged v1"

    def __init__(
        self,
        connection: Connection,
        topology: Topology,
        handle: Handle,
        publisher,
        store: Store,
        *,
        prefetch_count: int = 10,
        concurrency: int = 1,
        handler_logs_attempt: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``handler_logs_attempt``: ``handle`` takes ``attempt`` (the delivery's activity log entry,
        made from its result) and writes it with the record's outcome, in one transaction; else the
        consumer writes it after the handler.  ``clock`` (seconds, monotonic) times the acks' interval."""
        self._clock = clock
        self.handler_logs_attempt = handler_logs_attempt
        self.connection = connection
        self.topology = topology
        self.handle = handle
        self.publisher = publisher
        self.store = store
        self.prefetch_count = prefetch_count
        self._schema = CrmRecordChangedSchema()
        self._local = threading.local()   # per handling thread: the delivery in hand (``_attempt``)
        self.inflight = InFlight(concurrency, name="crm-to-ameise",
                                 hold=lambda: self.should_stop) if concurrency > 1 else None
        self._flushed = 0.0     # when the acks were last carried out (monotonic)
        if self.inflight is not None:
            # Enough deliveries in hand to keep every thread busy while records wait for one another.
            self.prefetch_count = max(prefetch_count, 2 * concurrency)

    @property
    def _attempt(self) -> dict:
        """The delivery being handled by this thread: source, received, attempt, start, message."""
        return getattr(self._local, "attempt", {})

    @_attempt.setter
    def _attempt(self, value: dict) -> None:
        self._local.attempt = value

    # ------------------------------------------------------------ many in flight
    def run(self, _tokens=1, **kwargs) -> None:
        if self.inflight is not None:
            # Wake at least every ACK_INTERVAL_S to carry out the acks of finished handlers.
            kwargs.setdefault("safety_interval", ACK_INTERVAL_S)
        try:
            super().run(_tokens, **kwargs)
        finally:
            if self.inflight is not None:
                self.inflight.finish(self._settle_errors())
                self.inflight.resume()

    def on_iteration(self) -> None:
        if self.inflight is not None:
            now = self._clock()
            if now - self._flushed >= ACK_INTERVAL_S:
                self._flushed = now
                self.inflight.flush(self._settle_errors())

    def on_consume_end(self, connection, channel) -> None:
        # Consumers are cancelled, the channel is still open: finish what runs and acknowledge it.
        if self.inflight is not None:
            self.inflight.finish(self._settle_errors())
            self.inflight.resume()

    def on_connection_lost(self) -> None:
        if self.inflight is not None:
            self.inflight.finish(self._settle_errors())
            self.inflight.resume()

    def _settle_errors(self) -> tuple[type[BaseException], ...]:
        return tuple(self.connection.connection_errors) + tuple(self.connection.channel_errors)

    def _receive(self, body, message: Message) -> None:
        if self.inflight is None:
            super()._receive(body, message)
            return
        module = body.get("module") if isinstance(body, dict) else None
        record = _record_id(body)
        key = (str(module), record) if record is not None else object()
        self.inflight.submit(key, partial(QueueConsumer._receive, self, body, self.inflight.wrap(message)))

    # ------------------------------------------------------------ callbacks
    def on_message(self, body, message: Message) -> None:
        # A body as the receiver writes it is read directly; any other through the contract's schema.
        plain = crm_record_changed_plain_load(body)
        event = plain if plain is not None else self._load(body, message)
        if event is None:
            return
        command = SyncCrmRecordToAmeise(event.module, event.record_id, event.event_id, event.received_at,
                                        event.operation)
        # Each delivery is one attempt of the Events page: source, received, attempt number, duration.
        self._attempt = {"source": event.source, "received_at": event.received_at,
                         "attempt": retries_of(message) + 1, "started": time.monotonic(),
                         "message": bounded(crm_record_changed_body(event) if plain is not None
                                            else self._schema.dump(event))}
        try:
            with metrics.timed(metrics.SYNC_SECONDS, CRM_TO_AMEISE.value):
                if self.handler_logs_attempt:
                    result = self.handle(command, attempt=partial(self._succeeded, command))
                else:
                    result = self.handle(command)
        except Rejected as exc:
            metrics.sync_failed(CRM_TO_AMEISE.value, "rejected")
            self._failed(command, exc, kind=DeadLetterKind.REJECTED)
            self._dead_letter(message, exc.describe(), DeadLetterKind.REJECTED, exc=exc, record_id=command.record_id)
            return
        except ReconnectNeeded as exc:
            metrics.sync_failed(CRM_TO_AMEISE.value, "reconnect_needed")
            # Not the message's fault and not to be given up on: it waits in the queue until someone reconnects.
            log.warning("%s; %s/%s waits until it is reconnected", exc.describe(), command.module, command.record_id)
            report_reconnect_needed(exc.system, exc.describe())
            self._failed(command, exc, action="waiting", kind="reconnect_needed")
            # Parked in the shortest retry queue, again and again, without using up its retries; a requeue
            # would count against the queue's delivery limit and end in the dead letters.
            schedule_retry(self.publisher, self.topology, message, error=exc.describe(), counted=False)
            message.ack()
            return
        except (Unavailable, *DATABASE_DOWN) as caught:
            exc = as_unavailable(caught)
            metrics.sync_failed(CRM_TO_AMEISE.value, "unavailable")
            action = self._retry_later(message, exc.describe(), exc.retry_after, exc=exc, record_id=command.record_id)
            self._failed(command, exc, action=action, kind="unavailable")
            return
        except Exception as exc:  # noqa: BLE001 - a bug of ours must not kill the consumer or loop forever
            metrics.sync_failed(CRM_TO_AMEISE.value, "error")
            log.exception("unexpected error while syncing %s/%s", command.module, command.record_id)
            self._failed(command, exc, kind=DeadLetterKind.ERROR)
            self._dead_letter(message, f"{type(exc).__name__}: {exc}", DeadLetterKind.ERROR, exc=exc,
                              record_id=command.record_id)
            return
        log.info("%s %s %s/%s -> %s", result.action, result.entity or "record", command.module,
                 command.record_id, result.ameise_id or "-")
        connection_works("ameise")
        connection_works("zoho")
        message.ack()
        if not self.handler_logs_attempt:
            self._log_attempt(self._succeeded(command, result))
        metrics.synced(CRM_TO_AMEISE.value, str(result.action), received_at=command.received_at)

    # ------------------------------------------------------------ helpers
    def _succeeded(self, command: SyncCrmRecordToAmeise, result: SyncResult) -> ActivityEntry:
        """The activity log entry of a delivery handled to the end, with what ``on_message`` noted of it."""
        return ActivityEntry(
            direction=CRM_TO_AMEISE, action=result.action, result="ok", entity=result.entity,
            zoho_module=command.module, zoho_id=command.record_id, ameise_id=result.ameise_id,
            event_id=command.event_id, details={"message": self._attempt.get("message")}, **self._noted_fields())

    def _noted(self, entry: ActivityEntry) -> ActivityEntry:
        return replace(entry, **self._noted_fields())

    def _noted_fields(self) -> dict:
        """What ``on_message`` noted of the delivery in hand, as fields of its activity log entry."""
        noted = self._attempt
        duration = None if "started" not in noted else round((time.monotonic() - noted["started"]) * 1000)
        return {"source": noted.get("source"), "received_at": noted.get("received_at"),
                "attempt": noted.get("attempt", 1), "duration_ms": duration}

    def _failed(self, command: SyncCrmRecordToAmeise, exc: Exception, action: str = "failed", *,
                kind: str = DeadLetterKind.ERROR) -> None:
        describe = exc.describe() if isinstance(exc, SyncError) else f"{type(exc).__name__}: {exc}"
        field = getattr(exc, "field", None)
        details: dict = {"field": field} if field else {}
        details["message"] = self._attempt.get("message")
        self._log_attempt(ActivityEntry(
            direction=CRM_TO_AMEISE, action=action, result="error", zoho_module=command.module,
            zoho_id=command.record_id, event_id=command.event_id, error=describe, details=details,
            error_kind=str(kind), error_code=getattr(exc, "code", None), error_field=field,
        ))

    def _log_attempt(self, entry: ActivityEntry) -> None:
        """Write one attempt to the activity log with what ``on_message`` noted of it."""
        try:
            self.store.log(self._noted(entry))
        except Exception:  # noqa: BLE001 - the log is secondary to handling the message
            log.exception("could not write the activity log")
