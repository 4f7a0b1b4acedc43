"""Delayed retries of a message that met an unavailable system.

The message is published, unchanged and under its original routing key, to the
retry queue of its next delay; RabbitMQ moves it back to its work queue when the
delay has passed (see :mod:`producers.topology`; the in-process broker's publisher,
:mod:`producers.memory`, does the same with a timer).  After the last delay the
caller dead-letters the message.
"""
from __future__ import annotations

from datetime import UTC, datetime

from kombu.message import Message

from producers.bodies import received_body
from producers.topology import Topology

RETRIES = "x-retries"


def retries_of(message: Message) -> int:
    """How often the message was retried already."""
    try:
        return int((message.headers or {}).get(RETRIES) or 0)
    except (TypeError, ValueError):
        return 0


def next_delay(delays: tuple[float, ...], done: int, retry_after: float | None) -> float | None:
    """The delay of the next retry: the next in line, or a longer one the system asked for; None when all are used."""
    if done >= len(delays):
        return None
    delay = delays[done]
    if retry_after and retry_after > delay:
        # Honour Retry-After: the shortest delay that covers it (the longest if none does).
        delay = next((d for d in delays if d >= retry_after), delays[-1])
    return delay


def schedule_retry(publisher, topology: Topology, message: Message, *, error: str,
                   retry_after: float | None = None, counted: bool = True) -> float | None:
    """Send ``message`` to its next retry; return the delay in seconds, or None when no retry is left.

    ``counted=False`` parks the message for the shortest delay without using up a
    retry (it waits for a person, e.g. to reconnect a system): it never runs out.
    Raises the publisher's error when the broker did not confirm: the caller then
    must not ack, so the message comes back rather than being lost.
    """
    done = retries_of(message)
    delay = next_delay(topology.retry_delays, done if counted else 0, retry_after)
    if delay is None:
        return None
    info = message.delivery_info or {}
    routing_key = info.get("routing_key") or ""
    now = datetime.now(UTC).isoformat()
    headers = dict(message.headers or {})
    headers.update({
        RETRIES: done + 1 if counted else done,
        "x-last-error": error[:2000],
        "x-first-error": headers.get("x-first-error") or error[:2000],
        "x-first-failed-at": headers.get("x-first-failed-at") or now,
        "x-retry-delay": delay,
    })
    body = received_body(message)
    message_id = (message.properties or {}).get("message_id") or ""
    content_type = message.content_type or "application/json"
    content_encoding = message.content_encoding
    publisher.publish(topology.retry_exchange(delay), routing_key, body, message_id=message_id, headers=headers,
                      content_type=content_type, content_encoding=content_encoding)
    return delay

