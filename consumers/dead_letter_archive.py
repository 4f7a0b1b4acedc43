"""The dead-letter archiver: every message of ``{ns}.dead-letters`` into the ``dead_letters`` table.

Thin entrypoint: take the message as it is (any content type: an undecodable
message is a dead letter too, and is never decoded here), hand it to the archive,
ack only after the row is committed.  A redelivered message finds its row and is
not stored twice.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kombu import Connection
from kombu.message import Message

from consumers.base import QueueConsumer
from producers.bodies import received_body
from producers.topology import Topology
from syncbridge.handlers.dead_letters import ArrivedMessage

log = logging.getLogger(__name__)

Archive = Callable[[ArrivedMessage], int]


class DeadLetterArchiver(QueueConsumer):
    """Consume ``{ns}.dead-letters``; ack each message once its row is in the database."""

    name = "dead-letters"
    queue_attr = "dead_letters"

    def __init__(self, connection: Connection, topology: Topology, archive: Archive, *, prefetch_count: int = 10,
                 retry_delay: float = 5.0) -> None:
        self.connection = connection
        self.topology = topology
        self.archive = archive
        self.publisher = None   # an archiver never dead-letters: it is the end of the line
        self.prefetch_count = prefetch_count
        self.retry_delay = retry_delay

    def on_message(self, body, message: Message) -> None:
        self._archive(message)

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        # Not JSON, or a content type no consumer accepts: kept byte for byte like any other.
        self._archive(message)

    def _archive(self, message: Message) -> None:
        info = message.delivery_info or {}
        arrived = ArrivedMessage(
            routing_key=info.get("routing_key") or "",
            body=received_body(message),
            content_type=message.content_type,
            message_id=(message.properties or {}).get("message_id"),
            headers=dict(message.headers or {}),
        )
        try:
            letter_id = self.archive(arrived)
        except Exception:  # noqa: BLE001 - the database is away: keep the message, try again later
            log.exception("could not archive a dead letter of %s; trying again in %.0f s", arrived.routing_key,
                          self.retry_delay)
            time.sleep(self.retry_delay)
            message.requeue()
            return
        log.info("dead letter %s archived as #%s", arrived.routing_key, letter_id)
        message.ack()
