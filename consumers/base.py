"""What every consumer of the service shares: its queue, JSON only, dead-lettering."""
from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from typing import Any

from kombu.message import Message
from kombu.mixins import ConsumerMixin
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from contracts.base import ContractError, load_or_raise
from producers import dead_letters
from producers.bodies import received_body
from producers.publisher import describe_error
from producers.retries import retries_of, schedule_retry
from producers.topology import Topology, declare
from syncbridge import metrics
from syncbridge.errors import StoreUnavailable, Unavailable
from syncbridge.monitoring import breadcrumb, message_scope, report_failed_message
from syncbridge.ports import DeadLetterKind

log = logging.getLogger(__name__)


# The database's connectivity errors (refused, too many clients, connection lost, pool exhausted, SQLite locked):
# an outage like any other, tried again later through the retry queues, never dead-lettered at once as a bug.
DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout)


def as_unavailable(exc: Exception) -> Unavailable:
    """An outage as the core names it; a database connectivity error becomes ``StoreUnavailable``."""
    if isinstance(exc, Unavailable):
        return exc
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    unavailable = StoreUnavailable(f"{type(exc).__name__}: {lines[0][:300] if lines else ''}".rstrip(": "))
    unavailable.__cause__ = exc
    return unavailable

# Waits between attempts to reach the broker: 1 s, 3 s, 5 s, ... up to 30 s.
RECONNECT_FIRST_S = 1.0
RECONNECT_STEP_S = 2.0
RECONNECT_MAX_S = 30.0


class BodyUndecodable(ValueError):
    """A body that is not JSON, not in the charset it names, or of a content type no consumer takes."""


def decode_json(message: Message) -> Any:
    """The JSON of a message's body, read in the charset its ``content_encoding`` names (UTF-8 when none).

    The channels hand bodies over as bytes (:mod:`producers.transport`), so what is
    decoded here is what a dead letter or a retry passes on unchanged.
    """
    content_type = (message.content_type or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise BodyUndecodable(f"content type {message.content_type or 'none'!r} is not application/json")
    encoding = message.content_encoding or "utf-8"
    try:
        return json.loads(received_body(message).decode(encoding))
    except LookupError:
        raise BodyUndecodable(f"unknown charset {encoding!r}") from None
    except UnicodeDecodeError as exc:
        raise BodyUndecodable(f"not {encoding}: {exc.reason} at byte {exc.start}") from None
    except ValueError as exc:   # json.JSONDecodeError
        raise BodyUndecodable(f"not JSON: {exc}") from None


class Stopping(Exception):
    """``should_stop`` was set while the consumer was (re)connecting: give up connecting and return."""


class QueueConsumer(ConsumerMixin):
    """A kombu consumer of one work queue of the topology (``queue_attr``), JSON only.

    Subclasses set ``name`` and ``queue_attr`` and implement ``on_message``.

    ``should_stop`` is honoured in every state: between messages (the message in
    hand is finished first), and while the broker cannot be reached, where each
    failed attempt is one log line and the wait between attempts grows to 30 s.
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

    # ------------------------------------------------------------ connecting
    def run(self, _tokens=1, **kwargs) -> None:
        """Consume until ``should_stop``; reconnect (one line per attempt, with backoff) when the broker goes away."""
        errors = self.connection.connection_errors + self.connection.channel_errors
        failures = 0
        while not self.should_stop:
            started = time.monotonic()
            try:
                for _ in self.consume(limit=None, **kwargs):
                    pass
            except Stopping:
                break
            except errors as exc:
                self.on_connection_lost()
                if self.should_stop:
                    break
                # A connection that failed again soon after it was made waits longer each time.
                failures = 1 if time.monotonic() - started > RECONNECT_MAX_S else failures + 1
                wait = min(RECONNECT_MAX_S, RECONNECT_FIRST_S + RECONNECT_STEP_S * (failures - 1))
                log.warning("%s: lost the connection to the broker %s (%s); reconnecting in %.0f s", self.name,
                            self._broker(), describe_error(exc), wait)
                self._pause(wait)

    def on_connection_lost(self) -> None:
        """Called once the connection is gone, before reconnecting (a consumer with work in flight finishes it)."""

    @contextmanager
    def establish_connection(self):
        with self.create_connection() as conn:
            conn.ensure_connection(self.on_connection_error, self.connect_max_retries,
                                   interval_start=RECONNECT_FIRST_S, interval_step=RECONNECT_STEP_S,
                                   interval_max=RECONNECT_MAX_S, callback=self._check_stop)
            yield conn

    def on_connection_error(self, exc, interval) -> None:
        self._check_stop()
        log.warning("%s: cannot reach the broker %s (%s); trying again in %.0f s", self.name, self._broker(),
                    describe_error(exc), interval)

    def on_connection_revived(self) -> None:
        log.info("%s: connected to the broker %s", self.name, self._broker())

    def _check_stop(self) -> None:
        """Called by kombu before each attempt and every second of the wait between attempts."""
        if self.should_stop:
            raise Stopping()

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.should_stop and time.monotonic() < deadline:
            time.sleep(min(0.1, deadline - time.monotonic()))

    def _broker(self) -> str:
        return self.connection.as_uri().split("@")[-1]

    def get_consumers(self, Consumer, channel):
        # Declared on every (re)connect: the dead-letter queue must exist before the first dead letter.
        declare(channel, self.topology)
        return [
            # on_message: kombu hands over the message undecoded, and decode_json reads it by its own charset.
            Consumer(queues=[self.queue], accept=["application/json"], on_message=self._arrived,
                     prefetch_count=self.prefetch_count)
        ]

    def _arrived(self, message: Message) -> None:
        try:
            body = decode_json(message)
        except BodyUndecodable as exc:
            self.on_decode_error(message, exc)
            return
        self._receive(body, message)

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
            self._dead_letter(message, f"contract {self.contract} violated: {exc.errors}",
                              DeadLetterKind.CONTRACT_VIOLATION, exc=exc, record_id=_record_id(body))
            return None

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        """A body that is not JSON (or not allowed) goes to the dead letters, never silently acked."""
        log.error("undecodable message on %s: %s", self.queue.name, exc)
        with message_scope():
            self._dead_letter(message, f"cannot decode message: {exc}", DeadLetterKind.UNDECODABLE, exc=exc)

    def _dead_letter(self, message: Message, reason: str, kind: DeadLetterKind, *,
                     exc: BaseException | None = None, record_id: str | None = None) -> None:
        # Publish first, ack second: if the broker does not confirm, the message
        # stays unacknowledged and comes back instead of being lost.
        dead_letters.dead_letter(self.publisher, self.topology, message, reason=reason, kind=kind)
        message.ack()
        metrics.dead_lettered(self.queue.name, str(kind))
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
            self._dead_letter(message, reason, DeadLetterKind.UNAVAILABLE, exc=exc, record_id=record_id)
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
