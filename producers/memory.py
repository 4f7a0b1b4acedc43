"""The publisher of kombu's in-process broker (``memory://``): one process, no RabbitMQ.

``syncbridge run`` and tests use it.  The in-process broker has no publisher
confirms, no returns and no message TTL, so this adapter does what RabbitMQ does
for the service in its own way: a publish is done once kombu has put the message
in the queue, and a message published to a retry exchange of the topology is
held by a timer of this process for that exchange's delay, then published back
to the events exchange under its routing key, as RabbitMQ's retry queue would
dead-letter it when its TTL runs out (see :mod:`producers.topology`).  Within
one process's life the behaviour is the same for the user.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from kombu import Connection, Exchange, Producer

from producers.publisher import (
    BROKER_ERRORS,
    BrokerUnavailable,
    content_encoding_of,
    describe_error,
    encode_body,
    partly_confirmed,
)
from producers.topology import Topology, declare

log = logging.getLogger(__name__)

URL = "memory://localhost/"


class MemoryPublisher:
    """Publish persistent messages to the in-process broker; retries wait on a timer."""

    def __init__(self, topology: Topology, url: str = URL) -> None:
        if not url.startswith("memory://"):
            raise ValueError(f"MemoryPublisher is for the in-process broker (memory://), not {url.split('@')[-1]}")
        self.url = url
        self.topology = topology
        self._delays = {exchange.name: delay for delay, exchange, _ in topology.retries}
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._producer: Producer | None = None

    def publish(
        self,
        exchange: Exchange | str,
        routing_key: str,
        body: Mapping[str, Any] | bytes,
        *,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        content_encoding: str | None = None,
    ) -> None:
        """Publish one persistent message (to a retry exchange: after its delay); raise BrokerUnavailable on failure."""
        exchange_name = exchange.name if isinstance(exchange, Exchange) else exchange
        payload = encode_body(body)
        encoding = content_encoding_of(content_type, content_encoding)
        message = dict(routing_key=routing_key, payload=payload, message_id=message_id, headers=dict(headers or {}),
                       content_type=content_type, content_encoding=encoding)
        delay = self._delays.get(exchange_name)
        if delay is None:
            self._send(exchange_name, **message)
            return
        timer = threading.Timer(delay, self._publish_back, kwargs=message)
        timer.daemon = True
        timer.start()

    def publish_many(
        self,
        exchange: Exchange | str,
        messages: Iterable[tuple[str, Mapping[str, Any], str]],
        *,
        window: int = 500,
    ) -> int:
        """Publish (routing key, body, message id) messages in order; return how many (``window`` is RabbitMQ's)."""
        if window < 1:
            raise ValueError("window must be at least 1")
        published = 0
        for routing_key, body, message_id in messages:
            try:
                self.publish(exchange, routing_key, body, message_id=message_id)
            except BrokerUnavailable as exc:
                raise partly_confirmed(exc, published) from exc
            published += 1
        return published

    def ping(self) -> None:
        """Raise BrokerUnavailable unless the topology is declared on the in-process broker."""
        with self._lock:
            try:
                self.topology.events(self._ensure_producer().channel).declare(passive=True)
            except BROKER_ERRORS as exc:
                self._drop()
                raise BrokerUnavailable(f"ping failed: {describe_error(exc)}") from exc

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _send(self, exchange_name: str, *, routing_key: str, payload: bytes, message_id: str, headers: dict,
              content_type: str, content_encoding: str) -> None:
        with self._lock:
            try:
                self._ensure_producer().publish(
                    payload, exchange=exchange_name, routing_key=routing_key, content_type=content_type,
                    content_encoding=content_encoding, delivery_mode=2, headers=headers, message_id=message_id,
                    retry=False,
                )
            except BROKER_ERRORS as exc:
                self._drop()
                raise BrokerUnavailable(
                    f"publish {message_id} to {exchange_name}/{routing_key} failed: {describe_error(exc)}") from exc

    def _publish_back(self, **message: Any) -> None:
        try:
            self._send(self.topology.events.name, **message)
        except Exception:  # noqa: BLE001 - a timer thread has nobody to tell but the log
            log.exception("could not put message %s back on %s after its delay", message["message_id"],
                          message["routing_key"])

    def _ensure_producer(self) -> Producer:
        if self._producer is None:
            connection = Connection(self.url)
            try:
                declare(connection, self.topology)
                self._producer = Producer(connection.default_channel, auto_declare=False)
            except BaseException:
                connection.release()
                raise
            self._connection = connection
        return self._producer

    def _drop(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        if connection is not None:
            connection.release()

    def __repr__(self) -> str:
        return f"<MemoryPublisher {self.topology.namespace}>"
