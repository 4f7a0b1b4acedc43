"""What every consumer of the service shares: its queue, JSON only, dead-lettering."""
from __future__ import annotations

import logging

from kombu.message import Message
from kombu.mixins import ConsumerMixin

from consumers import dead_letters
from syncbridge.topology import Topology, declare

log = logging.getLogger(__name__)


class QueueConsumer(ConsumerMixin):
    """A kombu consumer of one work queue of the topology (``queue_attr``), JSON only.

    Subclasses set ``name`` and ``queue_attr`` and implement ``on_message``.
    """

    name = ""
    queue_attr = ""
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
                callbacks=[self.on_message],
                on_decode_error=self.on_decode_error,
                prefetch_count=self.prefetch_count,
            )
        ]

    def on_message(self, body, message: Message) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        """A body that is not JSON (or not allowed) goes to the dead letters, never silently acked."""
        log.error("undecodable message on %s: %s", self.queue.name, exc)
        self._dead_letter(message, f"cannot decode message: {exc}", dead_letters.UNDECODABLE)

    def _dead_letter(self, message: Message, reason: str, kind: str) -> None:
        # Publish first, ack second: if the broker does not confirm, the message
        # stays unacknowledged and comes back instead of being lost.
        dead_letters.dead_letter(self.publisher, self.topology, message, reason=reason, kind=kind)
        message.ack()
