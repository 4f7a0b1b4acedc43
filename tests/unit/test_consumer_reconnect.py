"""A consumer whose broker connection keeps failing: one log line per failure, growing waits, and a stop honoured."""
from __future__ import annotations

import logging
import uuid

from amqp.exceptions import ConnectionForced
from kombu import Connection

from consumers.base import RECONNECT_MAX_S, QueueConsumer
from producers.topology import build_topology


class FlakyConsumer(QueueConsumer):
    """Its channel fails ``failures`` times right after connecting; then it asks itself to stop."""

    name = "flaky"
    queue_attr = "crm_to_ameise"

    def __init__(self, failures: int) -> None:
        self.connection = Connection("memory://localhost/")
        self.topology = build_topology(f"t{uuid.uuid4().hex[:8]}")
        self.publisher = None
        self.prefetch_count = 1
        self.failures = failures
        self.waits: list[float] = []

    def get_consumers(self, Consumer, channel):
        if self.failures:
            self.failures -= 1
            # What RabbitMQ says when it shuts down (an error of the transport's connection_errors).
            raise ConnectionForced("broker forced connection closure with reason 'shutdown'")
        self.should_stop = True
        return super().get_consumers(Consumer, channel)

    def _pause(self, seconds: float) -> None:   # the waits are recorded, not slept
        self.waits.append(seconds)


def test_a_lost_connection_is_one_line_per_attempt_with_growing_waits(caplog):
    consumer = FlakyConsumer(failures=20)

    with caplog.at_level(logging.INFO, logger="consumers.base"):
        consumer.run()

    lost = [r for r in caplog.records if "lost the connection to the broker" in r.getMessage()]
    assert len(lost) == 20
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in lost)
    assert consumer.waits[:4] == [1.0, 3.0, 5.0, 7.0]
    assert max(consumer.waits) == RECONNECT_MAX_S and consumer.waits[-1] == RECONNECT_MAX_S
    assert lost[0].getMessage().endswith("(ConnectionForced: broker forced connection closure with reason 'shutdown'); "
                                         "reconnecting in 1 s")


def test_a_stop_while_reconnecting_returns_at_once():
    consumer = FlakyConsumer(failures=1_000_000)

    def pause(seconds: float) -> None:
        consumer.waits.append(seconds)
        consumer.should_stop = True                     # SIGTERM arrives during the wait

    consumer._pause = pause
    consumer.run()

    assert consumer.waits == [1.0] and consumer.failures == 1_000_000 - 1
