"""Publish messages to RabbitMQ with publisher confirms (the in-process broker has its own: :mod:`producers.memory`).

RabbitMQ publisher confirms: https://www.rabbitmq.com/docs/confirms#publisher-confirms
Every channel this publisher sends on is put into confirm mode (``confirm.select``);
the broker's ``basic.ack``/``basic.nack`` reach the channel's ``events`` handlers,
which count the answers to the delivery tags sent.  A publish returns once every
message it sent is acked, raises on a nack, and on a message returned as
unroutable (``mandatory``; py-amqp raises a ``basic.return`` nobody handles).
Every wait for the broker runs under a socket timeout, which bounds each read,
not the sum of them; the wait for acks also has a deadline of its own.

``publish`` sends one message and waits for its ack; ``publish_many`` is for bulk:
on a channel of its own it sends a window of messages, then collects the answers
for all of them, so a confirm costs one round trip per window rather than per message.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any

from amqp.exceptions import AMQPError, MessageNacked
from kombu import Connection, Exchange, Producer
from kombu.exceptions import KombuError

from producers.topology import Topology, declare
from syncbridge.errors import Unavailable

log = logging.getLogger(__name__)

# Everything a broker, its transport or the network raises for "not now".
# Programming errors (TypeError, ...) are deliberately not in here: they are bugs, not outages.
BROKER_ERRORS: tuple[type[BaseException], ...] = (OSError, KombuError, AMQPError, MessageNacked)


class BrokerUnavailable(Unavailable):
    """The broker could not be reached, did not confirm in time, or refused (nacked) a message."""

    system = "rabbitmq"
    # Set by publish_many: how many of its first messages the broker had confirmed.
    confirmed: int | None = None


class Publisher:
    """Publish persistent messages and return only once the broker has confirmed them.

    One connection per process, opened lazily and shared by threads under a lock.
    On every (re)connect the topology is declared, so a message is never published
    to an exchange without its queues.  Any failure drops the connection; a
    connection found dead when reused (the broker closed it, a restart, a
    load-balancer timeout) is replaced and the publish tried once more.
    """

    def __init__(
        self,
        url: str,
        topology: Topology,
        *,
        confirm_timeout: float = 5.0,
        connect_timeout: float = 3.0,
    ) -> None:
        # py-amqp treats a confirm timeout of 0 as "wait forever": refuse it up front.
        if confirm_timeout <= 0 or connect_timeout <= 0:
            raise ValueError("confirm_timeout and connect_timeout must be positive")
        if url.startswith("memory://"):
            raise ValueError("the in-process broker (memory://) has a publisher of its own: producers.memory")
        self.url = url
        self.topology = topology
        self.confirm_timeout = confirm_timeout
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._confirms: _Confirms | None = None   # the default channel's confirm mode (RabbitMQ only)
        self._pid = os.getpid()

    # ------------------------------------------------------------------ API
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
        """Publish one persistent message; return once the broker confirmed it, else raise BrokerUnavailable.

        ``content_encoding`` names the charset of a ``bytes`` body passed on unchanged (a retry, a dead
        letter); by default UTF-8 for JSON and text, "binary" for anything else.
        """
        payload = encode_body(body)
        exchange_name = exchange.name if isinstance(exchange, Exchange) else exchange
        encoding = content_encoding_of(content_type, content_encoding)

        def send(producer: Producer) -> None:
            tags = _Tags(1, first=self._confirms.published + 1)
            with _answers(producer.channel, tags), self._bounded(self.confirm_timeout):
                producer.publish(
                    payload,
                    exchange=exchange_name,
                    routing_key=routing_key,
                    content_type=content_type,
                    content_encoding=encoding,
                    delivery_mode=2,
                    # RabbitMQ returns a message no queue is bound for (a queue deleted since we
                    # declared it); py-amqp raises that return, so it is never taken as published.
                    mandatory=True,
                    headers=dict(headers or {}),
                    message_id=message_id,
                    timeout=self.confirm_timeout,   # bounds the socket write
                    retry=False,
                )
                self._confirms.published += 1
                self._await(tags)
            if tags.nacked:
                raise MessageNacked()

        self._run(send, what=f"publish {message_id} to {exchange_name}/{routing_key}")

    def publish_many(
        self,
        exchange: Exchange | str,
        messages: Iterable[tuple[str, Mapping[str, Any], str]],
        *,
        window: int = 500,
    ) -> int:
        """Publish (routing key, body, message id) messages in order; return how many, once all are confirmed.

        Persistent JSON with the properties of :meth:`publish`.  On RabbitMQ a window of
        messages is sent before the broker's acks for all of them are awaited, so a
        confirm costs one round trip per window instead of one per message.  A nack, a
        returned message or no answer in time raises BrokerUnavailable, whose
        ``confirmed`` tells how many of the first messages the broker had confirmed.
        """
        if window < 1:
            raise ValueError("window must be at least 1")
        exchange_name = exchange.name if isinstance(exchange, Exchange) else exchange
        confirmed = 0
        for chunk in _windows(messages, window):
            batch = _Window([(routing_key, encode_body(body), message_id) for routing_key, body, message_id in chunk])
            try:
                self._run(lambda _producer: self._send_window(exchange_name, batch),
                          what=f"publish {len(batch.messages)} messages to {exchange_name}")
            except BrokerUnavailable as exc:
                raise partly_confirmed(exc, confirmed + batch.confirmed_prefix) from exc
            confirmed += len(batch.messages)
        return confirmed

    def ping(self) -> None:
        """Raise BrokerUnavailable unless the broker answers on this publisher's connection."""

        def probe(producer: Producer) -> None:
            # A passive declare is a cheap round trip that also proves the topology exists.
            with self._bounded(self.connect_timeout):
                self.topology.events(producer.channel).declare(passive=True)

        self._run(probe, what="ping")

    def close(self) -> None:
        """Close the connection (a later publish opens a new one)."""
        with self._lock:
            connection, self._connection, self._producer, self._confirms = self._connection, None, None, None
            if connection is None:
                return
            try:
                with _socket_timeout(connection, self.connect_timeout):
                    connection.release()
            except BROKER_ERRORS:
                connection.collect()

    # ------------------------------------------------------------- internals
    def _run(self, operation, *, what: str) -> None:
        with self._lock:
            for attempt in (1, 2):
                reused = self._producer is not None and self._pid == os.getpid()
                try:
                    operation(self._ensure_producer())
                    return
                except BROKER_ERRORS as exc:
                    self._drop()
                    # A timeout or a nack came from a live broker: trying again would only
                    # double the caller's wait.  Any other error on a reused connection most
                    # likely means the connection went stale while idle: retry once, fresh.
                    stale = reused and not isinstance(exc, (TimeoutError, MessageNacked))
                    if stale and attempt == 1:
                        log.info("broker connection went stale (%s); reconnecting", describe_error(exc))
                        continue
                    raise BrokerUnavailable(f"{what} failed: {describe_error(exc)}") from exc

    def _ensure_producer(self) -> Producer:
        if self._pid != os.getpid():
            # Forked (gunicorn --preload): the parent's socket is not ours to use or close.
            self._connection = self._producer = self._confirms = None
            self._pid = os.getpid()
        if self._producer is not None:
            return self._producer
        transport_options: dict[str, Any] = {
            # Shown by RabbitMQ (rabbitmqctl list_connections / management UI).
            "client_properties": {
                "connection_name": f"syncbridge-publisher {self.topology.namespace} pid={os.getpid()}",
            },
        }
        connection = Connection(
            self.url,
            connect_timeout=self.connect_timeout,
            transport_options=transport_options,
        )
        try:
            # max_retries=0: fail at once; the caller (a webhook answering 503) decides on retries.
            connection.ensure_connection(max_retries=0)
            with _socket_timeout(connection, self.connect_timeout):
                declare(connection, self.topology)
            producer = Producer(connection.default_channel, auto_declare=False)
            with _socket_timeout(connection, self.confirm_timeout):
                producer.channel.confirm_select()
            confirms = _Confirms()
        except BaseException:
            connection.collect()
            raise
        self._connection, self._producer, self._confirms = connection, producer, confirms
        return producer

    def _drop(self) -> None:
        connection, self._connection, self._producer, self._confirms = self._connection, None, None, None
        if connection is not None:
            # collect() closes the socket without the close handshake, which could block on a dead peer.
            try:
                connection.collect()
            except Exception:  # noqa: BLE001 - the connection is being thrown away anyway
                log.debug("ignoring error while dropping a broken broker connection", exc_info=True)

    def _send_window(self, exchange_name: str, batch: _Window) -> None:
        """Send the messages of ``batch`` not confirmed yet on a channel of their own; wait for every answer."""
        connection = self._connection
        # As in publish: the channel.open-ok and confirm.select-ok waits have no bound of their own.
        with self._bounded(self.confirm_timeout):
            channel = connection.channel()
            channel.confirm_select()
        todo = batch.unconfirmed()
        tags = _Tags(len(todo))   # delivery tags count from 1 on a channel just put in confirm mode
        producer = Producer(channel, auto_declare=False)
        # Answers may arrive while the window is still being sent (py-amqp reads them
        # between publishes), so they are listened for from the first message on.
        with _answers(channel, tags), self._bounded(self.confirm_timeout):
            for index in todo:
                routing_key, payload, message_id = batch.messages[index]
                producer.publish(
                    payload,
                    exchange=exchange_name,
                    routing_key=routing_key,
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,
                    mandatory=True,       # an unroutable message comes back (basic.return) and raises
                    headers={},
                    message_id=message_id,
                    timeout=self.confirm_timeout,
                    retry=False,
                )
            try:
                self._await(tags)
            finally:
                for tag in tags.acked:
                    batch.confirmed[todo[tag - 1]] = True
        if tags.nacked:
            raise MessageNacked()
        with self._bounded(self.connect_timeout):
            channel.close()

    def _await(self, tags: _Tags) -> None:
        """Read the broker's answers until every tag of ``tags`` is acked or nacked; TimeoutError after confirm_timeout."""
        deadline = time.monotonic() + self.confirm_timeout
        # Wait for every answer, nacks included: RabbitMQ may nack a later message before it acks
        # an earlier one (acks of persistent messages wait for the disk), and the count must be exact.
        while tags.waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(tags.waiting)} of {tags.count} messages unconfirmed")
            self._connection.drain_events(timeout=remaining)

    def _bounded(self, seconds: float):
        return _socket_timeout(self._connection, seconds)

    def __repr__(self) -> str:
        return f"<Publisher {self.topology.namespace}>"


