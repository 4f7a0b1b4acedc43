"""Publish messages to RabbitMQ with publisher confirms (the in-process broker has its own: :mod:`producers.memory`).

RabbitMQ publisher confirms: https://www.rabbitmq.com/docs/confirms#publisher-confirms
Every channel this publisher sends on is put into confirm mode (``confirm.select``);
the broker's ``basic.ack``/``basic.nack`` reach the channel's ``events`` handlers,
which count the answers to the delivery tags sent.  A publish returns once every
message it sent is acked, raises on a nack, and on a message returned as
unroutable (``mandatory``; py-amqp raises a ``basic.return`` nobody handles).
Every wait for the broker runs under a socket timeout, which bounds each read,
not the sum of them; the wait for acks also has a deadline of its own.

``publish`` sends one message and waits for its ack.  Concurrent callers (the
receiver's requests, each a thread or greenlet) share one confirm-mode channel
with many messages in flight: each caller hands its message over and waits for
the broker's answer to ITS delivery tag, while one of them at a time (the
leader) sends what has been handed over and reads the broker's answers for all
(acks with ``multiple`` answer many tags at once).  When the leader's own
message is answered it hands the lead to the oldest caller still waiting, so no
caller waits longer than for its own answer.  ``publish_many`` is for bulk: on a
channel of its own it sends a window of messages, then collects the answers for
all of them, so a confirm costs one round trip per window rather than per message.
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

from amqp import Message
from amqp.exceptions import AMQPError, MessageNacked
from amqp.method_framing import frame_writer
from kombu import Connection, Exchange, Producer
from kombu.exceptions import KombuError

from producers.topology import Topology, declare
from syncbridge.errors import Unavailable

log = logging.getLogger(__name__)

# Everything a broker, its transport or the network raises for "not now".
# Programming errors (TypeError, ...) are deliberately not in here: they are bugs, not outages.
BROKER_ERRORS: tuple[type[BaseException], ...] = (OSError, KombuError, AMQPError, MessageNacked)
# Seconds the caller leading publish() reads answers before it sends what other callers handed over since.
POLL_S = 0.002
POLL_MAX_S = 0.016
# Messages of publish_many whose frames are collected into one write to the socket.
FRAMES_PER_WRITE = 250


class BrokerUnavailable(Unavailable):
    """The broker could not be reached, did not confirm in time, or refused (nacked) a message."""

    system = "rabbitmq"
    # Set by publish_many: how many of its first messages the broker had confirmed.
    confirmed: int | None = None


class Publisher:
    """Publish persistent messages and return only once the broker has confirmed them.

    One connection per process, opened lazily and shared by threads under a lock.
    On every (re)connect the topology is declared, so a message is never published
    to an exchange without its queues.  A connection failure drops the connection
    and answers every message in flight on it with BrokerUnavailable; a connection
    found dead when reused (the broker closed it, a restart, a load-balancer
    timeout) is replaced and each of its messages tried once more.  A nack or a
    returned message fails that message only.
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
        self._lock = threading.Lock()     # the connection: held while sending or reading answers
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._pid = os.getpid()
        # The pipeline of publish(): messages handed over and not sent yet, and whether a caller leads.
        self._state = threading.Lock()    # guards _queue and _leading; taken after _lock, never before
        self._queue: list[_Outgoing] = []
        self._leading = False
        # Sent on the default channel and not answered yet, by delivery tag (under _lock).
        self._inflight: dict[int, _Outgoing] = {}
        self._last_tag = 0
        self._redeclare = False
        self._frames: _Frames | None = None
        self._poll = POLL_S

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
        if not headers and content_type == "application/json" and encoding == "utf-8":
            # The usual message (an event): its properties serialized from a template.
            message: Message = _JsonMessage(payload, message_id)
        else:
            message = Message(
                payload,
                content_type=content_type,
                content_encoding=encoding,
                application_headers=dict(headers or {}),
                delivery_mode=2,
                priority=0,
                message_id=message_id,
            )
        outgoing = _Outgoing(exchange_name, routing_key, message, message_id)
        with self._state:
            self._queue.append(outgoing)
            lead = not self._leading
            self._leading = True
        if not lead:
            try:
                outgoing.wake.wait()
            except BaseException:
                # The caller was interrupted (a killed greenlet, KeyboardInterrupt): nobody waits for
                # this answer any more, but the lead may just have been handed to it - pass it on.
                with self._lock, self._state:
                    outgoing.done = True
                    if outgoing.lead:
                        self._hand_on()
                raise
        if lead or outgoing.lead:
            self._lead(outgoing)
        if outgoing.error is not None:
            raise BrokerUnavailable(
                f"publish {message_id} to {exchange_name}/{routing_key} failed: {describe_error(outgoing.error)}"
            ) from outgoing.error

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
            connection, self._connection, self._producer = self._connection, None, None
            self._fail_inflight(ConnectionError("the publisher was closed"), retry=False)
            if connection is None:
                return
            try:
                with _socket_timeout(connection, self.connect_timeout):
                    connection.release()
            except BROKER_ERRORS:
                connection.collect()

    # ------------------------------------------------------------- internals
    def _lead(self, mine: _Outgoing) -> None:
        """Send and read the broker's answers until ``mine`` is answered; then hand the lead on."""
        try:
            while not mine.done:
                with self._lock:
                    self._step()
        finally:
            with self._lock, self._state:
                self._hand_on()

    def _hand_on(self) -> None:
        """Give the lead to the oldest caller still waiting, if any (under ``_lock`` and ``_state``)."""
        successor = next((o for o in self._inflight.values() if not o.done), None) or next(
            (o for o in self._queue if not o.done), None)
        if successor is None:
            self._leading = False
        else:
            successor.lead = True
            successor.wake.set()

    def _step(self) -> None:
        """Send every message handed over, then read one answer of the broker (under ``_lock``)."""
        reused = self._producer is not None and self._pid == os.getpid()
        with self._state:
            batch, self._queue = self._queue, []
        sent = 0
        try:
            channel = self._ensure_producer().channel
            if self._redeclare:
                with self._bounded(self.connect_timeout):
                    declare(self._connection, self.topology)
                self._redeclare = False
            with self._bounded(self.confirm_timeout):
                # Several messages go out in one write to the socket rather than one each.
                with self._frames.collected() if len(batch) > 1 else nullcontext():
                    for outgoing in batch:
                        # In flight from before its first byte: a failure while sending fails it with the others.
                        self._last_tag += 1
                        outgoing.deadline = time.monotonic() + self.confirm_timeout
                        self._inflight[self._last_tag] = outgoing
                        sent += 1
                        # RabbitMQ returns a message no queue is bound for (mandatory): it is never a success.
                        channel.basic_publish(outgoing.message, exchange=outgoing.exchange,
                                              routing_key=outgoing.routing_key, mandatory=True)
                if self._inflight:
                    first = next(iter(self._inflight.values()))
                    remaining = first.deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(f"{len(self._inflight)} messages unconfirmed")
                    # A short wait: messages handed over meanwhile go out without waiting for an answer
                    # (py-amqp keeps the part of a frame read before a timeout).  The wait doubles, up to
                    # POLL_MAX_S, while nothing new is handed over, so a slow broker costs few wake-ups.
                    if batch:
                        self._poll = POLL_S
                    poll = self._poll
                    try:
                        self._connection.drain_events(timeout=min(remaining, poll))
                    except TimeoutError:
                        if remaining <= poll:
                            raise
                        self._poll = min(poll * 2, POLL_MAX_S)
        except BROKER_ERRORS as exc:
            self._drop(exc, reused=reused, unsent=batch[sent:])

    def _on_ack(self, tag: int, multiple: bool) -> None:
        for outgoing in self._answered(tag, multiple):
            if outgoing.returned is None:
                outgoing.finish(None)
            elif outgoing.attempts > 1:
                outgoing.finish(outgoing.returned)
            else:
                # Returned as unroutable: most likely a queue deleted since we declared it.  Declared
                # again before the next send, the message goes out once more.
                outgoing.attempts += 1
                outgoing.returned = None
                self._redeclare = True
                with self._state:
                    self._queue.insert(0, outgoing)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        for outgoing in self._answered(tag, multiple):
            outgoing.finish(MessageNacked())

    def _on_return(self, exc: BaseException, exchange: str, routing_key: str, message: Any) -> None:
        # basic.return comes before the basic.ack of the same message; the ack then fails it.
        message_id = message.properties.get("message_id") if message is not None else None
        for outgoing in self._inflight.values():
            if outgoing.returned is None and outgoing.message_id == message_id:
                outgoing.returned = exc
                return

    def _answered(self, tag: int, multiple: bool) -> list[_Outgoing]:
        if not multiple:
            outgoing = self._inflight.pop(tag, None)
            return [] if outgoing is None else [outgoing]
        answered = []
        for sent in list(self._inflight):
            if sent > tag:
                break
            answered.append(self._inflight.pop(sent))
        return answered

    def _run(self, operation, *, what: str) -> None:
        with self._lock:
            for attempt in (1, 2):
                reused = self._producer is not None and self._pid == os.getpid()
                try:
                    operation(self._ensure_producer())
                    return
                except BROKER_ERRORS as exc:
                    self._drop(exc, reused=reused)
                    # As for publish: a stale connection is tried once more, fresh.
                    stale = reused and not isinstance(exc, (TimeoutError, MessageNacked))
                    if stale and attempt == 1:
                        log.info("broker connection went stale (%s); reconnecting", describe_error(exc))
                        continue
                    raise BrokerUnavailable(f"{what} failed: {describe_error(exc)}") from exc

    def _ensure_producer(self) -> Producer:
        if self._pid != os.getpid():
            # Forked (gunicorn --preload): the parent's socket is not ours to use or close.
            self._connection = self._producer = None
            self._inflight = {}
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
            _no_read_per_publish(connection.connection)
            with _socket_timeout(connection, self.connect_timeout):
                declare(connection, self.topology)
            producer = Producer(connection.default_channel, auto_declare=False)
            with _socket_timeout(connection, self.confirm_timeout):
                producer.channel.confirm_select()
        except BaseException:
            connection.collect()
            raise
        # The broker's answers on the default channel, whoever reads them (publish, publish_many, ping).
        producer.channel.events["basic_ack"].add(self._on_ack)
        producer.channel.events["basic_nack"].add(self._on_nack)
        producer.channel.events["basic_return"].add(self._on_return)
        self._connection, self._producer = connection, producer
        self._frames = _Frames(connection.connection)
        self._last_tag, self._redeclare = 0, False   # delivery tags count from 1 on a channel put in confirm mode
        return producer

    def _drop(self, exc: BaseException, *, reused: bool, unsent: Iterable[_Outgoing] = ()) -> None:
        """Throw the connection away; its messages in flight (and ``unsent``) fail, or go once more if it was stale."""
        connection, self._connection, self._producer = self._connection, None, None
        if connection is not None:
            # collect() closes the socket without the close handshake, which could block on a dead peer.
            try:
                connection.collect()
            except Exception:  # noqa: BLE001 - the connection is being thrown away anyway
                log.debug("ignoring error while dropping a broken broker connection", exc_info=True)
        # A timeout or a nack came from a live broker: trying again would only double the caller's wait.
        # Any other error on a reused connection most likely means it went stale while idle.
        stale = reused and not isinstance(exc, (TimeoutError, MessageNacked))
        self._fail_inflight(exc, retry=stale, unsent=unsent)

    def _fail_inflight(self, exc: BaseException, *, retry: bool, unsent: Iterable[_Outgoing] = ()) -> None:
        affected = [*self._inflight.values(), *unsent]
        self._inflight = {}
        again = []
        for outgoing in affected:
            if retry and outgoing.attempts == 1:
                outgoing.attempts += 1
                outgoing.returned = None
                again.append(outgoing)
            else:
                outgoing.finish(exc)
        if again:
            log.info("broker connection went stale (%s); sending %d message(s) again", describe_error(exc), len(again))
            with self._state:
                self._queue[:0] = again

    def _send_window(self, exchange_name: str, batch: _Window) -> None:
        """Send the messages of ``batch`` not confirmed yet on a channel of their own; wait for every answer."""
        connection = self._connection
        # As in publish: the channel.open-ok and confirm.select-ok waits have no bound of their own.
        with self._bounded(self.confirm_timeout):
            channel = connection.channel()
            channel.confirm_select()
        todo = batch.unconfirmed()
        tags = _Tags(len(todo))   # delivery tags count from 1 on a channel just put in confirm mode
        # Answers may arrive while the window is still being sent (py-amqp reads them
        # between publishes), so they are listened for from the first message on.
        with _answers(channel, tags), self._bounded(self.confirm_timeout):
            # The frames of the whole window go out in a few writes to the socket, not one per message;
            # each message through py-amqp's own basic_publish with the properties publish() gives it.
            for start in range(0, len(todo), FRAMES_PER_WRITE):
                with self._frames.collected():
                    for index in todo[start:start + FRAMES_PER_WRITE]:
                        routing_key, payload, message_id = batch.messages[index]
                        message = _JsonMessage(payload, message_id)
                        # An unroutable message comes back (basic.return) and raises.
                        channel.basic_publish(message, exchange=exchange_name, routing_key=routing_key,
                                              mandatory=True)
                # The answers that arrived meanwhile are read before the next frames go out, so a
                # long window's answers do not pile up unread (py-amqp no longer reads before each send).
                self._read_arrived()
            try:
                self._await(tags)
            finally:
                for tag in tags.acked:
                    batch.confirmed[todo[tag - 1]] = True
        if tags.nacked:
            raise MessageNacked()
        with self._bounded(self.connect_timeout):
            channel.close()

    def _read_arrived(self) -> None:
        """Read the broker's answers that have already arrived, without waiting for more."""
        try:
            while True:
                self._connection.drain_events(timeout=0)
        except TimeoutError:   # socket.timeout: nothing more has arrived
            pass

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


