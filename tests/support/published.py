"""Messages published to a real RabbitMQ in tests: numbered ones to send, and taking what arrived."""
from __future__ import annotations

import time

from kombu import Connection, Consumer, Queue

KEY = "crm.contacts.changed"


def take(url: str, queue: Queue, *, expect: int, timeout: float = 10.0) -> list:
    """Consume up to ``expect`` messages from ``queue`` (auto-acked), then wait a little for any surplus."""
    messages: list = []
    with Connection(url) as conn:
        with Consumer(conn, [queue], accept=["application/json"], no_ack=True,
                      callbacks=[lambda body, message: messages.append(message)], prefetch_count=1000):
            deadline = time.monotonic() + timeout
            while len(messages) < expect and time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=0.2)
                except TimeoutError:
                    pass
            # A message published twice would show up right after the expected ones.
            settle = time.monotonic() + 0.3
            while time.monotonic() < settle:
                try:
                    conn.drain_events(timeout=0.1)
                except TimeoutError:
                    pass
    return messages


def numbered(count: int, start: int = 0):
    """(routing key, body, message id) of ``count`` messages numbered from ``start``."""
    return ((KEY, {"n": n, "name": "Müller"}, f"m-{n}") for n in range(start, start + count))