def _socket_timeout(connection: Connection | None, seconds: float):
    """Bound every socket read/write of ``connection`` (py-amqp waits forever by default)."""
    # Checking `connected` first matters: kombu's `.connection` property would reconnect.
    if connection is None or not connection.connected:
        return nullcontext()
    return connection.connection.transport.having_timeout(seconds)


@contextmanager
def _answers(channel, tags: _Tags) -> Iterator[None]:
    """Count the broker's basic.ack / basic.nack on ``channel`` into ``tags`` while inside."""
    channel.events["basic_ack"].add(tags.ack)
    channel.events["basic_nack"].add(tags.nack)
    try:
        yield
    finally:
        channel.events["basic_ack"].discard(tags.ack)
        channel.events["basic_nack"].discard(tags.nack)


class _Window:
    """Messages published together, and which of them the broker confirmed (across attempts)."""

    def __init__(self, messages: list[tuple[str, bytes, str]]) -> None:
        self.messages = messages
        self.confirmed = [False] * len(messages)

    def unconfirmed(self) -> list[int]:
        return [i for i, done in enumerate(self.confirmed) if not done]

    @property
    def confirmed_prefix(self) -> int:
        """Count the messages confirmed from the first on, up to the first gap."""
        return next((i for i, done in enumerate(self.confirmed) if not done), len(self.confirmed))