def _no_read_per_publish(connection: Any) -> None:
    """Let py-amqp's ``basic_publish`` send without first trying to read from the socket.

    With the broker's ``connection.blocked`` notifications negotiated, py-amqp reads whatever
    arrived before every message it sends (a non-blocking read that mostly raises a timeout),
    so that a client which only ever sends still sees them.  This publisher reads the
    broker's answers after every send anyway, and with them any notification (py-amqp
    handles those whenever it reads a frame): the read before each message only cost time.
    The broker is still told the capability; only py-amqp's own check of it changes.
    """
    capabilities = getattr(connection, "client_properties", {}).get("capabilities")
    if isinstance(capabilities, dict) and capabilities.get("connection.blocked"):
        capabilities["connection.blocked"] = False


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


class _Frames:
    """The frames of several messages, written to the socket at once (one system call, not one per message)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection   # py-amqp's connection
        self.chunks: list[bytes] = []
        self.writer = frame_writer(connection, self)   # py-amqp's framing, writing to self.write

    def write(self, data: Any) -> None:
        self.chunks.append(bytes(data))   # a copy: py-amqp reuses its frame buffer

    @contextmanager
    def collected(self) -> Iterator[None]:
        """Collect every frame py-amqp writes while inside; send them together when the block ends."""
        original = self.connection.frame_writer
        self.connection.frame_writer = self.writer
        try:
            yield
        except BaseException:
            self.chunks.clear()
            raise
        finally:
            self.connection.frame_writer = original
        data, self.chunks = b"".join(self.chunks), []
        if data:
            self.connection.transport.write(data)


class _JsonMessage(Message):
    """A persistent JSON message without headers: the properties :meth:`Publisher.publish` gives it, serialized cheaply.

    Every message of publish_many, and every message of publish without headers (each
    event of the receiver).  All its properties but the message id are the same for
    every such message, so their serialized form (flags and values, message_id being
    the last one present) is built once; py-amqp's generic property serializer costs
    about a third of a publish.
    """

    def __init__(self, body: bytes, message_id: str) -> None:
        super().__init__(body, content_type="application/json", content_encoding="utf-8",
                         application_headers={}, delivery_mode=2, priority=0, message_id=message_id)

    def _serialize_properties(self) -> bytes:
        message_id = self.properties["message_id"].encode("utf-8")
        if len(message_id) > 255:
            return super()._serialize_properties()   # py-amqp refuses it with its own error
        return _JSON_PROPERTIES + bytes((len(message_id),)) + message_id


# The serialized properties of a _JsonMessage up to its message id (a short string: a length byte, then the bytes).
_JSON_PROPERTIES = Message._serialize_properties(_JsonMessage(b"", ""))[:-1]


class _Outgoing:
    """One message of publish(), from being handed over to the broker's answer."""

    __slots__ = ("exchange", "routing_key", "message", "message_id", "wake", "lead", "done", "error",
                 "returned", "attempts", "deadline")

    def __init__(self, exchange: str, routing_key: str, message: Message, message_id: str) -> None:
        self.exchange, self.routing_key, self.message, self.message_id = exchange, routing_key, message, message_id
        self.wake = threading.Event()     # set when answered, or when this caller is to lead
        self.lead = False
        self.done = False
        self.error: BaseException | None = None
        self.returned: BaseException | None = None   # basic.return seen; the ack that follows fails it
        self.attempts = 1
        self.deadline = 0.0

    def finish(self, error: BaseException | None) -> None:
        if not self.done:
            self.error, self.done = error, True
            self.wake.set()


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


# What json.dumps(body, separators=(",", ":"), ensure_ascii=False) uses, made once rather than per message.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_body(body: Mapping[str, Any] | bytes) -> bytes:
    """A message body as bytes: bytes unchanged, a mapping as compact UTF-8 JSON (never pickle)."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, Mapping):
        # JSON only: kombu's pickle serializer must never see our messages.
        return _JSON.encode(body).encode("utf-8")
    raise TypeError(f"message body must be a mapping or bytes, not {type(body).__name__}")


def describe_error(exc: BaseException) -> str:
    """A broker error as one short line for logs and exceptions."""
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        return "no answer from the broker in time"
    if isinstance(exc, MessageNacked):
        return "the broker refused the message (basic.nack)"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__
