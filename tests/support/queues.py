"""Consumers on the in-process broker: message bodies, sending, delivering and reading queues."""
from __future__ import annotations

import json
import socket
import uuid
from datetime import UTC, datetime

import pytest
from kombu import Connection

from consumers.crm_to_ameise import CrmToAmeiseConsumer
from contracts.events import CrmRecordChangedSchema
from producers.publisher import BrokerUnavailable
from syncbridge.handlers import SyncResult
from syncbridge.messages import CrmRecordChanged, SyncCrmRecordToAmeise

MEMORY = "memory://localhost/"


ROUTING_KEY = "crm.contacts.changed"


RECORD_ID = "4150868000000376008"


def handler(*outcomes):
    """A handler that records its commands; the n-th call raises or returns the n-th outcome (the last repeats)."""
    calls: list[SyncCrmRecordToAmeise] = []

    def handle(command: SyncCrmRecordToAmeise) -> SyncResult:
        calls.append(command)
        outcome = outcomes[min(len(calls), len(outcomes)) - 1] if outcomes else None
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome or SyncResult("updated", "customer", command.module, command.record_id, "5001234567")

    handle.calls = calls
    return handle


class FailingPublisher:
    """A publisher whose broker never confirms: every publish raises BrokerUnavailable."""

    def __init__(self) -> None:
        self.attempts: list[dict] = []

    def publish(self, exchange, routing_key, body, *, message_id, headers=None, content_type="application/json",
                content_encoding=None):
        self.attempts.append({"exchange": exchange, "routing_key": routing_key, "body": body, "headers": headers})
        raise BrokerUnavailable(f"publish {message_id} failed: no answer from the broker in time")


def make_consumer(topology, handle, publisher, store, **options) -> CrmToAmeiseConsumer:
    connection = Connection(MEMORY, transport_options={"polling_interval": 0.01})
    return CrmToAmeiseConsumer(connection, topology, handle, publisher, store, **options)


def deliver(consumer: CrmToAmeiseConsumer, deliveries: int) -> None:
    """Let ``consumer`` take exactly ``deliveries`` messages, then give back what it did not acknowledge.

    The in-process broker, unlike RabbitMQ, keeps a closed channel's unacknowledged
    messages to itself; recovering them explicitly puts them back in the queue.
    """
    with consumer.Consumer() as (connection, channel, _consumers):
        try:
            for _ in range(deliveries):
                connection.drain_events(timeout=2)
            with pytest.raises(socket.timeout):  # and nothing more was delivered
                connection.drain_events(timeout=0.05)
        finally:
            channel.basic_recover(requeue=True)


def take_all(queue) -> list:
    """Take (and acknowledge) every message waiting in ``queue``."""
    messages = []
    with Connection(MEMORY) as connection:
        bound = queue(connection.default_channel)
        while (message := bound.get(no_ack=True)) is not None:
            messages.append(message)
    return messages


def waiting(queue) -> int:
    """How many messages wait in ``queue`` (without taking them)."""
    with Connection(MEMORY) as connection:
        return queue(connection.default_channel).queue_declare(passive=True).message_count


def event_body(*, drop: tuple[str, ...] = (), **overrides) -> dict:
    """A CrmRecordChanged v1 message body as the producer dumps it, changed as asked."""
    event = CrmRecordChanged(
        event_id=str(uuid.uuid4()),
        source="zoho-workflow",
        module="Contacts",
        record_id=RECORD_ID,
        received_at=datetime.now(UTC),
        operation="update",
    )
    body = {**CrmRecordChangedSchema().dump(event), **overrides}
    for name in drop:
        body.pop(name)
    return body


def send(publisher, topology, body, *, message_id: str | None = None, content_type="application/json", headers=None) -> bytes:
    """Publish ``body`` (a dict becomes JSON) to the events exchange; return the exact bytes sent."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    message_id = message_id or (body.get("event_id") if isinstance(body, dict) else None) or str(uuid.uuid4())
    publisher.publish(topology.events, ROUTING_KEY, raw, message_id=message_id, content_type=content_type,
                      headers=headers)
    return raw


def command_of(body: dict) -> SyncCrmRecordToAmeise:
    return SyncCrmRecordToAmeise(body["module"], body["record_id"], body["event_id"],
                                 datetime.fromisoformat(body["received_at"]), body.get("operation"))