class _Confirms:
    """How many messages were published on a channel in confirm mode: the last delivery tag."""

    def __init__(self) -> None:
        self.published = 0


class _Tags:
    """The broker's answers to the ``count`` delivery tags from ``first`` on, of a channel in confirm mode."""

    def __init__(self, count: int, first: int = 1) -> None:
        self.count = count
        self.waiting = set(range(first, first + count))
        self.acked: set[int] = set()
        self.nacked: set[int] = set()

    def _answered(self, tag: int, multiple: bool) -> set[int]:
        # ``multiple`` answers every tag up to and including this one.
        tags = {t for t in self.waiting if t <= tag} if multiple else {tag} & self.waiting
        self.waiting -= tags
        return tags

    def ack(self, tag: int, multiple: bool) -> None:
        self.acked |= self._answered(tag, multiple)

    def nack(self, tag: int, multiple: bool) -> None:
        self.nacked |= self._answered(tag, multiple)


def _windows(messages: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for message in messages:
        chunk.append(message)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def partly_confirmed(exc: BrokerUnavailable, confirmed: int) -> BrokerUnavailable:
    error = BrokerUnavailable(f"{exc.message}; the broker confirmed the first {confirmed} messages")
    error.confirmed = confirmed
    return error


def content_encoding_of(content_type: str, content_encoding: str | None) -> str:
    """The charset of a message: the one given, else UTF-8 for JSON and text, "binary" for anything else."""
    return content_encoding or ("utf-8" if content_type == "application/json" or content_type.startswith("text/")
                                else "binary")


def encode_body(body: Mapping[str, Any] | bytes) -> bytes:
    """A message body as bytes: bytes unchanged, a mapping as compact UTF-8 JSON (never pickle)."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, Mapping):
        # JSON only: kombu's pickle serializer must never see our messages.
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raise TypeError(f"message body must be a mapping or bytes, not {type(body).__name__}")


def describe_error(exc: BaseException) -> str:
    """A broker error as one short line for logs and exceptions."""
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        return "no answer from the broker in time"
    if isinstance(exc, MessageNacked):
        return "the broker refused the message (basic.nack)"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__
