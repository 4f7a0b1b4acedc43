"""What every consumer of the service shares: its queue, JSON only, dead-lettering."""
from __future__ import annotations

import logging

from kombu.message import Message
from kombu.mixins import ConsumerMixin

from consumers import dead_letters
from consumers.retries import retries_of, schedule_retry
from contracts.base import ContractError, load_or_raise
from syncbridge.monitoring import breadcrumb, message_scope, report_failed_message
from syncbridge.topology import Topology, declare

log = logging.getLogger(__name__)


class QueueConsumer(ConsumerMixin):
    """A kombu consumer of one work queue of the topology (``queue_attr``), JSON only.

    Subclasses set ``name`` and ``queue_attr`` and implement ``on_message``.
    """

    name = ""
    queue_attr = ""
    contract = ""            # the message contract's name and version, for dead-letter reasons
    topology: Topology
    publisher: object
    prefetch_count: int

    @property
    def queue(self):
        return getattr(self.topology, self.queue_attr)

    def get_consumers(self, Consumer, channel):
        # Declared on every (re)connect: the dead-letter queue must exist before the first dead letter.
        declare(channel, self.topology)
        return [
            Consumer(
                queues=[self.queue],
                accept=["application/json"],
                callbacks=[self._receive],
                on_decode_error=self.on_decode_error,
                prefetch_count=self.prefetch_count,
            )
        ]

    def on_message(self, body, message: Message) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _receive(self, body, message: Message) -> None:
        # Each message's breadcrumbs stay with it: a later failure's report does not show earlier messages.
        with message_scope():
            breadcrumb("message received", self.queue.name, routing_key=_routing_key(message),
                       message_id=(message.properties or {}).get("message_id"), record_id=_record_id(body),
                       attempt=retries_of(message) + 1)
            self.on_message(body, message)

    def _load(self, body, message: Message):
        """The message through its contract (``self._schema``); None once a violation went to the dead letters."""
        try:
            return load_or_raise(self._schema, body)
        except ContractError as exc:
            log.error("message violates its contract: %s", exc.errors)
            self._dead_letter(message, f"contract {self.contract} violated: {exc.errors}", dead_letters.CONTRACT,
                              exc=exc, record_id=_record_id(body))
            return None

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        """A body that is not JSON (or not allowed) goes to the dead letters, never silently acked."""
        log.error("undecodable message on %s: %s", self.queue.name, exc)
        with message_scope():
            self._dead_letter(message, f"cannot decode message: {exc}", dead_letters.UNDECODABLE, exc=exc)

    def _dead_letter(self, message: Message, reason: str, kind: str, *, exc: BaseException | None = None,
                     record_id: str | None = None) -> None:
        # Publish first, ack second: if the broker does not confirm, the message
        # stays unacknowledged and comes back instead of being lost.
        dead_letters.dead_letter(self.publisher, self.topology, message, reason=reason, kind=kind)
        message.ack()
        # Reported after the ack: monitoring can never hold a message up or lose it.
        report_failed_message(exc, queue=self.queue.name, routing_key=_routing_key(message), record_id=record_id,
                              attempt=retries_of(message) + 1, kind=kind, reason=reason,
                              message_id=(message.properties or {}).get("message_id"))

    def _retry_later(self, message: Message, error: str, retry_after: float | None = None, *,
                     exc: BaseException | None = None, record_id: str | None = None) -> str:
        """Send the message to its next delayed retry, or after the last one to the dead letters; then ack.

        Returns "retry" or "dead_lettered" (for the activity log).
        """
        delay = schedule_retry(self.publisher, self.topology, message, error=error, retry_after=retry_after)
        if delay is None:
            reason = f"still unavailable after {retries_of(message)} retries: {error}"
            log.error("%s: %s", self.queue.name, reason)
            self._dead_letter(message, reason, dead_letters.UNAVAILABLE, exc=exc, record_id=record_id)
            return "dead_lettered"
        log.warning("%s: %s; retry %d in %g s", self.queue.name, error, retries_of(message) + 1, delay)
        breadcrumb("retry scheduled", self.queue.name, delay=delay, retry=retries_of(message) + 1)
        message.ack()
        return "retry"


def _routing_key(message: Message) -> str:
    return (message.delivery_info or {}).get("routing_key") or "unknown"


def _record_id(body) -> str | None:
    """The record a message is about (a CRM record id or a Kundennummer / Vertragsnummer), if it says."""
    if isinstance(body, dict):
        value = body.get("record_id") or body.get("key")
        return str(value) if value is not None else None
    return None
